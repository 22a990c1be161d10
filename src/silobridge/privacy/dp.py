"""Differential-privacy bookkeeping: the (epsilon, delta) target of a run, the noise multiplier that meets
it and the epsilon an accountant gives for a mechanism. No model here: DP-SGD training is
:mod:`silobridge.models.dp_train`; the accountant's epsilon is what a run reports and it never exceeds the
configured target."""
from __future__ import annotations

from dataclasses import dataclass

from silobridge.configs import check


@dataclass(frozen=True)
class DPSpec:
    """Target (epsilon, delta) for the whole training run; per-example clipping norm."""

    epsilon: float
    delta: float
    max_grad_norm: float = 1.0
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        check(self.epsilon > 0, "strategy.epsilon", self.epsilon, "> 0 (a finite privacy budget)")
        check(0 < self.delta < 1, "strategy.delta", self.delta, "in (0, 1), typically < 1/n")
        check(self.max_grad_norm > 0, "strategy.max_grad_norm", self.max_grad_norm, "> 0")
        check(self.accountant in ("rdp", "prv", "gdp"), "strategy.accountant", self.accountant, "rdp, prv or gdp")


def noise_for(spec: DPSpec, sample_rate: float, epochs: int) -> float:
    """Noise multiplier that meets ``spec`` (bookkeeping only: no model involved)."""
    from opacus.accountants.utils import get_noise_multiplier

    return get_noise_multiplier(target_epsilon=spec.epsilon, target_delta=spec.delta, sample_rate=sample_rate,
                                epochs=epochs, accountant=spec.accountant)


def achieved_epsilon(sample_rate: float, steps: int, noise: float, delta: float, accountant: str = "rdp") -> float:
    """Epsilon an accountant gives for ``steps`` of the sampled Gaussian mechanism."""
    from opacus.accountants import create_accountant

    acc = create_accountant(accountant)
    acc.history = [(noise, sample_rate, steps)]
    return float(acc.get_epsilon(delta))


__all__ = ["DPSpec", "noise_for", "achieved_epsilon"]
