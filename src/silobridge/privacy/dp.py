"""DP-SGD fine-tuning of a causal LM's trainable (LoRA) parameters with Opacus, and the budget it
spent. The accountant's epsilon is what a run reports; it never exceeds the configured target."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from silobridge.configs import check
from silobridge.models.device import placement
from silobridge.models.causal import _encode
from silobridge.models.lm import CausalLM
from silobridge.privacy.noise import DPGenerators
from silobridge.progress import track


@dataclass(frozen=True)
class DPSpec:
    """Target (epsilon, delta) for the whole training run; per-example clipping norm."""

    epsilon: float
    delta: float
    max_grad_norm: float = 1.0
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        check(self.epsilon > 0, "strategy.epsilon", self.epsilon, "> 0 (a finite privacy budget)")
        check(0 < self.delta < 1, "strategy.delta", self.delta, "in (0, 1), typically < 1/n")
        check(self.max_grad_norm > 0, "strategy.max_grad_norm", self.max_grad_norm, "> 0")
        check(self.accountant in ("rdp", "prv", "gdp"), "strategy.accountant", self.accountant, "rdp, prv or gdp")


def noise_for(spec: DPSpec, sample_rate: float, epochs: int) -> float:
    """Noise multiplier that meets ``spec`` (bookkeeping only: no model involved)."""
    from opacus.accountants.utils import get_noise_multiplier

    return get_noise_multiplier(target_epsilon=spec.epsilon, target_delta=spec.delta, sample_rate=sample_rate,
                                epochs=epochs, accountant=spec.accountant)


def dp_train_causal(model: torch.nn.Module, lm: CausalLM, texts: list[str], spec: DPSpec, *, lr: float,
                    epochs: int, batch_size: int, max_len: int, seed: int = 0,
                    noise_seed: int | None = None) -> "DPRun":
    """Next-token loss with DP-SGD (Poisson sampling, per-example clipping, Gaussian noise) on the
    trainable parameters of ``model``. Returns a :class:`DPRun` (epsilon spent at ``spec.delta``).
    Sampling and noise come from :class:`silobridge.privacy.noise.DPGenerators` (``noise_seed=None``:
    secret, reseeded every step); ``seed`` only seeds what the guarantee does not rest on."""
    from opacus import PrivacyEngine

    torch.manual_seed(seed)
    gens = DPGenerators(noise_seed)
    seqs = [s for s in _encode(lm, texts, max_len) if len(s) >= 2]
    pad = lm.tokenizer.pad_token_id or 0
    ids = torch.full((len(seqs), max_len), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), max_len), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)], mask[r, :len(s)] = torch.tensor(s), 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids, mask), batch_size=batch_size,
                                         generator=gens.sampling)  # Poisson sampling draws from it
    params = [p for p in model.parameters() if p.requires_grad]
    dev, _ = placement(model)
    opt = torch.optim.AdamW(params, lr=lr)
    engine = PrivacyEngine(accountant=spec.accountant)
    model.train()
    private_model, opt, loader = engine.make_private_with_epsilon(
        module=model, optimizer=opt, data_loader=loader, target_epsilon=spec.epsilon, target_delta=spec.delta,
        epochs=epochs, max_grad_norm=spec.max_grad_norm, noise_generator=gens.noise)
    opt.secure_mode = True  # Opacus' floating-point-safe Gaussian (needs no csprng; our generators are secret)
    losses = []
    for epoch in range(epochs):
        for b_ids, b_mask in track(loader, f"DP-SGD epoch {epoch + 1}/{epochs}", total=len(loader)):
            if len(b_ids):  # Poisson sampling can draw an empty batch
                losses.append(_dp_step(private_model, opt, b_ids.to(dev), b_mask.to(dev)))
            gens.step()  # the next batch's sampling and noise: fresh secret seeds
    model.eval()
    eps = float(engine.get_epsilon(spec.delta))
    # GradSampleModule hooks stay on the wrapped model: remove them so it can run normally again
    if hasattr(private_model, "_close"):
        private_model._close()
    return DPRun(losses, eps, float(opt.noise_multiplier), float(loader.sample_rate), len(losses))


@dataclass(frozen=True)
class DPRun:
    """What one DP-SGD run did: its losses, the epsilon its accountant reports, and the mechanism it
    ran (noise multiplier, Poisson sample rate, noised steps taken), for an independent check."""

    losses: list[float]
    epsilon: float
    noise_multiplier: float
    sample_rate: float
    steps: int


def _dp_step(private_model: torch.nn.Module, opt, b_ids: torch.Tensor, b_mask: torch.Tensor) -> float:
    """One DP-SGD step (Opacus clips per example and adds noise in ``opt.step``); returns the loss."""
    logits = private_model(input_ids=b_ids, attention_mask=b_mask).logits[:, :-1].float()
    target, tmask = b_ids[:, 1:], b_mask[:, 1:].float()
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                            reduction="none").view(target.shape)  # contiguous rows: faster
    loss = ((nll * tmask).sum(1) / tmask.sum(1).clamp(min=1)).mean()  # one term per example
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def achieved_epsilon(sample_rate: float, steps: int, noise: float, delta: float, accountant: str = "rdp") -> float:
    """Epsilon an accountant gives for ``steps`` of the sampled Gaussian mechanism."""
    from opacus.accountants import create_accountant

    acc = create_accountant(accountant)
    acc.history = [(noise, sample_rate, steps)]
    return float(acc.get_epsilon(delta))


__all__ = ["DPRun", "DPSpec", "noise_for", "dp_train_causal", "achieved_epsilon"]
