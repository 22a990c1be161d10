"""offsite-tuning (SM -> LM): the data party trains LoRA adapters on the emulator with its private
records and sends back only the adapters; the model party plugs them into its full LM, which then
serves the data party's inference inputs (a declared exposure, as for lm-zero-shot)."""
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.emulation import EMULATOR_PARAMS
from silobridge.strategies.offsite_tuning.config import OffsiteTuningConfig
from silobridge.strategies.offsite_tuning.data_side import OffsiteTuningData
from silobridge.strategies.offsite_tuning.model_side import OffsiteTuningModel
from silobridge.strategies.prompting import PROMPT_PARAMS


@register
class OffsiteTuning(Strategy):
    name = "offsite-tuning"
    summary = "adapters trained on the emulator with private data, plugged into the full LM (LM serves inference)"
    Config = OffsiteTuningConfig
    DataSide = OffsiteTuningData
    ModelSide = OffsiteTuningModel
    model_params = tuple(dict.fromkeys(EMULATOR_PARAMS + PROMPT_PARAMS))
    exposes = frozenset({"lm_weights", "inference_records", "private_model"})
    kinds = frozenset({TaskKind.CLASSIFY, TaskKind.DOMAIN_LM})  # not tables (task tabular)
    model_lms = True
