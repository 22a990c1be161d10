"""Differentially private class prototypes: the top terms of each class of a private labelled set.

Pure math on texts, labels and a public vocabulary (no model code). The release is

1. **bounded contribution**: every private record contributes at most ``max_terms_per_record``
   *distinct* terms, each counted once, to the term-count vector of its own class (a record with
   more candidate terms keeps a uniformly random subset, chosen from the record alone);
2. **Gaussian mechanism**: independent N(0, sigma^2) noise is added to every count of every class,
   over the whole candidate vocabulary (including terms with count 0);
3. **post-processing**: the top-k terms per class by noisy count (or by noisy contrast against the
   other classes) are released.

Candidate terms come only from a *public* vocabulary (e.g. built from the public pool with
:func:`public_vocabulary`), fixed before the private data is looked at, so the set of possible
outputs depends on no private record.

Guarantee (add/remove-one-record neighbouring datasets): adding or removing one record changes one
class's count vector by at most ``max_terms_per_record`` entries of 1, an L2 sensitivity of
``Delta = sqrt(max_terms_per_record)``. With sigma from :func:`gaussian_sigma` (the analytic
Gaussian mechanism of Balle & Wang, ICML 2018, Theorem 8: exact for every epsilon > 0) the noisy
count matrix is (epsilon, delta)-DP, and so is every function of it, including the released terms.
Under replace-one neighbouring the same sigma gives (epsilon, delta)-DP for sensitivity
sqrt(2 * max_terms_per_record), i.e. halve ``max_terms_per_record`` for that notion.

Caveats stated plainly: the noise comes from numpy's floating-point Gaussian sampler, seeded from the
OS CSPRNG and drawn as Opacus' secure mode draws it (four draws summed and halved, against the
floating-point attacks of Mironov, CCS 2012, and Holohan et al. 2021; see silobridge.privacy.noise); and
the guarantee covers this one release only: repeated releases compose (their epsilons add under basic
composition).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from silobridge.configs import check
from silobridge.errors import DataError
from silobridge.privacy.noise import gaussian, numpy_rng

MECHANISM = "gaussian top-k terms"
_WORD = re.compile(r"[a-z][a-z']+[a-z]")


def terms_of(text: str) -> list[str]:
    """Distinct candidate terms of a text (lower-cased words of >= 3 letters), in order of appearance."""
    return list(dict.fromkeys(_WORD.findall(text.lower())))


def public_vocabulary(texts: Sequence[str], max_terms: int = 1000, min_df: int = 2,
                      stop_words: frozenset[str] | None = None) -> list[str]:
    """The ``max_terms`` terms found in most public texts (document frequency >= ``min_df``),
    English stop words removed. Built from public text only, so it reveals no private record."""
    if stop_words is None:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        stop_words = frozenset(ENGLISH_STOP_WORDS)
    df = Counter(t for text in texts for t in terms_of(text) if t not in stop_words)
    ranked = sorted((t for t, n in df.items() if n >= min_df), key=lambda t: (-df[t], t))
    return ranked[:max_terms]


def gaussian_delta(epsilon: float, sigma: float, sensitivity: float = 1.0) -> float:
    """The smallest delta for which N(0, sigma^2) noise on an L2-``sensitivity`` query is
    (epsilon, delta)-DP (Balle & Wang 2018, Theorem 8), computed in log space."""
    from scipy.special import log_ndtr

    if sigma <= 0:
        return 1.0
    s = sigma / sensitivity
    a = log_ndtr(1.0 / (2 * s) - epsilon * s)
    b = epsilon + log_ndtr(-1.0 / (2 * s) - epsilon * s)
    if b >= a:
        return 0.0
    return float(math.exp(a) * -math.expm1(b - a))


def gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0) -> float:
    """Smallest noise std sigma making the Gaussian mechanism (epsilon, delta)-DP for a query of
    L2 ``sensitivity`` (analytic Gaussian mechanism: valid for every epsilon > 0, and never larger
    than the classic bound of :func:`classic_gaussian_sigma`)."""
    _check_budget(epsilon, delta)
    check(sensitivity > 0, "sensitivity", sensitivity, "> 0")
    lo, hi = math.log(1e-12), math.log(1e12)  # bisection on log(sigma / sensitivity)
    if gaussian_delta(epsilon, math.exp(hi)) > delta:
        raise DataError("no finite noise reaches this delta", where="prototype_delta",
                        fix="raise strategy.prototype_delta")
    for _ in range(200):
        mid = (lo + hi) / 2
        if gaussian_delta(epsilon, math.exp(mid)) > delta:
            lo = mid
        else:
            hi = mid
    return math.exp(hi) * sensitivity  # the upper end: delta(sigma) <= delta holds


def classic_gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0) -> float:
    """The classic bound sigma = sqrt(2 ln(1.25/delta)) * sensitivity / epsilon (Dwork & Roth 2014,
    Theorem A.1), which is only proven for epsilon < 1; kept for comparison."""
    _check_budget(epsilon, delta)
    check(epsilon < 1, "epsilon", epsilon, "< 1 (the classic bound is unproven above; use gaussian_sigma)")
    return math.sqrt(2 * math.log(1.25 / delta)) * sensitivity / epsilon


def _check_budget(epsilon: float, delta: float) -> None:
    check(math.isfinite(epsilon) and epsilon > 0, "prototype_epsilon", epsilon, "a finite number > 0")
    check(0 < delta < 1, "prototype_delta", delta, "in (0, 1)")


def class_term_counts(texts: Sequence[str], labels: Sequence[int], n_classes: int, vocabulary: Sequence[str],
                      max_terms_per_record: int, rng: np.random.Generator) -> np.ndarray:
    """(n_classes, len(vocabulary)) counts of records containing each term, each record
    contributing at most ``max_terms_per_record`` distinct vocabulary terms (a random subset)."""
    check(max_terms_per_record >= 1, "max_terms_per_record", max_terms_per_record, ">= 1")
    index = {t: j for j, t in enumerate(vocabulary)}
    counts = np.zeros((n_classes, len(vocabulary)))
    for text, y in zip(texts, labels):
        cols = [index[t] for t in terms_of(text) if t in index]
        if len(cols) > max_terms_per_record:
            cols = list(rng.choice(cols, max_terms_per_record, replace=False))
        counts[int(y), cols] += 1
    return counts


def rank_terms(counts: np.ndarray, vocabulary: Sequence[str], top_k: int, contrast: bool = True) -> list[list[str]]:
    """Top-k terms per class by count, or (``contrast``) by count minus the mean of the other
    classes' counts (terms typical of the class rather than of the whole corpus)."""
    score = np.asarray(counts, dtype=np.float64)
    if contrast and score.shape[0] > 1:
        others = (score.sum(0, keepdims=True) - score) / (score.shape[0] - 1)
        score = score - others
    k = min(top_k, score.shape[1])
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return [[vocabulary[j] for j in row] for row in order]


