"""Routing math (pure numpy): the cost-quality curve of a confidence cascade and RouteLLM's measures on it
(Ong et al., 2024: PGR, CPT(x%), APGR)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def quality(labels: np.ndarray, pred: np.ndarray, metric: str) -> float:
    if metric == "accuracy":
        return float((pred == labels).mean())
    from sklearn.metrics import f1_score

    return float(f1_score(labels, pred, average="macro", zero_division=0))


@dataclass
class Curve:
    """Routing the k least confident of n queries to the LM, k = 0..n: the confidence threshold that does
    it (route when confidence < threshold), the LM's share of queries and the cascade's quality."""

    thresholds: np.ndarray
    lm_share: np.ndarray
    quality: np.ndarray

    def as_rows(self) -> list[dict[str, float]]:
        return [{"threshold": float(t), "lm_share": round(float(s), 4), "quality": round(float(q), 4)}
                for t, s, q in zip(self.thresholds, self.lm_share, self.quality)]


def cascade_curve(conf: np.ndarray, sm_pred: np.ndarray, lm_pred: np.ndarray, labels: np.ndarray,
                  metric: str = "accuracy") -> Curve:
    n = len(conf)
    order = np.argsort(conf, kind="stable")
    thresholds, shares, qs = [], [], []
    for k in range(n + 1):
        routed = np.zeros(n, bool)
        routed[order[:k]] = True
        # the threshold that routes exactly these (ties in confidence route together: skip inner points)
        t = float(conf[order[k]]) if k < n else float("inf")
        if k and k < n and conf[order[k]] == conf[order[k - 1]]:
            continue
        thresholds.append(t)
        shares.append(k / n)
        qs.append(quality(labels, np.where(routed, lm_pred, sm_pred), metric))
    return Curve(np.array(thresholds), np.array(shares), np.array(qs))


def threshold_for_calls(conf: np.ndarray, max_share: float) -> float:
    """The highest threshold that routes at most ``max_share`` of these queries."""
    if max_share <= 0 or not len(conf):
        return float("-inf")
    s = np.sort(conf)
    k = int(np.floor(max_share * len(s) + 1e-9))
    return float("inf") if k >= len(s) else float(s[k])


def threshold_for_quality(curve: Curve, share_of_best: float) -> tuple[float, float]:
    """The threshold with the fewest LM calls whose quality reaches ``share_of_best`` of the better single
    model (SM alone: no routing; LM alone: everything routed). Returns (threshold, target quality)."""
    best = max(curve.quality[0], curve.quality[-1])
    target = share_of_best * best
    ok = np.flatnonzero(curve.quality >= target - 1e-12)
    return float(curve.thresholds[ok[0]]), float(target)


def routellm_measures(curve: Curve) -> dict[str, float | None]:
    """PGR(share) = (quality - SM's) / (LM's - SM's); CPT(x) = the smallest LM share with PGR >= x; APGR = the
    area under PGR over the LM share. Undefined (None) when the LM is not better than the SM: routing then
    cannot recover a gap. Also: whether some cascade beats both single models, and the LM calls saved at
    >= 95% of the better single model's quality."""
    q_sm, q_lm = float(curve.quality[0]), float(curve.quality[-1])
    beats = bool(curve.quality.max() > max(q_sm, q_lm) + 1e-12)
    t95, _ = threshold_for_quality(curve, 0.95)
    share95 = float(curve.lm_share[np.flatnonzero(curve.thresholds == t95)[0]])
    out: dict[str, float | None] = {
        "sm_quality": round(q_sm, 4), "lm_quality": round(q_lm, 4), "cascade_beats_both": beats,
        "best_cascade_quality": round(float(curve.quality.max()), 4), "lm_calls_saved_at_95pct": round(1 - share95, 4),
        "cpt_50": None, "cpt_80": None, "apgr": None}
    if q_lm <= q_sm:
        return out
    pgr = (curve.quality - q_sm) / (q_lm - q_sm)
    for x in (50, 80):
        hit = np.flatnonzero(pgr >= x / 100 - 1e-12)
        out[f"cpt_{x}"] = round(float(curve.lm_share[hit[0]]), 4)
    out["apgr"] = round(float(np.trapezoid(pgr, curve.lm_share)), 4)
    return out
