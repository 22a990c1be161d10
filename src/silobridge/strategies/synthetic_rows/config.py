import math
from dataclasses import dataclass

from silobridge.configs import check, option

WRITING = ("auto", "guided", "free")


@dataclass
class SyntheticRowsConfig:
    per_class: int = option(20, "rows the LM writes per class")
    writing: str = option("auto", "how the LM writes a row: 'guided' (the row's frame is fixed and the LM picks each "
                                  "value, constrained to the column's categories or to a number: every row parses), "
                                  "'free' (it writes the whole row as text, parsed and validated after), or 'auto' "
                                  "(guided with the LM's weights, free for a black-box LM, whose server cannot be "
                                  "constrained here)")
    max_digits: int = option(7, "guided writing: most integer digits of a number the LM writes")
    max_new_tokens: int = option(120, "most tokens the LM writes per row (a field is about 6 tokens)")
    temperature: float = option(0.9, "LM sampling temperature")
    top_p: float = option(0.95, "LM nucleus-sampling mass")
    batch_size: int = option(16, "LM generation batch size")
    min_field_share: float = option(0.8, "drop a written row with fewer than this share of the schema's fields "
                                         "(a missing field stays missing, as in the private rows)")
    agreement_keep: float = option(0.8, "share of each class's valid rows kept: those an SM trained on the private "
                                        "rows finds most typical of their claimed class (1 = keep all)")
    alpha: float = option(1.0, "weight of a kept synthetic row relative to a private one")
    # --- DP class-conditional summaries that steer the rows ------------------------------------------
    summaries: bool = option(False, "send DP summaries of each class's private rows (category shares, numeric "
                                    "quartiles, missing shares; privacy/row_summary.py) for the LM to write rows "
                                    "like them. Off by default: it spends strategy.summary_epsilon of the private "
                                    "rows (the run then reports that ε, not 0), and its gain on the bundled tables "
                                    "is not measured yet")
    summary_epsilon: float = option(1.0, "DP ε of the summaries' release (Gaussian mechanism; recorded in the ledger "
                                         "and reported as the run's ε)")
    summary_delta: float = option(1e-5, "DP δ of the summaries' release (keep it below 1 / private rows)")
    summary_bins: int = option(4, "cells of each numeric column, cut at quantiles of the public rows (more: "
                                  "finer ranges, each count noisier relative to its size)")
    noise_seed: int | None = option(None, "seed of the summaries' DP noise; empty = fresh OS entropy. A known seed "
                                          "lets anyone subtract the noise: set it only for tests and reproducible "
                                          "experiments")

    def __post_init__(self) -> None:
        check(1 <= self.per_class <= 10_000, "strategy.per_class", self.per_class, "in [1, 10000]")
        check(self.writing in WRITING, "strategy.writing", self.writing, f"one of {', '.join(WRITING)}")
        check(1 <= self.max_digits <= 15, "strategy.max_digits", self.max_digits, "in [1, 15]")
        check(self.max_new_tokens >= 8, "strategy.max_new_tokens", self.max_new_tokens, ">= 8")
        check(self.temperature > 0, "strategy.temperature", self.temperature, "> 0")
        check(0 < self.top_p <= 1, "strategy.top_p", self.top_p, "in (0, 1]")
        check(self.batch_size >= 1, "strategy.batch_size", self.batch_size, ">= 1")
        check(0 < self.min_field_share <= 1, "strategy.min_field_share", self.min_field_share, "in (0, 1]")
        check(0 < self.agreement_keep <= 1, "strategy.agreement_keep", self.agreement_keep, "in (0, 1]")
        check(self.alpha >= 0, "strategy.alpha", self.alpha, ">= 0")
        check(math.isfinite(self.summary_epsilon) and self.summary_epsilon > 0, "strategy.summary_epsilon",
              self.summary_epsilon, "a finite number > 0")
        check(0 < self.summary_delta < 1, "strategy.summary_delta", self.summary_delta, "in (0, 1)")
        check(1 <= self.summary_bins <= 20, "strategy.summary_bins", self.summary_bins, "in [1, 20]")
