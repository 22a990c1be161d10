"""Randomness for differential privacy. By default it is unseeded and unpredictable: generators are
seeded from the operating system's CSPRNG (:mod:`secrets`) and, in DP-SGD, reseeded so at every step;
a fixed seed (tests, reproducible experiments only) lets whoever knows it regenerate and subtract the
noise. Gaussian noise is drawn as Opacus' ``secure_mode`` draws it (the sum of four draws, halved: no
floating-point attack on the sampler's output, Holohan et al. 2021). Opacus' own ``secure_mode`` needs
``torchcsprng``, which has no build for current torch: this is its stand-in, reseeding torch's generator
with 63 fresh secret bits per step."""
from __future__ import annotations

import secrets

import numpy as np
import torch


def secure_seed() -> int:
    """63 bits from the operating system's CSPRNG."""
    return secrets.randbits(63)


class DPGenerators:
    """The torch generators of one DP-SGD run: Poisson sampling and noise (independent). ``seed=None``:
    seeded from the OS CSPRNG and reseeded at every :meth:`step`; an int: seeded once, reproducible."""

    def __init__(self, seed: int | None = None):
        self.seeded = seed is not None
        self.sampling = torch.Generator().manual_seed(seed if self.seeded else secure_seed())
        self.noise = torch.Generator().manual_seed(seed + 1 if self.seeded else secure_seed())

    def step(self) -> None:
        """Before each draw of a batch and its noise: fresh secret seeds (nothing when seeded)."""
        if not self.seeded:
            self.sampling.manual_seed(secure_seed())
            self.noise.manual_seed(secure_seed())


def numpy_rng(seed: int | None = None) -> np.random.Generator:
    """A numpy generator for DP noise: ``seed=None`` takes 128 bits from the OS CSPRNG."""
    return np.random.default_rng(seed if seed is not None else secrets.randbits(128))


def gaussian(rng: np.random.Generator, std: float, shape) -> np.ndarray:
    """N(0, std^2) drawn as Opacus' secure mode draws it: four draws summed and halved."""
    return sum(rng.normal(0.0, std, size=shape) for _ in range(4)) / 2.0


__all__ = ["DPGenerators", "gaussian", "numpy_rng", "secure_seed"]
