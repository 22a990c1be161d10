from dataclasses import dataclass

from silobridge.configs import option
from silobridge.strategies.lm_tuning import LMTuneConfig


@dataclass
class LMFinetunePrivateConfig(LMTuneConfig):
    domain_lm: bool = option(True, "also train next-token prediction on the private texts (domain adaptation)")
