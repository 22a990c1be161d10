"""Deciding between strategies from measured runs (pure: result dicts in, numbers out).

Each finished run's objective vector is reduced to a few objectives; runs of one strategy (and variant)
are averaged over seeds; each objective is normalised against stated reference points; a user-weighted
sum is the score; and Pareto fronts pair utility with each cost.

Normalisation (written into every report, so a score can be recomputed by hand):

- utility: ``(u − u_low) / (u_high − u_low)``; u_low = the ``sm-only`` mean (what the data party has alone),
  u_high = the ``lm-finetune-private`` mean (the declared upper bound), else the best mean measured. It may
  leave [0, 1]: below the SM alone is negative. For ``domain-lm`` the utility is −log(perplexity).
- bytes, LM calls, data-party seconds: ``log(1 + x) / log(1 + x_max)`` over the runs compared (0 = nothing, 1 =
  the costliest run).
- ε (privacy of the training records): 0 when nothing computed from private records crosses; a DP ε scaled
  as ``0.9 · log(1 + ε) / log(1 + ε_max)`` over the finite ones; 1 when private records or something computed
  from them cross without DP (ε unbounded). Measured leakage (canary and raw-record hits) is reported beside it.

score = w_utility · utility − Σ w_cost · cost, with the default weights of :data:`DEFAULT_WEIGHTS`.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from silobridge.errors import ConfigError

COSTS = ("bytes", "lm_calls", "epsilon", "data_seconds")
DEFAULT_WEIGHTS = {"utility": 1.0, "bytes": 0.1, "lm_calls": 0.2, "epsilon": 0.5, "data_seconds": 0.1}
# exposures of the data party's records (inference inputs are the user's queries: counted apart)
RECORD_EXPOSURES = ("private_records", "retrieved_records", "validation_records", "private_model")
LABELS = {"utility": "utility", "bytes": "bytes over the wire", "lm_calls": "LM calls",
          "epsilon": "privacy cost (ε)", "data_seconds": "data-party seconds"}


def parse_weights(text: str | None) -> dict[str, float]:
    """``utility=1,bytes=0.2`` → weights (the others keep their defaults)."""
    w = dict(DEFAULT_WEIGHTS)
    for part in filter(None, (text or "").split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in w:
            raise ConfigError(f"unknown objective '{key}'", where="--weights",
                              fix=f"weight some of: {', '.join(w)} (e.g. utility=1,bytes=0.2)")
        try:
            w[key] = float(value)
        except ValueError:
            raise ConfigError(f"weight of '{key}' is not a number: {value!r}", where="--weights",
                              fix="write key=number pairs, e.g. utility=1,epsilon=0.5") from None
        if w[key] < 0:
            raise ConfigError(f"negative weight for '{key}'", where="--weights", fix="weights are >= 0")
    return w


def variant(result: dict[str, Any]) -> str:
    """A row's name: the strategy, with what sets this run apart (an encoder SM, retrieval's source)."""
    cfg, name = result.get("config", {}), result["strategy"]
    extra = []
    if cfg.get("sm", {}).get("kind") in ("encoder", "logreg"):  # not the task's default SM (tfidf, boost)
        extra.append(f"{cfg['sm']['kind']} SM")
    source = cfg.get("strategy", {}).get("source")
    if source and source != "private":
        extra.append(f"{source} source")
    return name + (f" ({', '.join(extra)})" if extra else "")


def epsilon_of(result: dict[str, Any]) -> float:
    """ε of the training records: the DP ε a run reports; else 0 when nothing computed from private records
    crossed, ∞ when such a thing crossed without DP (a declared exposure of records, an undeclared
    private-derived carrier, or a measured hit)."""
    from silobridge.strategies import all_strategies

    p = result["objectives"]["privacy"]
    exposures = p.get("exposures", {})  # a declared exposure all of whose carriers were DP counts by its ε
    exposed = any(exposures.get(k) and exposures[k].get("carriers", 1) > exposures[k].get("dp_carriers", 0)
                  for k in RECORD_EXPOSURES)
    # measured: a canary, or a protected record that crossed outside every declared exposure (inference and
    # evaluation texts cross declared; they are the queries and the harness's held-out texts, not training data)
    leaked = p.get("canary_hits", 0) > 0 or p.get("raw_record_hits", 0) > p.get("declared_exposures", 0)
    cls = all_strategies().get(result["strategy"])
    derived = bool(cls and cls.private_derived)
    if exposed or leaked:
        return math.inf
    if p.get("epsilon") is not None:
        return float(p["epsilon"])
    return math.inf if derived else 0.0


def raw_objectives(result: dict[str, Any]) -> dict[str, float]:
    o = result["objectives"]
    u, c, q, t, p = o["utility"], o["communication"], o["lm_queries"], o["compute"], o["privacy"]
    utility = u.get("accuracy") if result.get("task_kind", "classify") == "classify" else \
        -math.log(u["perplexity"]) if u.get("perplexity") else None
    n_test = (result.get("splits") or {}).get("test") or result.get("config", {}).get("data", {}).get("n_test") or 0
    queries = p.get("exposures", {}).get("inference_records", {}).get("texts", 0)
    return {"utility": utility, "accuracy": u.get("accuracy"), "macro_f1": u.get("macro_f1"), "auc": u.get("auc"),
            "perplexity": u.get("perplexity"),
            "bytes": c["bytes_data_to_model"] + c["bytes_model_to_data"], "lm_calls": q["calls"],
            "lm_calls_per_1k": 1000 * q["calls"] / n_test if n_test else None,
            "epsilon": epsilon_of(result), "data_seconds": t["data_party_seconds"],
            "model_seconds": t["model_party_seconds"], "wall_seconds": t.get("wall_seconds"),
            "canary_hits": p.get("canary_hits", 0), "raw_record_hits": p.get("raw_record_hits", 0),
            "undeclared_hits": max(0, p.get("raw_record_hits", 0) - p.get("declared_exposures", 0)),
            "queries_sent": queries,
            "lm_share_declared": o.get("model_leakage", {}).get("lm_param_share_declared") or 0.0,
            "lm_share_exact": o.get("model_leakage", {}).get("lm_param_share_exact") or 0.0,
            "labels": (o.get("labels") or {}).get("total")}


@dataclass
class Row:
    """One strategy (variant): its objectives, mean and sd over seeds, and its normalised score."""

    name: str
    strategy: str
    task_kind: str
    seeds: list[int]
    mean: dict[str, float]
    sd: dict[str, float]
    config: dict[str, Any]
    norm: dict[str, float] = field(default_factory=dict)
    score: float = 0.0


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    if any(math.isinf(x) for x in xs):
        return math.inf
    return statistics.mean(xs)


def _sd(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None and not math.isinf(x)]
    return statistics.stdev(xs) if len(xs) > 1 else None


def rows_of(results: list[dict[str, Any]]) -> list[Row]:
    """Group finished runs by strategy variant and task kind; mean and sd over seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r.get("task_kind", "classify"), variant(r)), []).append(r)
    rows = []
    for (kind, name), rs in sorted(groups.items()):
        objs = [raw_objectives(r) for r in rs]
        keys = objs[0].keys()
        rows.append(Row(name, rs[0]["strategy"], kind, sorted(r["seed"] for r in rs),
                        {k: _mean([x[k] for x in objs]) for k in keys}, {k: _sd([x[k] for x in objs]) for k in keys},
                        rs[0].get("config", {})))
    return rows


