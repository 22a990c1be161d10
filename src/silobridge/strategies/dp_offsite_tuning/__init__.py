"""dp-offsite-tuning (SM -> LM, defended): offsite-tuning with the adapters trained by DP-SGD on the
emulator, so the leakiest SM -> LM path has a twin whose leakage the audit can compare (canary exposure
and membership inference on the LM with the plugged adapters) at a stated epsilon."""
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.dp_offsite_tuning.config import DPOffsiteTuningConfig
from silobridge.strategies.dp_offsite_tuning.data_side import DPOffsiteTuningData
from silobridge.strategies.emulation import EMULATOR_PARAMS
from silobridge.strategies.offsite_tuning.model_side import OffsiteTuningModel
from silobridge.strategies.prompting import PROMPT_PARAMS


@register
class DPOffsiteTuning(Strategy):
    name = "dp-offsite-tuning"
    summary = "offsite-tuning with DP-SGD adapters (epsilon in the result): the defended twin of offsite-tuning"
    Config = DPOffsiteTuningConfig
    DataSide = DPOffsiteTuningData
    ModelSide = OffsiteTuningModel
    model_params = tuple(dict.fromkeys(EMULATOR_PARAMS + PROMPT_PARAMS))
    exposes = frozenset({"lm_weights", "inference_records", "private_model"})
    kinds = frozenset({TaskKind.CLASSIFY, TaskKind.DOMAIN_LM})  # not tables (task tabular)
    model_lms = True
