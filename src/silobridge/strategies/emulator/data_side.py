"""emulator, data side: get the emulator, LoRA-tune it on private records, deploy it in the data silo
(inference inputs never leave)."""
from __future__ import annotations

import numpy as np

from silobridge.models.lm import CausalLM, score_labels
from silobridge.strategies.base import DataParty, DataSide, TaskKind
from silobridge.strategies.emulation import AdaptersOff, fetch_and_tune
from silobridge.strategies.prompting import Calibration, calibrate, prompt_for, words_for


def emulator_report(w, losses) -> dict:
    return {"revealed_param_share": w.meta["revealed_param_share"], "kept_layers": w.meta["kept"],
            "distill_cached": w.meta["distill_cached"], "adapters_cached": w.meta["adapters_cached"],
            "distill_losses": w.meta["distill_losses"],
            "lm_layers": w.meta["lm_layers"], "lora_loss_first_last": [losses[0], losses[-1]]}


class EmulatorData(DataSide):
    def fit(self, data: DataParty) -> None:
        self.emu_lm, self.tuned, w, losses = fetch_and_tune(data, self.config, data.seed,
                                                         raw_text=self.kind is TaskKind.DOMAIN_LM)
        self.prior = data.label_prior()
        self.report = emulator_report(w, losses)
        self.bias = None
        if self.kind is TaskKind.CLASSIFY and self.config.calibration is not Calibration.NONE:
            # the tuned emulator's label bias, on public texts (scored here, in the data silo)
            self.bias = self._scores(data, data.public[:self.config.calibration_texts], "emulator calibration").mean(0)

    def _scores(self, data: DataParty, texts: list[str], desc: str) -> np.ndarray:
        c = self.config
        words = words_for(c, data.task)
        return score_labels(self.emu_lm, texts, prompt_for(c, data.task, words), words, c.max_text_tokens,
                            c.batch_size, desc)

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        return calibrate(self._scores(data, texts, "emulator scoring"), self.config.calibration, self.prior, self.bias)

    def language_models(self) -> dict[str, CausalLM]:
        return {"emulator": CausalLM(self.emu_lm.tokenizer, AdaptersOff(self.tuned), "emulator"),
                "deployed": self.emu_lm}
