"""lm-zero-shot: a privacy-violating reference point. Every inference input is shipped to the LM,
which scores the label words; the exposure is declared and counted, never hidden. For task
'domain-lm' it is the reference "LM alone": the untouched LM, nothing crosses."""
from __future__ import annotations

from silobridge.strategies.base import TaskKind, register
from silobridge.strategies.lm_served import LMServed
from silobridge.strategies.lm_zero_shot.config import LMZeroShotConfig


@register
class LMZeroShot(LMServed):
    name = "lm-zero-shot"
    summary = "LM labels each test text by label-word likelihood (ships test records to the LM: declared)"
    Config = LMZeroShotConfig
    kinds = frozenset(TaskKind)
