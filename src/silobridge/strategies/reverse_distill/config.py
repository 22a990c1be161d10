from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.strategies.prompting import PromptConfig


@dataclass
class ReverseDistillConfig(PromptConfig):
    n_transfer: int = option(300, "public texts the SM labels for the LM (LM tuning cost grows with it)")
    temperature: float = option(1.0, "softens (>1) or sharpens (<1) the SM's soft labels")
    lora_r: int = option(8, "LoRA rank of the LM's adapters")
    lora_lr: float = option(5e-4, "LoRA learning rate")
    lora_epochs: int = option(1, "passes over the transferred labels")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_transfer >= 1, "strategy.n_transfer", self.n_transfer, ">= 1")
        check(self.temperature > 0, "strategy.temperature", self.temperature, "> 0")
        check(self.lora_r >= 1, "strategy.lora_r", self.lora_r, ">= 1")
        check(self.lora_lr > 0, "strategy.lora_lr", self.lora_lr, "> 0")
        check(self.lora_epochs >= 1, "strategy.lora_epochs", self.lora_epochs, ">= 1")
