"""Differentially private class-conditional summaries of a table's private rows (task 'tabular').

Pure math on a :class:`~silobridge.data.table.TableSchema`, private rows (their serialised texts) with
their labels, and public rows (no model code, no I/O). The release is

1. **public cells**: every feature column is cut into cells fixed before any private row is looked
   at: a categorical column's categories (from the public schema), a numeric column's ``bins``
   intervals between quantiles of the *public* rows' values (:func:`public_edges`), and, for every
   column, one "missing" cell. Each row falls in exactly one cell of each column;
2. **Gaussian mechanism**: the per-class count of private rows in every cell of every column (a
   (n_classes, n_cells) matrix, cells with count 0 included) gets independent N(0, sigma^2) noise;
3. **post-processing** (:func:`summarise`): the noisy counts become, per class, each categorical
   column's category shares, each numeric column's median and quartiles (read off the noisy
   histogram, linearly within a cell, the outer cells bounded by the public rows' minimum and
   maximum), and each column's share of missing values. No statistic is computed from the private
   rows except through the noisy counts.

Guarantee (add/remove-one-record neighbouring datasets): adding or removing one private row changes
the count matrix in exactly one cell per feature column, all in the row's own class, by 1 each: for
``d`` feature columns the L2 sensitivity is ``Delta = sqrt(d)`` and the L1 sensitivity ``d``. The
Gaussian mechanism's noise grows with the L2 sensitivity, Laplace's with the L1 one, so on many columns
Gaussian noise is much smaller (credit-scoring's 13 columns: scale ~sqrt(13) against 13); hence Gaussian,
as the project's other releases (privacy/prototypes.py). With sigma
from :func:`~silobridge.privacy.prototypes.gaussian_sigma` (the analytic Gaussian mechanism of Balle &
Wang, ICML 2018, Theorem 8: exact for every epsilon > 0) the noisy count matrix is (epsilon, delta)-DP,
and so is every function of it, the released summaries included. Under replace-one neighbouring a row
may move between classes and cells: sensitivity ``sqrt(2 d)``; the same (epsilon, delta) then needs
sigma computed for that sensitivity (``neighbouring="replace"``).

The labels are private too and are covered: a row's class only chooses which row of the matrix its
counts land in, inside the same sensitivity bound.

Caveats stated plainly: the noise comes from numpy's floating-point Gaussian sampler, seeded from the
OS CSPRNG unless a seed is given (tests, reproducible experiments only: whoever knows the seed can
subtract the noise) and drawn as Opacus' secure mode draws it (four draws summed and halved; see
:mod:`silobridge.privacy.noise`); the guarantee covers this one release: repeated releases compose
(their epsilons add under basic composition), which is why the data party keeps its release and
sends the same one again on a rerun.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from silobridge.configs import check
from silobridge.data.table import CATEGORICAL, TableSchema
from silobridge.errors import DataError
from silobridge.privacy.noise import gaussian, numpy_rng
from silobridge.privacy.prototypes import gaussian_sigma

MECHANISM = "gaussian class-conditional row histograms"
MISSING = "missing"


@dataclass(frozen=True)
class Layout:
    """The public cells of every feature column: ``cells[name]`` lists the column's cell labels in
    order (its categories, or its numeric intervals, then 'missing'); ``edges[name]`` a numeric
    column's inner cut points and ``bounds[name]`` its public (min, max)."""

    schema: TableSchema
    edges: dict[str, list[float]]
    bounds: dict[str, tuple[float, float]]

    @property
    def cells(self) -> dict[str, list[str]]:
        out = {}
        for col in self.schema.columns:
            if col.kind == CATEGORICAL:
                out[col.name] = [*col.categories, MISSING]
            else:
                out[col.name] = [f"bin{i}" for i in range(len(self.edges[col.name]) + 1)] + [MISSING]
        return out

    @property
    def offsets(self) -> dict[str, int]:
        """Where each column's cells start in a row of the count matrix."""
        out, at = {}, 0
        for name, cells in self.cells.items():
            out[name] = at
            at += len(cells)
        return out

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.cells.values())

    @property
    def sensitivity(self) -> float:
        """L2 sensitivity of the count matrix under add/remove one row: one cell per column changes by 1."""
        return math.sqrt(len(self.schema.columns))


def public_edges(schema: TableSchema, public_texts: Sequence[str], bins: int) -> Layout:
    """The cells, from public rows only: each numeric column's inner edges are the public values'
    quantiles at 1/bins, ..., (bins-1)/bins (repeated edges merged), its bounds their min and max.
    A numeric column with no public value gets a single cell (and bounds (0, 0): nothing to say)."""
    check(bins >= 1, "strategy.summary_bins", bins, ">= 1")
    frame = schema.frame(list(public_texts)) if len(public_texts) else None
    edges, bounds = {}, {}
    for col in schema.columns:
        if col.kind == CATEGORICAL:
            continue
        values = frame[col.name].dropna().to_numpy(float) if frame is not None else np.zeros(0)
        if not len(values):
            edges[col.name], bounds[col.name] = [], (0.0, 0.0)
            continue
        qs = np.quantile(values, np.arange(1, bins) / bins) if bins > 1 else np.zeros(0)
        inner = sorted({float(q) for q in qs if values.min() <= q < values.max()})
        edges[col.name], bounds[col.name] = inner, (float(values.min()), float(values.max()))
    return Layout(schema, edges, bounds)


