from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.strategies.lm_tuning import LMTuneConfig


@dataclass
class ReverseDistillConfig(LMTuneConfig):
    n_transfer: int = option(300, "public texts the SM labels for the LM (LM tuning cost grows with it)")
    temperature: float = option(1.0, "softens (>1) or sharpens (<1) the SM's soft labels")
    # chosen on validation records of both bundled tasks (benchmarks/choose_defaults.py; was False until 2026-12-07)
    domain_lm: bool = option(True, "also train next-token prediction on the public texts the SM labels "
                             "(domain adaptation; chosen on validation)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_transfer >= 1, "strategy.n_transfer", self.n_transfer, ">= 1")
        check(self.temperature > 0, "strategy.temperature", self.temperature, "> 0")
