"""Utility metrics on the test split."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from silobridge.errors import ModelError


def utility(labels: np.ndarray, proba: np.ndarray, k: int) -> dict[str, float | None]:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (len(labels), k) or not np.isfinite(proba).all():
        raise ModelError(f"predictions have shape {proba.shape} (finite: {np.isfinite(proba).all()}), "
                         f"expected ({len(labels)}, {k})", where="strategy.predict_proba")
    pred = proba.argmax(1)
    auc = None
    if k == 2 and len(np.unique(labels)) == 2:
        # AUC of the first class (for the reviews task: 'great')
        auc = float(roc_auc_score(labels == 0, proba[:, 0]))
    return {"accuracy": float(accuracy_score(labels, pred)),
            "macro_f1": float(f1_score(labels, pred, average="macro", labels=list(range(k)), zero_division=0)),
            "auc": auc,
            "majority_baseline": float(np.bincount(labels, minlength=k).max() / len(labels))}
