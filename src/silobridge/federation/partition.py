"""Non-IID partitions of labelled records over several data parties: label skew (Dirichlet over the
parties for each class, Hsu et al. 2019) with the quantity skew it brings, or quantity skew alone."""
from __future__ import annotations

import numpy as np

from silobridge.errors import DataError


def dirichlet_shares(n_classes: int, n_parties: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """(n_classes, n_parties): each class's records split over the parties by a Dirichlet(alpha) draw.
    Small alpha: each class sits mostly at a few parties; alpha → ∞: every party gets the same mix."""
    return rng.dirichlet(np.full(n_parties, alpha), size=n_classes)


def split_by_shares(labels: np.ndarray, shares: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Indices of ``labels`` for each party: class c's records (shuffled) cut by ``shares[c]``."""
    parts: list[list[int]] = [[] for _ in range(shares.shape[1])]
    for c in range(shares.shape[0]):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum(shares[c])[:-1] * len(idx)).astype(int)
        for p, chunk in enumerate(np.split(idx, cuts)):
            parts[p].extend(chunk.tolist())
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


def partition(labels: np.ndarray, n_classes: int, n_parties: int, *, alpha: float, seed: int,
              min_records: int = 2, min_classes: int = 2, quantity_alpha: float | None = None,
              tries: int = 200) -> tuple[list[np.ndarray], np.ndarray]:
    """Split record indices over ``n_parties``: per-class Dirichlet(``alpha``) shares (label skew), or with
    ``quantity_alpha`` the same class mix everywhere and party sizes drawn from Dirichlet(``quantity_alpha``).
    Draws again until every party holds ``min_records`` records of ``min_classes`` classes at least (an SM
    needs two classes to train); returns the parts and the shares, which callers reuse to split another
    set (e.g. validation records) the same way."""
    if n_parties < 1:
        raise DataError(f"{n_parties} parties", where="federation.parties", fix="use 1 party or more")
    rng = np.random.default_rng(seed)
    for _ in range(tries):
        if quantity_alpha is None:
            shares = dirichlet_shares(n_classes, n_parties, alpha, rng)
        else:
            shares = np.tile(rng.dirichlet(np.full(n_parties, quantity_alpha)), (n_classes, 1))
        parts = split_by_shares(labels, shares, rng)
        if all(len(p) >= min_records and len(np.unique(labels[p])) >= min_classes for p in parts):
            return parts, shares
    raise DataError(f"could not split {len(labels)} records over {n_parties} parties with every party holding "
                    f"{min_records}+ records of {min_classes}+ classes (alpha={alpha}, {tries} draws)",
                    where="federation.alpha", fix="raise federation.alpha (less skew), raise data.n_private, "
                                                  "or use fewer parties")
