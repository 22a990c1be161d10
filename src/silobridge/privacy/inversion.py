"""Inverting activations that cross a split-learning boundary back into tokens (math on arrays, no model
code), and the privacy figure of one release of a clipped, noised activation.

Two attacks by the party that receives the activations:

- **nearest embedding** (cut at layer 0: the activations are token embeddings, clipped and noised): each
  position's vector is mapped to the vocabulary row with the highest cosine similarity. Clipping scales
  a whole example by one factor, which cosine similarity ignores; the noise is what protects.
- **linear inverter** (any cut): a ridge least-squares map from one position's activation to a one-hot
  token id, fitted on activations of *public* text that the attacker computes itself with the same
  mechanism (it knows the blocks it sent, the clip and the noise level), then applied to the crossing
  activations; the prediction is the argmax over the token ids seen in the public text.

``recovery`` is the share of real (unpadded) positions whose token is recovered exactly; ``chance`` is
the share an attacker gets by always guessing the most frequent public token.

The per-release epsilon: one example's activations, clipped to L2 norm C, with N(0, (s·C)^2) on every
element, is the Gaussian mechanism with sensitivity 2C under replace-one neighbouring (any activation
can be swapped for any other of norm <= C), so ε(δ) follows from the analytic Gaussian mechanism
(Balle & Wang 2018) with sigma/sensitivity = s/2. It covers ONE release of ONE example's activations
and nothing else: not the repeated releases of training (epochs compose), not the gradients of the loss
that cross unnoised (they carry the labels), not the blocks the data party tuned on other records."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from silobridge.configs import check
from silobridge.errors import DataError
from silobridge.privacy.prototypes import gaussian_delta


def gaussian_epsilon(sigma: float, sensitivity: float, delta: float) -> float:
    """The smallest ε for which N(0, sigma^2) noise on a query of L2 ``sensitivity`` is (ε, ``delta``)-DP
    (analytic Gaussian mechanism, by bisection on :func:`gaussian_delta`); ∞ without noise."""
    check(0 < delta < 1, "delta", delta, "in (0, 1)")
    check(sensitivity > 0, "sensitivity", sensitivity, "> 0")
    if sigma <= 0:
        return math.inf
    if gaussian_delta(0.0, sigma, sensitivity) <= delta:
        return 0.0
    hi = 1.0
    while gaussian_delta(hi, sigma, sensitivity) > delta:
        hi *= 2
        if hi > 1e6:
            return math.inf
    lo = 0.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if gaussian_delta(mid, sigma, sensitivity) > delta:
            lo = mid
        else:
            hi = mid
    return hi  # the upper end: delta(hi) <= delta holds


def per_release_epsilon(noise_std: float, clip: float, delta: float) -> dict[str, float | None]:
    """The split strategy's mechanism stated: sensitivity 2·clip (replace-one), sigma = noise_std·clip, and
    ε(δ) of one release of one example's activations (None: no noise, no bound)."""
    sigma, sens = noise_std * clip, 2 * clip
    eps = gaussian_epsilon(sigma, sens, delta)
    return {"epsilon": None if math.isinf(eps) else eps, "delta": delta, "sigma": sigma, "sensitivity": sens}


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def nearest_embedding(acts: np.ndarray, embeddings: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each row of ``acts`` (n, d), the index of the row of ``embeddings`` (V, d) most similar to it
    (cosine)."""
    acts, embeddings = np.asarray(acts), np.asarray(embeddings)
    if acts.ndim != 2 or embeddings.ndim != 2 or acts.shape[1] != embeddings.shape[1]:
        raise DataError(f"activations {acts.shape} and embeddings {embeddings.shape} are not (n, d) and (V, d)",
                        where="nearest_embedding", fix="pass one activation per row and the embedding matrix")
    e = _unit_rows(embeddings)
    out = np.empty(len(acts), dtype=np.int64)
    for s in range(0, len(acts), chunk):
        out[s:s + chunk] = (_unit_rows(acts[s:s + chunk]) @ e.T).argmax(1)
    return out


@dataclass(frozen=True)
class LinearInverter:
    """Ridge least squares from an activation to a one-hot token id, over the token ids it was fitted on."""

    weight: np.ndarray  # (d, k)
    bias: np.ndarray  # (k,)
    mean: np.ndarray  # (d,) the centring of the inputs
    classes: np.ndarray  # (k,) the token ids

    def predict(self, acts: np.ndarray, chunk: int = 4096) -> np.ndarray:
        acts = np.asarray(acts, dtype=np.float64)
        if acts.ndim != 2 or acts.shape[1] != len(self.mean):
            raise DataError(f"activations of shape {acts.shape}; the inverter was fitted on width {len(self.mean)}",
                            where="LinearInverter.predict", fix="pass (n, d) activations from the same cut")
        out = np.empty(len(acts), dtype=np.int64)
        for s in range(0, len(acts), chunk):
            scores = (acts[s:s + chunk] - self.mean) @ self.weight + self.bias
            out[s:s + chunk] = self.classes[scores.argmax(1)]
        return out


def fit_linear_inverter(acts: np.ndarray, token_ids: np.ndarray, ridge: float = 1e-3) -> LinearInverter:
    """Fit ``acts`` (n, d) -> ``token_ids`` (n,) by ridge regression onto one-hot targets: W = (XᵀX + λ·tr/d·I)⁻¹
    XᵀY on centred X (λ relative to the inputs' mean variance, so it does not depend on their scale); XᵀY is
    accumulated per token id, never as a dense (n, k) matrix."""
    x = np.asarray(acts, dtype=np.float64)
    y = np.asarray(token_ids, dtype=np.int64)
    if x.ndim != 2 or y.shape != (len(x),) or len(x) == 0:
        raise DataError(f"activations {x.shape} and token ids {y.shape} do not pair up", where="fit_linear_inverter",
                        fix="pass (n, d) activations and n token ids (real positions only)")
    check(ridge >= 0, "ridge", ridge, ">= 0")
    classes, col = np.unique(y, return_inverse=True)
    mean = x.mean(0)
    xc = x - mean
    gram = xc.T @ xc
    gram += ridge * (np.trace(gram) / x.shape[1] + 1e-12) * np.eye(x.shape[1])
    from scipy.sparse import csr_matrix

    onehot = csr_matrix((np.ones(len(x)), (np.arange(len(x)), col)), shape=(len(x), len(classes)))
    xty = np.asarray((onehot.T @ xc).T)  # column c: the sum of the centred rows of token c
    weight = np.linalg.solve(gram, xty)
    bias = np.bincount(col, minlength=len(classes)) / len(x)  # the one-hot targets' means
    return LinearInverter(weight, bias, mean, classes)


def recovery(predicted: np.ndarray, true: np.ndarray) -> float:
    """Share of positions whose token id is recovered exactly."""
    predicted, true = np.asarray(predicted), np.asarray(true)
    if predicted.shape != true.shape or predicted.size == 0:
        raise DataError(f"{predicted.shape} predictions for {true.shape} tokens", where="recovery",
                        fix="pass one prediction per real token")
    return float((predicted == true).mean())


def chance(public_ids: np.ndarray, true: np.ndarray) -> float:
    """Recovery of the attacker who always guesses the most frequent public token."""
    ids, counts = np.unique(np.asarray(public_ids), return_counts=True)
    return float((np.asarray(true) == ids[counts.argmax()]).mean())


__all__ = ["LinearInverter", "chance", "fit_linear_inverter", "gaussian_epsilon", "nearest_embedding",
           "per_release_epsilon", "recovery"]
