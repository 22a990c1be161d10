from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.privacy.dp import DPSpec
from silobridge.strategies.offsite_tuning.config import OffsiteTuningConfig


@dataclass
class DPOffsiteTuningConfig(OffsiteTuningConfig):
    """offsite-tuning's options (emulator, adapters, prompt) plus the DP-SGD that trains the adapters."""

    epsilon: float = option(8.0, "target DP epsilon of the adapters (the whole DP-SGD run on the private records)")
    delta: float = option(0.0, "target DP delta; 0 = 1 / (10 * n_private)")
    max_grad_norm: float = option(1.0, "per-example gradient clipping norm")
    accountant: str = option("rdp", "Opacus accountant: rdp, prv or gdp")
    dp_epochs: int = option(2, "DP-SGD epochs over the private records")
    dp_batch_size: int = option(16, "expected DP-SGD batch size (Poisson sampling)")
    dp_lr: float = option(2e-3, "adapter learning rate under DP-SGD (AdamW)")
    noise_seed: int | None = option(None, "seed of DP-SGD's sampling and noise; empty = fresh OS entropy at every "
                                          "step. A known seed lets anyone subtract the noise: tests only")

    def __post_init__(self) -> None:
        super().__post_init__()
        DPSpec(self.epsilon, self.delta or 0.5, self.max_grad_norm, self.accountant)  # validates
        check(self.dp_epochs >= 1, "strategy.dp_epochs", self.dp_epochs, ">= 1")
        check(self.dp_batch_size >= 1, "strategy.dp_batch_size", self.dp_batch_size, ">= 1")
        check(self.dp_lr > 0, "strategy.dp_lr", self.dp_lr, "> 0")
