from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.models.lora import LoraSpec

POOLS = ("mean", "last")


@dataclass
class SplitConfig:
    """Split learning: where the LM is cut, the noise on what crosses, and the LoRA / head training."""

    cut_layer: int = option(2, "LM blocks the data party receives and runs (0 = the embeddings alone)")
    clip: float = option(1000.0, "each example's activations (all its tokens together) are clipped to this L2 norm "
                                 "(the bundled LM at cut 2: median 640 over 64-token reviews)")
    noise_std: float = option(0.1, "Gaussian noise std on every activation element, relative to clip "
                                   "(sigma = noise_std * clip); 0 = no noise")
    delta: float = option(1e-5, "delta of the per-example, per-release epsilon reported")
    noise_seed: int | None = option(None, "seed of the activation noise; empty = fresh OS entropy. A known seed lets "
                                          "anyone subtract the noise: tests only")
    pool: str = option("mean", "what the model party returns per text: 'mean' (of the top hidden states over its "
                               "tokens) or 'last' (the last token's)")
    max_tokens: int = option(64, "tokens per text (longer texts are truncated)")
    batch_size: int = option(16, "texts per round trip")
    epochs: int = option(2, "passes over the private records")
    lora_r: int = option(8, "LoRA rank on both parties' blocks")
    lora_lr: float = option(1e-3, "LoRA learning rate (AdamW, both parties)")
    head_lr: float = option(1e-2, "the data party's task head's learning rate (AdamW)")

    def __post_init__(self) -> None:
        check(self.cut_layer >= 0, "strategy.cut_layer", self.cut_layer, ">= 0")
        check(self.clip > 0, "strategy.clip", self.clip, "> 0")
        check(self.noise_std >= 0, "strategy.noise_std", self.noise_std, ">= 0")
        check(0 < self.delta < 1, "strategy.delta", self.delta, "in (0, 1)")
        check(self.pool in POOLS, "strategy.pool", self.pool, f"one of {', '.join(POOLS)}")
        for name in ("max_tokens", "batch_size", "epochs", "lora_r"):
            check(getattr(self, name) >= 1, f"strategy.{name}", getattr(self, name), ">= 1")
        check(self.max_tokens <= 4096, "strategy.max_tokens", self.max_tokens, "<= 4096")
        for name in ("lora_lr", "head_lr"):
            check(getattr(self, name) > 0, f"strategy.{name}", getattr(self, name), "> 0")

    @property
    def lora(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=2 * self.lora_r, lr=self.lora_lr, epochs=self.epochs,
                        batch_size=self.batch_size, max_len=self.max_tokens)
