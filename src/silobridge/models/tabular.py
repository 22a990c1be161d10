"""Small models for task 'tabular' (scikit-learn): histogram gradient boosting on the parsed row (native
missing values and categories) and logistic regression on one-hot / standardised features. Both take the
rows as their serialised texts, parse them with the task's :class:`TableSchema`, and follow the SMs'
convention (models/sm.py): ``fit(texts, targets, sample_weight=None, val=None) -> self`` with ``targets``
an (n, k) matrix of class distributions, and ``predict_proba(texts)``. Soft targets are fitted exactly:
each row appears once per class with weight p(class)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from silobridge.data.table import CATEGORICAL, TableSchema
from silobridge.models.sm import check_targets


def expand(targets: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, hard classes and weights whose weighted log-loss equals the soft cross-entropy."""
    rows, ys, ws = [], [], []
    for c in range(targets.shape[1]):
        keep = targets[:, c] > 1e-6
        rows.append(np.flatnonzero(keep))
        ys.append(np.full(keep.sum(), c))
        ws.append(targets[keep, c] * weights[keep])
    return np.concatenate(rows), np.concatenate(ys), np.concatenate(ws)


def ordinal(schema: TableSchema, df: pd.DataFrame) -> np.ndarray:
    """Numeric columns as they are, categories as their index in the schema; NaN = missing."""
    out = np.full((len(df), len(schema.columns)), np.nan)
    for j, col in enumerate(schema.columns):
        if col.kind == CATEGORICAL:
            codes = df[col.name].map({v: i for i, v in enumerate(col.categories)})
            out[:, j] = pd.to_numeric(codes, errors="coerce").to_numpy(dtype=float)
        else:
            out[:, j] = df[col.name].to_numpy(dtype=float)
    return out


class _TableSM:
    """What both table SMs share: parsing, soft-label expansion, a constant model for one class."""

    def __init__(self, schema: TableSchema, n_classes: int, seed: int = 0):
        self.schema, self.k, self.seed = schema, n_classes, seed
        self.const: np.ndarray | None = None

    def _prepare(self, texts, targets, sample_weight):
        targets = check_targets(texts, targets, self.k)
        w = np.ones(len(texts)) if sample_weight is None else np.asarray(sample_weight, float)
        rows, ys, ws = expand(targets, w)
        X = self._features(texts, fit=True)
        self.const = None
        if len(np.unique(ys)) < 2:  # one class only: predict the (weighted) class distribution
            self.const = np.bincount(ys, weights=ws, minlength=self.k) / max(ws.sum(), 1e-12)
        return X[rows], ys, ws

    def _features(self, texts: list[str], fit: bool = False) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        proba = np.zeros((len(texts), self.k))
        if self.const is not None:
            return proba + self.const
        if len(texts):
            proba[:, self.clf.classes_] = self.clf.predict_proba(self._features(texts))
        return proba


def one_thread():
    """OpenMP limited to one thread: on tables of a few thousand rows scikit-learn's boosting spends far
    longer synchronising threads than computing (and it shares the CPU with the LM)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


class BoostedTrees(_TableSM):
    """scikit-learn's HistGradientBoostingClassifier on the parsed row. With validation records, the
    number of boosting iterations is chosen on their log-loss (early stopping), then refitted."""

    def __init__(self, schema: TableSchema, n_classes: int, trees: int = 200, seed: int = 0):
        super().__init__(schema, n_classes, seed)
        self.trees = trees

    def _features(self, texts: list[str], fit: bool = False) -> np.ndarray:
        return ordinal(self.schema, self.schema.frame(texts))

    def _model(self, iters: int, n: int):
        from sklearn.ensemble import HistGradientBoostingClassifier

        mask = [c.kind == CATEGORICAL for c in self.schema.columns]
        return HistGradientBoostingClassifier(
            max_iter=iters, learning_rate=0.1, min_samples_leaf=int(min(20, max(3, n // 10))),
            categorical_features=mask if any(mask) else None, early_stopping=False, random_state=self.seed)

    def fit(self, texts: list[str], targets: np.ndarray, sample_weight: np.ndarray | None = None,
            val: tuple[list[str], np.ndarray] | None = None) -> "BoostedTrees":
        with one_thread():
            return self._fit(texts, targets, sample_weight, val)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        with one_thread():
            return super().predict_proba(texts)

    def _fit(self, texts, targets, sample_weight, val) -> "BoostedTrees":
        X, ys, ws = self._prepare(texts, targets, sample_weight)
        if self.const is not None:
            return self
        self.clf = self._model(self.trees, len(texts)).fit(X, ys, sample_weight=ws)
        self.iterations = self.trees
        if val is not None and len(val[0]) and self.trees > 1:
            Xv, yv = self._features(list(val[0])), np.asarray(val[1])
            cols = {c: i for i, c in enumerate(self.clf.classes_)}
            losses = []
            for p in self.clf.staged_predict_proba(Xv):
                pv = np.array([p[i, cols[y]] if y in cols else 0.0 for i, y in enumerate(yv)])
                losses.append(-np.mean(np.log(np.clip(pv, 1e-9, 1))))
            best = int(np.argmin(losses)) + 1
            if best < self.clf.n_iter_:
                self.clf = self._model(best, len(texts)).fit(X, ys, sample_weight=ws)
                self.iterations = best
        return self


class TableLR(_TableSM):
    """Logistic regression on one-hot categories (missing: no category) and standardised numbers (missing:
    the training mean, plus a missing-indicator column where training rows lacked the value)."""

    def __init__(self, schema: TableSchema, n_classes: int, C: float = 1.0, seed: int = 0):
        super().__init__(schema, n_classes, seed)
        self.C = C

    def _features(self, texts: list[str], fit: bool = False) -> np.ndarray:
        X = ordinal(self.schema, self.schema.frame(texts))
        cat = [c.kind == CATEGORICAL for c in self.schema.columns]
        if fit:
            num = X[:, ~np.array(cat)] if len(cat) else X
            with np.errstate(all="ignore"):
                self.mean = np.nan_to_num(np.nanmean(num, 0)) if len(num) else np.zeros(num.shape[1])
                self.std = np.nan_to_num(np.nanstd(num, 0)) if len(num) else np.ones(num.shape[1])
            self.std[self.std == 0] = 1.0
            self.flags = np.isnan(num).any(0)
        parts, n_j = [], 0
        for j, col in enumerate(self.schema.columns):
            if cat[j]:
                onehot = np.zeros((len(X), len(col.categories)))
                ok = ~np.isnan(X[:, j])
                onehot[np.flatnonzero(ok), X[ok, j].astype(int)] = 1.0
                parts.append(onehot)
            else:
                v = X[:, j]
                miss = np.isnan(v)
                parts.append(((np.where(miss, self.mean[n_j], v) - self.mean[n_j]) / self.std[n_j])[:, None])
                if self.flags[n_j]:
                    parts.append(miss[:, None].astype(float))
                n_j += 1
        return np.hstack(parts) if parts else np.zeros((len(X), 0))

    def fit(self, texts: list[str], targets: np.ndarray, sample_weight: np.ndarray | None = None,
            val: tuple[list[str], np.ndarray] | None = None) -> "TableLR":
        from sklearn.linear_model import LogisticRegression

        X, ys, ws = self._prepare(texts, targets, sample_weight)
        if self.const is None:
            self.clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(X, ys, sample_weight=ws)
        return self
