"""The planner: the user's constraints against measured runs (mean over seeds), the strategies that meet
every one ranked by the score, and one line on why each other is excluded."""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any

from silobridge.bench.score import Row, normalise, rows_of
from silobridge.configs import check, option


@dataclass
class Constraints:
    max_epsilon: float | None = option(None, "ε of the training records at most this (∞ when private records or "
                                             "non-DP results of them cross)")
    no_lm_weights: bool = option(False, "no share of the LM's weights may reach the data party")
    no_private_records: bool = option(False, "no private training or validation record, nor anything computed "
                                             "from them without DP, may leave the data party")
    local_inference: bool = option(False, "the user's queries (test inputs) never leave the data party")
    max_lm_calls_per_1k: float | None = option(None, "LM calls per 1,000 queries at most (all calls of a run: "
                                                     "training, calibration and inference)")
    max_bytes: float | None = option(None, "bytes over the wire at most (both directions)")
    max_data_party_seconds: float | None = option(None, "data-party compute seconds at most")
    min_utility: float | None = option(None, "utility (accuracy; −log perplexity for domain-lm) at least this")

    def __post_init__(self) -> None:
        for key in ("max_epsilon", "max_lm_calls_per_1k", "max_bytes", "max_data_party_seconds"):
            value = getattr(self, key)
            check(value is None or value >= 0, f"--{key.replace('_', '-')}", value, ">= 0")


def why_excluded(row: Row, c: Constraints) -> str | None:
    """The first constraint ``row`` breaks, in words; None if it meets them all."""
    m = row.mean
    if c.max_epsilon is not None and m["epsilon"] > c.max_epsilon:
        eps = "unbounded (no DP on what crosses)" if math.isinf(m["epsilon"]) else f"{m['epsilon']:.2f}"
        return f"ε {eps} > {c.max_epsilon:g}"
    if c.no_lm_weights and (m["lm_share_declared"] > 0 or m["lm_share_exact"] > 0):
        return f"{m['lm_share_declared']:.0%} of the LM's weights reach the data party"
    if c.no_private_records and (math.isinf(m["epsilon"]) or m["undeclared_hits"] > 0 or m["canary_hits"] > 0):
        return "private records (or non-DP results of them) leave the data party"
    if c.local_inference and m["queries_sent"]:
        return f"{m['queries_sent']:,.0f} queries are sent to the LM"
    if c.max_lm_calls_per_1k is not None and (m["lm_calls_per_1k"] or 0) > c.max_lm_calls_per_1k:
        return f"{m['lm_calls_per_1k']:,.0f} LM calls per 1k queries > {c.max_lm_calls_per_1k:g}"
    if c.max_bytes is not None and m["bytes"] > c.max_bytes:
        return f"{m['bytes']:,.0f} bytes > {c.max_bytes:,.0f}"
    if c.max_data_party_seconds is not None and m["data_seconds"] > c.max_data_party_seconds:
        return f"{m['data_seconds']:,.0f} data-party seconds > {c.max_data_party_seconds:g}"
    if c.min_utility is not None and (m["utility"] is None or m["utility"] < c.min_utility):
        return f"utility {m['utility']:.3f} < {c.min_utility:g}" if m["utility"] is not None else "no utility measured"
    return None


@dataclass
class Plan:
    ranked: list[Row]
    excluded: list[tuple[Row, str]]
    normalisation: dict[str, Any]

    def command(self, extra: list[str] | None = None) -> str | None:
        """The command that runs the winner with the settings it was measured with."""
        if not self.ranked:
            return None
        win = self.ranked[0]
        args = ["silobridge", "run", win.strategy]
        sm = win.config.get("sm", {})
        if sm.get("kind") == "encoder":
            args += ["--sm", sm.get("path") or "encoder"]
        source = win.config.get("strategy", {}).get("source")
        if source and source != "private":
            args += ["--set", f"strategy.source={source}"]
        if win.task_kind != "classify":
            args += ["--task", win.task_kind]
        return " ".join(shlex.quote(a) for a in args + list(extra or []))


def plan(results: list[dict[str, Any]], constraints: Constraints, weights: dict[str, float] | None = None,
         task_kind: str = "classify") -> Plan:
    rows = [r for r in rows_of(results) if r.task_kind == task_kind]
    norm = normalise(rows, weights) if rows else None
    ranked, excluded = [], []
    for r in rows:
        why = why_excluded(r, constraints)
        if why:
            excluded.append((r, why))
        else:
            ranked.append(r)
    ranked.sort(key=lambda r: -r.score)
    return Plan(ranked, excluded, norm.as_dict() if norm else {})
