"""distill-public: cross-silo distillation on a public pool. The data party sends public texts; the
model party returns LM soft labels; the data party trains its SM on private hard labels plus the
soft labels. Only public texts and soft labels cross."""
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.distill_public.config import DistillPublicConfig
from silobridge.strategies.distill_public.data_side import DistillPublicData
from silobridge.strategies.prompting import PROMPT_PARAMS, PromptModelSide


@register
class DistillPublic(Strategy):
    name = "distill-public"
    black_box = True
    summary = "SM trained on private labels + LM soft labels of a public unlabelled pool"
    Config = DistillPublicConfig
    DataSide = DistillPublicData
    ModelSide = PromptModelSide
    model_params = PROMPT_PARAMS
    kinds = frozenset({TaskKind.CLASSIFY, TaskKind.TABULAR})
