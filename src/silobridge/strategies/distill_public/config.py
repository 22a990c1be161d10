from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.strategies.prompting import PromptConfig


@dataclass
class DistillPublicConfig(PromptConfig):
    temperature: float = option(1.0, "softens (>1) or sharpens (<1) the LM's soft labels before training")
    alpha: float = option(1.0, "weight of each soft-labelled public example relative to a private one")
    min_confidence: float = option(0.0, "drop public examples whose top LM probability is below this")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.temperature > 0, "strategy.temperature", self.temperature, "> 0")
        check(self.alpha >= 0, "strategy.alpha", self.alpha, ">= 0")
        check(0 <= self.min_confidence < 1, "strategy.min_confidence", self.min_confidence, "in [0, 1)")
