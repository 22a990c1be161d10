"""synthetic-rows (task 'tabular'): the LM writes rows of each class from the public schema; the data party
keeps those that parse as valid rows and that its SM finds typical of their class, and trains its SM on
private plus kept rows. What crosses: one ``config`` carrier data -> model (counts and a seed) and one
``text`` carrier model -> data (the rows). No private row and no weight crosses. By default no statistic of
the private rows either (ε 0); with ``strategy.summaries`` the config also carries DP class-conditional
summaries of the private rows (privacy/row_summary.py), under ``strategy.summary_epsilon`` (recorded in the
ledger, reported as the run's ε)."""
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.synthetic_rows.config import SyntheticRowsConfig
from silobridge.strategies.synthetic_rows.data_side import SyntheticRowsData
from silobridge.strategies.synthetic_rows.model_side import SyntheticRowsModel


@register
class SyntheticRows(Strategy):
    name = "synthetic-rows"
    black_box = True
    summary = "LM writes rows per class from the public schema; valid, typical ones train the SM (tables)"
    Config = SyntheticRowsConfig
    DataSide = SyntheticRowsData
    ModelSide = SyntheticRowsModel
    model_params = ("writing", "max_digits", "max_new_tokens", "temperature", "top_p", "batch_size")
    kinds = frozenset({TaskKind.TABULAR})
