"""synthetic (LM -> SM, generation-based transfer): the model party writes labelled synthetic texts
from public task metadata; the data party filters them and trains its SM on private records plus the
kept rows; an optional feedback round steers the LM with DP class prototypes (epsilon in the ledger).

What crosses: two ``config`` carriers data -> model (round 0: counts and a seed; round 1 adds the
DP prototype terms) and two ``text`` carriers model -> data (the synthetic rows). No private record
and no model weight crosses."""
from silobridge.strategies.base import Strategy, register
from silobridge.strategies.synthetic.config import SyntheticConfig
from silobridge.strategies.synthetic.data_side import SyntheticData
from silobridge.strategies.synthetic.model_side import SYNTHETIC_PARAMS, SyntheticModel


@register
class Synthetic(Strategy):
    name = "synthetic"
    black_box = True
    summary = "LM writes labelled synthetic texts (2nd round steered by DP class prototypes); SM trains on them"
    Config = SyntheticConfig
    DataSide = SyntheticData
    ModelSide = SyntheticModel
    model_params = SYNTHETIC_PARAMS
