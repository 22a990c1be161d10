"""router: cost-aware routing between the data party's SM and the LM at inference time. Each query is
answered by the SM when its confidence clears a threshold set on the validation records; only the
others are sent to the LM (a declared exposure, counted per query)."""
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.prompting import PROMPT_PARAMS, PromptModelSide
from silobridge.strategies.router.config import RouterConfig
from silobridge.strategies.router.data_side import RouterData


@register
class Router(Strategy):
    name = "router"
    black_box = True
    summary = "SM answers confident queries, the LM the rest (threshold set on validation to a cost or quality target)"
    Config = RouterConfig
    DataSide = RouterData
    ModelSide = PromptModelSide
    model_params = PROMPT_PARAMS
    exposes = frozenset({"inference_records", "validation_records"})
    kinds = frozenset({TaskKind.CLASSIFY, TaskKind.TABULAR})
