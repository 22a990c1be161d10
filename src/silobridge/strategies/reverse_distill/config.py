from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.strategies.lm_tuning import LMTuneConfig


@dataclass
class ReverseDistillConfig(LMTuneConfig):
    n_transfer: int = option(300, "public texts the SM labels for the LM (LM tuning cost grows with it)")
    temperature: float = option(1.0, "softens (>1) or sharpens (<1) the SM's soft labels")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_transfer >= 1, "strategy.n_transfer", self.n_transfer, ">= 1")
        check(self.temperature > 0, "strategy.temperature", self.temperature, "> 0")
