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
    # the generator is cut like the `emulator` strategy's (17 of 30 layers), but its defaults are sized to
    # fit one run in the demo's 10 minutes on 2 cores (README, "Wall time of one run"): half the distillation
    # steps, records as long as the samples it writes (LoRA on the top layers only is faster still, but under
    # DP noise the generator then stops learning: README, "Every strategy"). DP-SGD epochs and learning rate
    # were chosen on validation records of both bundled tasks (benchmarks/choose_defaults.py; README, "Defaults")
    cut_bottom: int = option(EmulatorConfig.bottom, "generator = an emulator of the LM (same tokenizer): layers "
                                                    "kept at the bottom ...")
    cut_top: int = option(EmulatorConfig.top, "... and at the top ...")
    cut_stride: int = option(EmulatorConfig.stride, "... and every cut_stride-th middle layer")
    distill_steps: int = option(75, "steps the model party distils the generator's middle on public text (0 = a "
                                    "plain layer-drop cut; the `emulator` strategy uses 150)")
    distill_texts: int = option(EmulatorConfig.distill_texts, "public texts sent for that distillation")
    gen_epochs: int = option(1, "DP-SGD epochs over the private records (fewer: fewer steps, less noise per "
                                "step at the same epsilon)")
    gen_batch_size: int = option(16, "expected DP-SGD batch size (Poisson sampling)")
    gen_lr: float = option(2e-3, "generator LoRA learning rate")
    gen_lora_top: int = option(0, "LoRA on the generator's top N layers only (0 = every layer); the backward "
                                  "pass stops below them, so fewer is faster")
    gen_max_len: int = option(48, "tokens per private record when training the generator")
    per_class: int = option(60, "synthetic records sampled per class")
    max_new_tokens: int = option(48, "tokens generated per synthetic record")
    sample_batch_size: int = option(60, "synthetic records sampled together (larger: faster on CPU, more memory)")
    min_words: int = option(4, "synthetic records with fewer words are dropped")
    noise_seed: int | None = option(None, "seed of DP-SGD's sampling and noise; empty = fresh OS entropy at every "
                                          "step. A known seed lets anyone subtract the noise: tests only")

    def __post_init__(self) -> None:
        super().__post_init__()
        DPSpec(self.epsilon, self.delta or 0.5, self.max_grad_norm, self.accountant)  # validates
        check(self.distill_steps >= 0, "strategy.distill_steps", self.distill_steps, ">= 0")
        check(self.distill_texts >= 0, "strategy.distill_texts", self.distill_texts, ">= 0")
        for name in ("cut_bottom", "cut_top", "cut_stride", "gen_epochs", "gen_batch_size", "per_class",
                     "max_new_tokens", "sample_batch_size"):
            check(getattr(self, name) >= 1, f"strategy.{name}", getattr(self, name), ">= 1")
        check(self.gen_lr > 0, "strategy.gen_lr", self.gen_lr, "> 0")
        check(self.gen_lora_top >= 0, "strategy.gen_lora_top", self.gen_lora_top, ">= 0 (0 = every layer)")
        check(self.gen_max_len >= 8, "strategy.gen_max_len", self.gen_max_len, ">= 8")
        check(self.min_words >= 0, "strategy.min_words", self.min_words, ">= 0")
