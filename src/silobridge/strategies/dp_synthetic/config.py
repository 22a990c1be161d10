from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.privacy.dp import DPSpec
from silobridge.strategies.emulation import EmulatorConfig
from silobridge.strategies.lm_tuning import LMTuneConfig


@dataclass
class DPSyntheticConfig(LMTuneConfig):
    epsilon: float = option(8.0, "target DP epsilon for fine-tuning the generator on private records")
    delta: float = option(0.0, "target DP delta; 0 = 1 / (10 * n_private)")
    max_grad_norm: float = option(1.0, "per-example gradient clipping norm")
    accountant: str = option("rdp", "Opacus accountant: rdp, prv or gdp")
    # the generator's defaults are the `emulator` strategy's, so one cached distillation serves both
    cut_bottom: int = option(EmulatorConfig.bottom, "generator = an emulator of the LM (same tokenizer): layers "
                                                    "kept at the bottom ...")
    cut_top: int = option(EmulatorConfig.top, "... and at the top ...")
    cut_stride: int = option(EmulatorConfig.stride, "... and every cut_stride-th middle layer")
    distill_steps: int = option(EmulatorConfig.distill_steps, "steps the model party distils the generator's middle "
                                                              "on public text (0 = a plain layer-drop cut)")
    distill_texts: int = option(EmulatorConfig.distill_texts, "public texts sent for that distillation")
    gen_epochs: int = option(3, "DP-SGD epochs over the private records")
    gen_batch_size: int = option(16, "expected DP-SGD batch size (Poisson sampling)")
    gen_lr: float = option(2e-3, "generator LoRA learning rate")
    gen_max_len: int = option(64, "tokens per private record when training the generator")
    per_class: int = option(60, "synthetic records sampled per class")
    max_new_tokens: int = option(48, "tokens generated per synthetic record")
    min_words: int = option(4, "synthetic records with fewer words are dropped")

    def __post_init__(self) -> None:
        super().__post_init__()
        DPSpec(self.epsilon, self.delta or 0.5, self.max_grad_norm, self.accountant)  # validates
        check(self.distill_steps >= 0, "strategy.distill_steps", self.distill_steps, ">= 0")
        check(self.distill_texts >= 0, "strategy.distill_texts", self.distill_texts, ">= 0")
        for name in ("cut_bottom", "cut_top", "cut_stride", "gen_epochs", "gen_batch_size", "per_class",
                     "max_new_tokens"):
            check(getattr(self, name) >= 1, f"strategy.{name}", getattr(self, name), ">= 1")
        check(self.gen_lr > 0, "strategy.gen_lr", self.gen_lr, "> 0")
        check(self.gen_max_len >= 8, "strategy.gen_max_len", self.gen_max_len, ">= 8")
        check(self.min_words >= 0, "strategy.min_words", self.min_words, ">= 0")