@dataclass
class Normalisation:
    """The reference points every normalised objective was computed from."""

    utility_low: float | None
    utility_low_from: str
    utility_high: float | None
    utility_high_from: str
    cost_max: dict[str, float]
    weights: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"utility": {"low": self.utility_low, "low_from": self.utility_low_from, "high": self.utility_high,
                            "high_from": self.utility_high_from},
                "cost_max": self.cost_max, "weights": self.weights}


def normalise(rows: list[Row], weights: dict[str, float] | None = None) -> Normalisation:
    """Fill each row's ``norm`` and ``score`` (rows of one task kind); return the reference points."""
    w = dict(weights or DEFAULT_WEIGHTS)
    kinds = {r.task_kind for r in rows}
    if len(kinds) > 1:
        raise ConfigError(f"runs of several task kinds ({', '.join(sorted(kinds))}) cannot share one score",
                          where="runs", fix="score classify and domain-lm runs separately")
    scored = [r for r in rows if r.mean["utility"] is not None]
    base = next((r for r in scored if r.name == "sm-only"), None) or \
        next((r for r in scored if r.strategy == "sm-only" and "encoder" not in r.name), None)
    top = next((r for r in scored if r.strategy == "lm-finetune-private"), None)
    best = max(scored, key=lambda r: r.mean["utility"], default=None)
    low, low_from = (base.mean["utility"], "sm-only") if base else \
        (min((r.mean["utility"] for r in scored), default=None), "the worst run (no sm-only measured)")
    high, high_from = (top.mean["utility"], "lm-finetune-private (the declared upper bound)") if top else \
        (best.mean["utility"] if best else None, "the best run (no lm-finetune-private measured)")
    if high is not None and low is not None and high <= low:
        high, high_from = (best.mean["utility"], "the best run") if best else (high, high_from)
    finite_eps = [r.mean["epsilon"] for r in rows if r.mean["epsilon"] and math.isfinite(r.mean["epsilon"])]
    cmax = {k: max((r.mean[k] for r in rows if r.mean[k] is not None and math.isfinite(r.mean[k])), default=0.0)
            for k in COSTS}
    cmax["epsilon"] = max(finite_eps, default=0.0)
    for r in rows:
        n = {}
        u = r.mean["utility"]
        n["utility"] = None if u is None or low is None or high is None or high == low else (u - low) / (high - low)
        for k in ("bytes", "lm_calls", "data_seconds"):
            n[k] = math.log1p(r.mean[k]) / math.log1p(cmax[k]) if cmax[k] > 0 else 0.0
        eps = r.mean["epsilon"]
        n["epsilon"] = 1.0 if math.isinf(eps) else 0.0 if eps == 0 else \
            0.9 * math.log1p(eps) / math.log1p(cmax["epsilon"])
        r.norm = n
        r.score = (w["utility"] * (n["utility"] or 0.0)) - sum(w[k] * n[k] for k in COSTS)
    return Normalisation(low, low_from, high, high_from, cmax, w)


def pareto(rows: list[Row], cost: str) -> list[Row]:
    """The rows no other row beats on utility (higher) and ``cost`` (lower) at once, by utility."""
    pts = [r for r in rows if r.mean["utility"] is not None and r.mean[cost] is not None]

    def dominated(a: Row) -> bool:
        return any(b.mean["utility"] >= a.mean["utility"] and b.mean[cost] <= a.mean[cost]
                   and (b.mean["utility"] > a.mean["utility"] or b.mean[cost] < a.mean[cost]) for b in pts)
    return sorted((r for r in pts if not dominated(r)), key=lambda r: -r.mean["utility"])


def fronts(rows: list[Row]) -> dict[str, list[str]]:
    """Names on each utility-vs-cost front, and under 'dominated everywhere' those on none."""
    out = {cost: [r.name for r in pareto(rows, cost)] for cost in COSTS}
    on_some = {n for names in out.values() for n in names}
    out["dominated everywhere"] = [r.name for r in rows if r.name not in on_some]
    return out
