"""lm-finetune-private: the privacy-violating upper bound. The data party ships its private labelled
records (canaries included) to the model party, which LoRA-tunes its LM on them directly; the LM then
serves inference. Both exposures are declared, counted and reported."""
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.lm_finetune_private.config import LMFinetunePrivateConfig
from silobridge.strategies.lm_finetune_private.data_side import LMFinetunePrivateData
from silobridge.strategies.lm_tuning import TUNE_PARAMS, TunedLMModel


@register
class LMFinetunePrivate(Strategy):
    name = "lm-finetune-private"
    summary = "reference upper bound: private records are sent to the LM and tuned on directly (declared)"
    Config = LMFinetunePrivateConfig
    DataSide = LMFinetunePrivateData
    ModelSide = TunedLMModel
    model_params = TUNE_PARAMS
    exposes = frozenset({"inference_records", "private_records"})
    kinds = frozenset({TaskKind.CLASSIFY, TaskKind.DOMAIN_LM})  # not tables (task tabular)
    model_lms = True
