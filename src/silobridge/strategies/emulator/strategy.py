"""emulator (LM -> SM, after Offsite-Tuning): the model party sends a compressed layer-drop emulator
of its LM (declared: it reveals a share of the LM's parameters, recorded in the ledger and result);
the data party LoRA-tunes it on its private records and deploys it locally. Only the public
distillation texts and the emulator cross."""
from __future__ import annotations

import numpy as np

from silobridge.models.lm import CausalLM, score_labels
from silobridge.strategies.base import DataParty, ModelParty, Strategy, TaskKind, register
from silobridge.strategies.emulation import AdaptersOff, EmulatorConfig, emulator_op, fetch_and_tune

__all__ = ["Emulator", "EmulatorConfig"]
from silobridge.strategies.prompting import calibrate, prompt_for, words_for


@register
class Emulator(Strategy):
    name = "emulator"
    summary = "LM sends a layer-drop emulator (declared partial weights); data party LoRA-tunes and deploys it"
    Config = EmulatorConfig
    exposes = frozenset({"lm_weights"})
    kinds = frozenset(TaskKind)

    def model_ops(self):
        return {"emulator": emulator_op(self.config)}

    def fit(self, data: DataParty) -> None:
        self.emu_lm, self.tuned, w, losses = fetch_and_tune(data, self.config, data.seed,
                                                         raw_text=self.kind is TaskKind.DOMAIN_LM)
        self.prior = data.label_prior()
        self.report = {"revealed_param_share": w.meta["revealed_param_share"], "kept_layers": w.meta["kept"],
                       "distill_cached": w.meta["distill_cached"], "distill_losses": w.meta["distill_losses"],
                       "lm_layers": w.meta["lm_layers"], "lora_loss_first_last": [losses[0], losses[-1]]}

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        # the tuned emulator runs inside the data silo: inference inputs never leave
        c = self.config
        words = words_for(c, data.task)
        user = prompt_for(c, data.task, words)
        logp = score_labels(self.emu_lm, texts, user, words, c.max_text_tokens, c.batch_size, "emulator scoring")
        return calibrate(logp, c.calibration, self.prior)

    def language_models(self, data: DataParty, model: ModelParty) -> dict[str, CausalLM]:
        tok = self.emu_lm.tokenizer
        return {"emulator": CausalLM(tok, AdaptersOff(self.tuned), "emulator"),
                "deployed": self.emu_lm}
