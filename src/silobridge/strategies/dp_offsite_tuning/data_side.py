"""dp-offsite-tuning, data side: offsite-tuning whose adapters are trained with DP-SGD (Opacus) on the
private records, so that what leaves the silo (the adapters, then the LM they are plugged into) carries
an (epsilon, delta) guarantee for every private record; the carrier declares the budget it spent."""
from __future__ import annotations

from silobridge.boundary import PrivacySpend
from silobridge.models.dp_train import DPRun, dp_train_causal, dp_train_labels
from silobridge.privacy.dp import DPSpec
from silobridge.strategies.base import DataParty
from silobridge.strategies.offsite_tuning.data_side import OffsiteTuningData
from silobridge.strategies.prompting import prompt_for


class DPOffsiteTuningData(OffsiteTuningData):
    dp: DPRun | None = None
    spec: DPSpec | None = None

    def trainer(self, data: DataParty):
        c = self.config
        self.spec = DPSpec(c.epsilon, c.delta or 1.0 / (10 * len(data.private.texts)), c.max_grad_norm, c.accountant)

        def train(tuned, emu_lm, texts, words) -> list[float]:
            common = dict(lr=c.dp_lr, epochs=c.dp_epochs, batch_size=c.dp_batch_size, seed=data.seed,
                          noise_seed=c.noise_seed)
            if texts is not None:  # domain LM: next-token loss on the raw records
                self.dp = dp_train_causal(tuned, emu_lm, texts, self.spec, max_len=c.max_len,
                                          desc="DP-SGD on emulator", **common)
            else:
                self.dp = dp_train_labels(tuned, emu_lm, data.private.texts, data.one_hot(data.private.labels),
                                          prompt_for(c, data.task, words), words, self.spec,
                                          max_text_tokens=c.max_text_tokens, desc="DP-SGD on emulator (labels)",
                                          **common)
            return self.dp.losses
        return train

    def spent(self) -> PrivacySpend:
        return PrivacySpend(self.dp.epsilon, self.spec.delta, f"DP-SGD ({self.spec.accountant}) on the adapters")

    def fit(self, data: DataParty) -> None:
        super().fit(data)
        self.report |= {"epsilon_target": self.config.epsilon, "epsilon_spent": self.dp.epsilon,
                        "delta": self.spec.delta, "dp_mechanism": self.dp.mechanism(self.config.noise_seed is not None)}
