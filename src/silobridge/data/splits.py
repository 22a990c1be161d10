"""Disjoint private / validation / public / test splits, and canary planting."""
from __future__ import annotations

import numpy as np

from silobridge.boundary.fingerprint import TextFingerprint
from silobridge.data.task import LabelledTexts, Splits, TaskSpec
from silobridge.errors import DataError


def _stratified(labels: np.ndarray, idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices from ``idx`` keeping class proportions, at least one per class when n allows."""
    classes = np.unique(labels[idx])
    quota = {c: max(1 if n >= len(classes) else 0,
                    int(round(n * np.mean(labels[idx] == c)))) for c in classes}
    while sum(quota.values()) > n:  # rounding may overshoot by one or two
        quota[max(quota, key=quota.get)] -= 1
    picked = [rng.permutation(idx[labels[idx] == c])[:q] for c, q in quota.items()]
    chosen = np.concatenate(picked)
    rest = np.setdiff1d(idx, chosen)
    short = n - len(chosen)
    if short > 0:
        chosen = np.concatenate([chosen, rng.permutation(rest)[:short]])
    return rng.permutation(chosen)


def make_splits(task: TaskSpec, pool: LabelledTexts, test: LabelledTexts | None, *, n_private: int,
                n_val: int, n_public: int, n_test: int, seed: int, source: str, ngram: int = 10,
                need_classes: bool = True) -> Splits:
    """Draw disjoint splits from ``pool`` (and ``test``, or else from the pool too). ``need_classes``:
    the private split must hold two classes at least (classification; not for domain text)."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(pool))
    if test is None:
        need_test = n_test
        test_idx, idx = idx[:n_test], idx[n_test:]
        test = pool.subset(test_idx)
    else:
        need_test = 0
        if n_test > len(test):
            raise DataError(f"n_test={n_test} but the test set has {len(test)} records", where=source,
                            fix=f"set data.n_test <= {len(test)}")
        test = test.subset(rng.permutation(len(test))[:n_test])
    need = n_private + n_val + n_public
    if need > len(idx):
        raise DataError(f"{len(pool)} records, but the splits ask for {need + need_test} "
                        f"(n_private={n_private}, n_val={n_val}, n_public={n_public}"
                        + (f", n_test={n_test}" if need_test else "") + ")", where=source,
                        fix="lower data.n_public / data.n_private / data.n_val / data.n_test with --set")
    # drawn in the order val, public, private, so that val and public do not depend on the label
    # budget (n_private): a label-budget sweep compares SMs on the same public pool
    val_idx = _stratified(pool.labels, idx, n_val, rng) if n_val else np.zeros(0, np.int64)
    idx = np.setdiff1d(idx, val_idx)
    val = pool.subset(val_idx)
    # the public pool must not repeat (spans of) test or validation records
    from silobridge.data.tabular import row_index

    taken = row_index(task) or TextFingerprint(n=ngram)  # a table's rows: exact or near-exact copies
    taken.add(val.texts + test.texts)
    public_idx = [i for i in rng.permutation(idx) if not taken.hits(pool.texts[i])][:n_public]
    idx = np.setdiff1d(idx, public_idx)
    public = [pool.texts[i] for i in public_idx]
    # nor may private records share spans with the public pool (sending it would then leak them)
    taken.add(public)
    idx = np.array([i for i in idx if not taken.hits(pool.texts[i])], dtype=np.int64)
    if n_private > len(idx):
        raise DataError(f"only {len(idx)} records left for n_private={n_private}", where=source,
                        fix="lower data.n_private or data.n_public")
    private = pool.subset(_stratified(pool.labels, idx, n_private, rng))
    if need_classes and len(np.unique(private.labels)) < 2:
        raise DataError(f"the {n_private} private labels hold a single class", where=source,
                        fix="raise data.n_private so that every class appears")
    return Splits(task, private, val, public, test)


def plant_canaries(records: LabelledTexts, k: int, seed: int, repeats: int = 1) -> tuple[LabelledTexts, list[str]]:
    """Append a random secret ('canary') to ``repeats`` distinct random records each (``k`` secrets, the Secret
    Sharer's insertions); return the new set and the secrets."""
    if k == 0:
        return records, []
    if k * repeats > len(records):
        raise DataError(f"{k} canaries x {repeats} insertions but only {len(records)} private records",
                        where="data.canaries", fix=f"set data.canaries x data.canary_repeats <= {len(records)}")
    rng = np.random.default_rng(seed + 7919)
    secrets = random_secrets(rng, k)
    texts = list(records.texts)
    slots = rng.choice(len(texts), k * repeats, replace=False)
    for j, i in enumerate(slots):
        texts[i] = f"{texts[i]} {CANARY_PREFIX} {secrets[j // repeats]}."
    return LabelledTexts(texts, records.labels.copy()), secrets


CANARY_PREFIX = "My member code is"
SECRET_ALPHABET = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ23456789"))  # 32 symbols
SECRET_SPACE_BITS = 12 * 5  # 3 groups of 4 symbols: 32^12 = 2^60 candidates


def random_secrets(rng: np.random.Generator, k: int) -> list[str]:
    """``k`` secrets of the canary format, e.g. 'K7QM-2ZXA-PL9D'."""
    return ["-".join("".join(rng.choice(SECRET_ALPHABET, 4)) for _ in range(3)) for _ in range(k)]