@dataclass(frozen=True)
class Prototypes:
    """A DP prototype release: ``terms[c]`` are class c's top terms, best first."""

    terms: list[list[str]]
    epsilon: float
    delta: float
    sigma: float  # std of the noise added to each count
    sensitivity: float  # L2 sensitivity of the count matrix
    vocabulary_size: int
    mechanism: str = MECHANISM


def dp_class_prototypes(texts: Sequence[str], labels: Sequence[int], n_classes: int, vocabulary: Sequence[str], *,
                        epsilon: float, delta: float, top_k: int = 10, max_terms_per_record: int = 16,
                        contrast: bool = True, seed: int | None = None) -> Prototypes:
    """Release each class's top-``top_k`` terms from the private (``texts``, ``labels``) under
    (``epsilon``, ``delta``)-DP (add/remove one record; see the module docstring for the proof
    sketch and caveats). Candidate terms are exactly ``vocabulary``, which must be public.

    ``seed=None`` draws the randomness from fresh OS entropy, which the guarantee needs: whoever
    knows a fixed seed can regenerate and subtract the noise. Pass a seed only for tests and
    reproducible experiments."""
    _check_budget(epsilon, delta)
    check(top_k >= 1, "top_terms", top_k, ">= 1")
    check(n_classes >= 1, "n_classes", n_classes, ">= 1")
    if not vocabulary:
        raise DataError("the public vocabulary is empty: no candidate terms to release", where="data.public",
                        fix="raise data.n_public (prototype terms come from the public pool)")
    pick, noise = numpy_rng(seed).spawn(2)  # subsampling and noise: independent streams
    counts = class_term_counts(texts, labels, n_classes, vocabulary, max_terms_per_record, pick)
    sensitivity = math.sqrt(max_terms_per_record)
    sigma = gaussian_sigma(epsilon, delta, sensitivity)
    noisy = counts + gaussian(noise, sigma, counts.shape)
    return Prototypes(rank_terms(noisy, vocabulary, top_k, contrast), float(epsilon), float(delta), sigma,
                      sensitivity, len(vocabulary))
