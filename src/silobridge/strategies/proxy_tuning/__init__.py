"""proxy-tuning (Liu et al., 2024): a small model that shares the LM's tokenizer — the emulator — is tuned
on the private records in the data silo; at inference the LM's label logits are shifted by
alpha x (tuned - untuned emulator's). The LM itself is never tuned and no adapter leaves the silo; the
queries go to the LM (declared, as for lm-zero-shot) and label log-probs come back."""
from silobridge.strategies.base import Strategy, register
from silobridge.strategies.emulation import EMULATOR_PARAMS, make_emulator
from silobridge.strategies.prompting import PROMPT_PARAMS, PromptModelSide
from silobridge.strategies.proxy_tuning.config import ProxyTuningConfig
from silobridge.strategies.proxy_tuning.data_side import ProxyTuningData


class ProxyTuningModel(PromptModelSide):
    def ops(self) -> dict:
        return super().ops() | {"emulator": lambda c: make_emulator(self.party, self.config, c)}


@register
class ProxyTuning(Strategy):
    name = "proxy-tuning"
    summary = "LM label logits shifted by a tuned-minus-untuned emulator's, in the data silo (LM never tuned)"
    Config = ProxyTuningConfig
    DataSide = ProxyTuningData
    ModelSide = ProxyTuningModel
    model_params = tuple(dict.fromkeys(EMULATOR_PARAMS + PROMPT_PARAMS))
    exposes = frozenset({"lm_weights", "inference_records"})
