"""offsite-tuning, data side: adapters trained on the emulator with private records; only the adapters
go out (a declared 'private_model' exposure: a model trained on private records); the LM, with the
adapters plugged in, serves inference."""
from __future__ import annotations

from silobridge.boundary import Metrics, PrivacySpend, Weights, expect
from silobridge.models.lm import CausalLM
from silobridge.models.lora import export_adapters
from silobridge.strategies.base import DataParty, TaskKind
from silobridge.strategies.emulation import AdaptersOff, fetch_and_tune
from silobridge.strategies.emulator.data_side import emulator_report
from silobridge.strategies.lm_served import LMServedData


class OffsiteTuningData(LMServedData):
    def trainer(self, data: DataParty):
        """How the adapters are trained: None = the emulator's LoRA recipe (a subclass may wrap it in DP)."""
        return None

    def spent(self) -> PrivacySpend | None:
        """The privacy budget the adapters cost (None: not DP)."""
        return None

    def fit(self, data: DataParty) -> None:
        c = self.config
        # 1. emulator in, 2. adapters trained locally on private records, 3. only the adapters go out
        domain = self.kind is TaskKind.DOMAIN_LM
        self.emu_lm, self.tuned, w, losses = fetch_and_tune(data, c, data.seed, raw_text=domain,
                                                            trainer=self.trainer(data))
        adapters = export_adapters(self.tuned, w.meta["kept"])  # renamed to the LM's layer indices
        reply = expect(data.model.call("plug", Weights(tensors=adapters, origin="adapter", exposure="private_model",
                                                       meta={"r": c.lora.r, "alpha": c.lora.alpha},
                                                       privacy=self.spent())), Metrics)
        super().fit(data)
        self.report = emulator_report(w, losses) | {"adapter_params": int(sum(a.size for a in adapters.values())),
                                                    "plugged": reply.values}

    def language_models(self) -> dict[str, CausalLM]:  # the data silo's two rows of Offsite-Tuning's table
        return {"emulator": CausalLM(self.emu_lm.tokenizer, AdaptersOff(self.tuned), "emulator"),
                "emulator+adapters": self.emu_lm}
