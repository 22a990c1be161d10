"""lm-zero-shot: a privacy-violating reference point. Every inference input is shipped to the LM,
which scores the label words; the exposure is declared and counted, never hidden. For task
'domain-lm' it is the reference "LM alone": the untouched LM, evaluated by the model party. With
``strategy.choose_prompt`` the template, answer words and their assignment to classes are chosen on the
validation records (sent too, declared 'validation_records'; choice.py)."""
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.lm_zero_shot.choice import LMZeroShotData, LMZeroShotModel
from silobridge.strategies.lm_zero_shot.config import LMZeroShotConfig
from silobridge.strategies.prompting import PROMPT_PARAMS


@register
class LMZeroShot(Strategy):
    name = "lm-zero-shot"
    black_box = True
    summary = "LM labels each test text by label-word likelihood (ships test records to the LM: declared)"
    Config = LMZeroShotConfig
    DataSide = LMZeroShotData
    ModelSide = LMZeroShotModel
    model_params = PROMPT_PARAMS
    exposes = frozenset({"inference_records", "validation_records"})  # the latter only with choose_prompt
    kinds = frozenset(TaskKind)
    model_lms = True
