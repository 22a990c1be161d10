"""offsite-tuning, model side: serve the emulator, plug the adapters that come back into the full LM
(their rank and alpha travel with them), and serve inference with it."""
from __future__ import annotations

from silobridge.boundary import Carrier, Metrics, Weights, expect
from silobridge.errors import BoundaryError
from silobridge.models.lm import CausalLM
from silobridge.models.lora import LoraSpec, plug_adapters
from silobridge.strategies.emulation import AdaptersOff, make_emulator
from silobridge.strategies.lm_served import LMServedModel


class OffsiteTuningModel(LMServedModel):
    plugged = False

    def ops(self) -> dict:
        return super().ops() | {"emulator": lambda c: make_emulator(self.party, self.config, c), "plug": self.plug}

    def plug(self, carrier: Carrier) -> Carrier:
        w = expect(carrier, Weights)
        try:
            r, alpha = int(w.meta["r"]), int(w.meta["alpha"])
        except (KeyError, TypeError, ValueError):
            raise BoundaryError("the adapters carry no LoRA rank/alpha", where="model.plug",
                                fix="send Weights(meta={'r': int, 'alpha': int}) with the adapters") from None
        if not 1 <= r <= 1024 or alpha < 1:
            raise BoundaryError(f"LoRA r={r}, alpha={alpha} out of range", where="model.plug")
        lm = self.party.lm
        lm.model = plug_adapters(lm.model, w.tensors, LoraSpec(r=r, alpha=alpha))
        lm.mark_changed()
        self.plugged = True
        return Metrics(values={"adapter_tensors": len(w.tensors)})

    def language_models(self) -> dict[str, CausalLM]:
        lm = self.party.lm
        base = CausalLM(lm.tokenizer, AdaptersOff(lm.model), "lm") if self.plugged else lm
        return {"lm": base, "deployed": lm}