def class_cell_counts(layout: Layout, texts: Sequence[str], labels: Sequence[int], n_classes: int) -> np.ndarray:
    """(n_classes, layout.size) exact counts: each row adds 1 to one cell of each column, in its class."""
    check(n_classes >= 1, "n_classes", n_classes, ">= 1")
    counts = np.zeros((n_classes, layout.size))
    if not len(texts):
        return counts
    frame = layout.schema.frame(list(texts))
    ys = np.asarray(labels, dtype=np.int64)
    offsets, cells = layout.offsets, layout.cells
    for col in layout.schema.columns:
        at, n_cells = offsets[col.name], len(cells[col.name])
        values = frame[col.name]
        if col.kind == CATEGORICAL:
            index = {v: i for i, v in enumerate(col.categories)}
            idx = np.array([index.get(v, n_cells - 1) if v is not None else n_cells - 1 for v in values])
        else:
            v = values.to_numpy(float)
            idx = np.searchsorted(np.asarray(layout.edges[col.name], float), v, side="left")
            idx = np.where(np.isnan(v), n_cells - 1, idx)
        np.add.at(counts, (ys, at + idx), 1.0)
    return counts


def add_noise(counts: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The Gaussian mechanism's output: ``counts`` plus independent N(0, sigma^2) in every cell."""
    check(sigma > 0, "sigma", sigma, "> 0")
    return np.asarray(counts, float) + gaussian(rng, sigma, np.shape(counts))


def _quantile(shares: np.ndarray, lows: np.ndarray, highs: np.ndarray, q: float) -> float:
    """The q-quantile of a histogram with these cell shares (summing to 1), linear within a cell."""
    cum = 0.0
    for s, lo, hi in zip(shares, lows, highs):
        if s > 0 and cum + s >= q:
            return float(lo + (q - cum) / s * (hi - lo))
        cum += s
    return float(highs[-1])


def summarise(layout: Layout, noisy: np.ndarray) -> list[dict[str, dict]]:
    """Post-processing of noisy counts: per class, per column, ``{"missing": share}`` plus a categorical
    column's ``{"shares": {category: share}}`` or a numeric column's ``{"low", "median", "high"}`` (its
    quartiles and median), rounded as the column is written. Negative noisy counts count as 0; a
    column whose noisy counts are all <= 0 says nothing (``{}``)."""
    out = []
    offsets, cells = layout.offsets, layout.cells
    for row in np.clip(np.asarray(noisy, float), 0.0, None):
        per: dict[str, dict] = {}
        for col in layout.schema.columns:
            at, n = offsets[col.name], len(cells[col.name])
            c = row[at:at + n]
            total, present = c.sum(), c[:-1].sum()
            if total <= 0:
                per[col.name] = {}
                continue
            summary: dict = {"missing": round(float(c[-1] / total), 3)}
            if present > 0:
                shares = c[:-1] / present
                if col.kind == CATEGORICAL:
                    summary["shares"] = {cat: round(float(s), 3) for cat, s in zip(col.categories, shares)}
                else:
                    lo, hi = layout.bounds[col.name]
                    edges = layout.edges[col.name]
                    lows, highs = np.array([lo, *edges]), np.array([*edges, hi])
                    for key, q in (("low", 0.25), ("median", 0.5), ("high", 0.75)):
                        summary[key] = round(_quantile(shares, lows, highs, q), col.decimals)
            per[col.name] = summary
        out.append(per)
    return out


@dataclass(frozen=True)
class RowSummaries:
    """A DP release: ``classes[c]`` is class c's summary per column (see :func:`summarise`)."""

    classes: list[dict[str, dict]]
    epsilon: float
    delta: float
    sigma: float  # std of the noise added to each count
    sensitivity: float  # L2 sensitivity of the count matrix
    cells: int  # counts released per class
    noisy_counts: list[list[float]]  # the mechanism's raw output (already DP; kept for the report and tests)
    mechanism: str = MECHANISM


def dp_row_summaries(schema: TableSchema, texts: Sequence[str], labels: Sequence[int], n_classes: int,
                     public_texts: Sequence[str], *, epsilon: float, delta: float, bins: int = 4,
                     neighbouring: str = "add-remove", seed: int | None = None) -> RowSummaries:
    """Release each class's per-column summaries of the private rows (``texts``, ``labels``) under
    (``epsilon``, ``delta``)-DP; the cells come from ``public_texts`` only. See the module docstring for
    the sensitivity argument. ``seed=None`` draws the noise from fresh OS entropy, which the guarantee
    needs; pass a seed only for tests and reproducible experiments."""
    check(math.isfinite(epsilon) and epsilon > 0, "strategy.summary_epsilon", epsilon, "a finite number > 0")
    check(0 < delta < 1, "strategy.summary_delta", delta, "in (0, 1)")
    check(neighbouring in ("add-remove", "replace"), "neighbouring", neighbouring, "'add-remove' or 'replace'")
    if len(texts) != len(labels):
        raise DataError(f"{len(texts)} private rows but {len(labels)} labels", where="private rows",
                        fix="pass one label per private row")
    layout = public_edges(schema, public_texts, bins)
    sensitivity = layout.sensitivity * (math.sqrt(2) if neighbouring == "replace" else 1.0)
    sigma = gaussian_sigma(epsilon, delta, sensitivity)
    noisy = add_noise(class_cell_counts(layout, texts, labels, n_classes), sigma, numpy_rng(seed))
    return RowSummaries(summarise(layout, noisy), float(epsilon), float(delta), float(sigma), float(sensitivity),
                        layout.size, noisy.round(6).tolist())


__all__ = ["MECHANISM", "Layout", "RowSummaries", "add_noise", "class_cell_counts", "dp_row_summaries",
           "public_edges", "summarise"]
