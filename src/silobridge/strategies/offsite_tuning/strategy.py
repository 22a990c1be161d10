"""offsite-tuning (SM -> LM): the data party trains LoRA adapters on the emulator with its private
records and sends back only the adapters; the model party plugs them into its full LM, which then
serves the data party's inference inputs (a declared exposure, as for lm-zero-shot)."""
from __future__ import annotations

from dataclasses import dataclass

from silobridge.boundary import Carrier, Metrics, Weights, expect
from silobridge.models.lm import CausalLM
from silobridge.models.lora import export_adapters, plug_adapters
from silobridge.strategies.base import DataParty, ModelParty, TaskKind, register
from silobridge.strategies.emulation import AdaptersOff, EmulatorConfig, emulator_op, fetch_and_tune
from silobridge.strategies.lm_served import LMServed


@dataclass
class OffsiteTuningConfig(EmulatorConfig):
    """The emulator's and adapters' options (see EmulatorConfig)."""


@register
class OffsiteTuning(LMServed):
    name = "offsite-tuning"
    summary = "adapters trained on the emulator with private data, plugged into the full LM (LM serves inference)"
    Config = OffsiteTuningConfig
    exposes = frozenset({"lm_weights", "inference_records"})
    kinds = frozenset(TaskKind)

    def model_ops(self):
        def plug(party: ModelParty, carrier: Carrier) -> Carrier:
            w = expect(carrier, Weights)
            party.lm.model = plug_adapters(party.lm.model, w.tensors, self.config.lora)
            party.lm.mark_changed("adapters")
            return Metrics(values={"adapter_tensors": len(w.tensors)})

        return super().model_ops() | {"emulator": emulator_op(self.config), "plug": plug}

    def fit(self, data: DataParty) -> None:
        # 1. emulator in, 2. adapters trained locally on private records, 3. only the adapters go out
        self.emu_lm, self.tuned, w, losses = fetch_and_tune(data, self.config, data.seed,
                                                         raw_text=self.kind is TaskKind.DOMAIN_LM)
        adapters = export_adapters(self.tuned, w.meta["kept"])  # renamed to the LM's layer indices
        data.model.call("plug", Weights(tensors=adapters, origin="adapter"))
        super().fit(data)
        self.report = {"revealed_param_share": w.meta["revealed_param_share"], "kept_layers": w.meta["kept"],
                       "distill_cached": w.meta["distill_cached"], "distill_losses": w.meta["distill_losses"],
                       "adapter_params": int(sum(a.size for a in adapters.values())),
                       "lora_loss_first_last": [losses[0], losses[-1]]}

    def language_models(self, data: DataParty, model: ModelParty) -> dict[str, CausalLM]:
        lm = model.lm
        emu_tok = self.emu_lm.tokenizer  # Offsite-Tuning's three rows, plus the emulator with its adapters
        return {"lm": CausalLM(lm.tokenizer, AdaptersOff(lm.model), "lm"),
                "emulator": CausalLM(emu_tok, AdaptersOff(self.tuned), "emulator"),
                "emulator+adapters": self.emu_lm, "deployed": lm}
