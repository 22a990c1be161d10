"""lm-zero-shot: a privacy-violating reference point. Every inference input is shipped to the LM,
which scores the label words; the exposure is declared and counted, never hidden."""
from __future__ import annotations

from silobridge.strategies.base import register
from silobridge.strategies.lm_served import LMServed
from silobridge.strategies.lm_zero_shot.config import LMZeroShotConfig


@register
class LMZeroShot(LMServed):
    name = "lm-zero-shot"
    summary = "LM labels each test text by label-word likelihood (ships test records to the LM: declared)"
    Config = LMZeroShotConfig
