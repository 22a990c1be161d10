"""speculative decoding across the boundary (task domain-lm): the data party's emulator, LoRA-tuned on its
private texts, drafts tokens; the LM verifies each draft in one forward pass. The output is exactly the LM's
greedy output with fewer LM passes; the prompts go to the LM (declared) and only token ids cross per round."""
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.emulation import EMULATOR_PARAMS
from silobridge.strategies.speculative.config import SpeculativeConfig
from silobridge.strategies.speculative.data_side import SpeculativeData
from silobridge.strategies.speculative.model_side import SpeculativeModel


@register
class Speculative(Strategy):
    name = "speculative"
    summary = "emulator (tuned on private text) drafts, the LM verifies: the LM's greedy output, fewer LM passes"
    Config = SpeculativeConfig
    DataSide = SpeculativeData
    ModelSide = SpeculativeModel
    model_params = EMULATOR_PARAMS
    exposes = frozenset({"lm_weights", "inference_records"})
    kinds = frozenset({TaskKind.DOMAIN_LM})
    model_lms = True
