from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.strategies.emulation import EmulatorConfig


@dataclass
class ProxyTuningConfig(EmulatorConfig):
    """Proxy-tuning (Liu et al., 2024) with the emulator as the small model that shares the LM's tokenizer."""

    alpha: float = option(1.0, "weight of the tuned - untuned emulator's label logits added to the LM's")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha >= 0, "strategy.alpha", self.alpha, ">= 0")
