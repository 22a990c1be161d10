from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.strategies.emulation import EmulatorConfig


@dataclass
class SpeculativeConfig(EmulatorConfig):
    """Speculative decoding with the emulator (tuned on the private texts) as the data party's drafter."""

    draft_tokens: int = option(4, "tokens the drafter proposes per round (k)")
    prompts: int = option(20, "held-out texts whose openings are continued (the generation workload)")
    prompt_tokens: int = option(24, "tokens of each text's opening used as the prompt")
    max_new_tokens: int = option(32, "tokens generated per prompt (greedy)")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("draft_tokens", "prompts", "prompt_tokens", "max_new_tokens"):
            check(getattr(self, name) >= 1, f"strategy.{name}", getattr(self, name), ">= 1")
