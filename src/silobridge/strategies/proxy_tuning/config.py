from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.strategies.emulation import EmulatorConfig


@dataclass
class ProxyTuningConfig(EmulatorConfig):
    """Proxy-tuning (Liu et al., 2024) with the emulator as the small model that shares the LM's tokenizer."""

    alpha: float = option(1.0, "weight of the tuned - untuned emulator's label logits added to the LM's")
    shift_k: int = option(256, "task domain-lm: next-token logit shifts sent per position, the largest (the whole "
                               "vocabulary is exact; each entry costs 6 bytes)")
    shift_chunk: int = option(32, "task domain-lm: texts per evaluation call (bounds each carrier's size)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha >= 0, "strategy.alpha", self.alpha, ">= 0")
        check(self.shift_k >= 1, "strategy.shift_k", self.shift_k, ">= 1")
        check(self.shift_chunk >= 1, "strategy.shift_chunk", self.shift_chunk, ">= 1")
