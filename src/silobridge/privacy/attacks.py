"""Leakage measures as math over arrays: canary exposure (Carlini et al. 2019, "The Secret Sharer"),
membership-inference scores and their ROC figures (loss threshold; offline LiRA, Carlini et al. 2022),
and agreement between two models' answers (extraction fidelity). No model code here: callers pass
losses, probabilities or predictions; ``bench/leakage.py`` computes them from deployed models."""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm
from sklearn.metrics import roc_auc_score, roc_curve

from silobridge.errors import ConfigError


def exposure(canary_loss: float, reference_losses: np.ndarray) -> dict[str, float]:
    """Exposure of a secret among ``len(reference_losses) + 1`` candidates (the canary and the references,
    all of the same format): log2|R| − log2 rank, rank = 1 + the number of references whose loss is *strictly*
    lower than the canary's (ties go to the canary: a model that cannot tell them apart has not exposed it).
    A canary ranked first among 2^k candidates has exposure k bits; one of median rank, about 1."""
    ref = np.asarray(reference_losses, dtype=float)
    if ref.ndim != 1 or len(ref) == 0:
        raise ConfigError("exposure needs at least one reference candidate", where="reference_losses",
                          fix="score the canary's format with other random secrets")
    rank = 1 + int((ref < canary_loss).sum())
    size = len(ref) + 1
    return {"exposure": math.log2(size) - math.log2(rank), "rank": rank, "candidates": size,
            "max_exposure": math.log2(size)}


def extrapolated_exposure(canary_loss: float, reference_losses: np.ndarray, cap: float) -> float:
    """Exposure beyond what the sampled references can resolve (the Secret Sharer's estimate): a skew-normal
    fitted to the references' losses, exposure = −log2 P(loss ≤ canary loss), at most ``cap`` bits (the
    candidate space)."""
    from scipy.stats import skewnorm

    a, loc, scale = skewnorm.fit(np.asarray(reference_losses, dtype=float))
    p = skewnorm.cdf(canary_loss, a, loc, scale)
    return float(min(cap, -math.log2(max(p, 2.0 ** -cap))))


def loss_scores(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Loss-threshold attack (Yeom et al. 2018): a record's member score is minus its cross-entropy loss."""
    p = np.asarray(proba, dtype=float)[np.arange(len(labels)), np.asarray(labels)]
    return np.log(np.clip(p, 1e-12, 1.0))


def logit_confidence(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's statistic: the logit of the true label's probability, log p − log(1 − p) (near Gaussian)."""
    p = np.clip(np.asarray(proba, dtype=float)[np.arange(len(labels)), np.asarray(labels)], 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def lira_offline(target: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Offline LiRA: ``target`` (n,) is each record's logit confidence under the attacked model, ``references``
    (k, n) the same under k reference models that did not see the record. The score is how far the target's
    confidence sits above the references' Gaussian, one-sided (higher = member). With few references the
    variance is pooled over records (the paper's fixed-variance variant)."""
    ref = np.atleast_2d(np.asarray(references, dtype=float))
    mu = ref.mean(0)
    sd = np.sqrt(ref.var(0, ddof=1).mean()) if ref.shape[0] > 1 else 1.0
    return norm.logcdf((np.asarray(target, dtype=float) - mu) / max(sd, 1e-6))


def tpr_at_fpr(members: np.ndarray, nonmembers: np.ndarray, fpr: float) -> float:
    """True-positive rate of the best threshold whose false-positive rate is at most ``fpr``."""
    y = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    f, t, _ = roc_curve(y, np.r_[members, nonmembers])
    ok = f <= fpr
    return float(t[ok].max()) if ok.any() else 0.0


def mia_report(members: np.ndarray, nonmembers: np.ndarray, n_boot: int = 200,
               rng: np.random.Generator | None = None) -> dict[str, float | list[float] | int]:
    """ROC AUC, TPR at 1 % and 0.1 % FPR, and a 95 % bootstrap interval of the AUC (members and non-members
    resampled separately). With n non-members, a TPR at 0.1 % FPR is only meaningful when n ≥ 1,000:
    below that it is the TPR at zero false positives, and the report says how many non-members there were."""
    m, n = np.asarray(members, dtype=float), np.asarray(nonmembers, dtype=float)
    if len(m) < 2 or len(n) < 2:
        raise ConfigError(f"membership inference needs 2+ members and non-members, got {len(m)} and {len(n)}",
                          where="audit", fix="raise data.n_private / data.n_test")
    y = np.r_[np.ones(len(m)), np.zeros(len(n))]
    auc = float(roc_auc_score(y, np.r_[m, n]))
    rng = rng or np.random.default_rng(0)
    boots = []
    for _ in range(n_boot):
        bm, bn = rng.choice(m, len(m)), rng.choice(n, len(n))
        boots.append(roc_auc_score(y, np.r_[bm, bn]))
    lo, hi = (np.quantile(boots, [0.025, 0.975]).tolist() if boots else [auc, auc])
    return {"auc": round(auc, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
            "tpr_at_1pct_fpr": round(tpr_at_fpr(m, n, 0.01), 4),
            "tpr_at_0.1pct_fpr": round(tpr_at_fpr(m, n, 0.001), 4), "members": len(m), "nonmembers": len(n)}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of positions where two models give the same answer (top-1 label or next token)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.size == 0:
        raise ConfigError(f"agreement needs two non-empty answers of one shape, got {a.shape} and {b.shape}",
                          where="agreement", fix="compare the two models on the same held-out inputs")
    return float((a == b).mean())
