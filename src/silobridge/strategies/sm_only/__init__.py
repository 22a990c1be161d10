from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.sm_only.config import SMOnlyConfig
from silobridge.strategies.sm_only.data_side import SMOnlyData


@register
class SMOnly(Strategy):
    name = "sm-only"
    black_box = True
    summary = "SM trained on the private labelled set alone (no LM, nothing crosses)"
    Config = SMOnlyConfig
    DataSide = SMOnlyData
    kinds = frozenset({TaskKind.CLASSIFY, TaskKind.TABULAR})
