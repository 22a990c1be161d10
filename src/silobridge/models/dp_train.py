"""DP-SGD (Opacus: Poisson sampling, per-example clipping, Gaussian noise) on a causal LM's trainable
(LoRA) parameters: next-token loss on records (:func:`dp_train_causal`) or the label-word loss at the
answer position of a scoring prompt (:func:`dp_train_labels`). The budget bookkeeping (targets, noise
multipliers, accountants) is :mod:`silobridge.privacy.dp`; the randomness is
:class:`silobridge.privacy.noise.DPGenerators` (secret and reseeded every step unless seeded)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from silobridge.models.causal import _encode
from silobridge.models.device import placement
from silobridge.models.lm import CausalLM, encode_prompts, first_token_ids
from silobridge.privacy.dp import DPSpec
from silobridge.privacy.noise import DPGenerators
from silobridge.progress import track


@dataclass(frozen=True)
class DPRun:
    """What one DP-SGD run did: its losses, the epsilon its accountant reports, and the mechanism it
    ran (noise multiplier, Poisson sample rate, noised steps taken), for an independent check."""

    losses: list[float]
    epsilon: float
    noise_multiplier: float
    sample_rate: float
    steps: int

    def mechanism(self, seeded: bool) -> dict:
        return {"noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate, "steps": self.steps,
                "seeded": seeded}


def _dp_loop(model: torch.nn.Module, tensors: tuple[torch.Tensor, ...], loss_fn: Callable[..., torch.Tensor],
             spec: DPSpec, *, lr: float, epochs: int, batch_size: int, seed: int, noise_seed: int | None,
             desc: str) -> DPRun:
    """The DP-SGD loop over the rows of ``tensors``; ``loss_fn(private_model, *batch)`` is the mean of
    one loss term per example (Opacus scales per-example gradients by the batch size)."""
    from opacus import PrivacyEngine

    torch.manual_seed(seed)
    gens = DPGenerators(noise_seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*tensors), batch_size=batch_size,
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
        for batch in track(loader, f"{desc} epoch {epoch + 1}/{epochs}", total=len(loader)):
            if len(batch[0]):  # Poisson sampling can draw an empty batch
                loss = loss_fn(private_model, *(t.to(dev) for t in batch))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            gens.step()  # the next batch's sampling and noise: fresh secret seeds
    model.eval()
    eps = float(engine.get_epsilon(spec.delta))
    # GradSampleModule hooks stay on the wrapped model: remove them so it can run normally again
    if hasattr(private_model, "_close"):
        private_model._close()
    return DPRun(losses, eps, float(opt.noise_multiplier), float(loader.sample_rate), len(losses))


def dp_train_causal(model: torch.nn.Module, lm: CausalLM, texts: list[str], spec: DPSpec, *, lr: float,
                    epochs: int, batch_size: int, max_len: int, seed: int = 0,
                    noise_seed: int | None = None, desc: str = "DP-SGD") -> DPRun:
    """Next-token loss with DP-SGD on the trainable parameters of ``model``; ``seed`` only seeds what
    the guarantee does not rest on (dropout, initialisation)."""
    seqs = [s for s in _encode(lm, texts, max_len) if len(s) >= 2]
    pad = lm.tokenizer.pad_token_id or 0
    ids = torch.full((len(seqs), max_len), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), max_len), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)], mask[r, :len(s)] = torch.tensor(s), 1

    def loss_fn(m, b_ids, b_mask):
        logits = m(input_ids=b_ids, attention_mask=b_mask).logits[:, :-1].float()
        target, tmask = b_ids[:, 1:], b_mask[:, 1:].float()
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                reduction="none").view(target.shape)  # contiguous rows: faster
        return ((nll * tmask).sum(1) / tmask.sum(1).clamp(min=1)).mean()  # one term per example

    return _dp_loop(model, (ids, mask), loss_fn, spec, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                    noise_seed=noise_seed, desc=desc)


def dp_train_labels(model: torch.nn.Module, lm: CausalLM, texts: list[str], targets: np.ndarray,
                    user_template: str, label_words: list[str], spec: DPSpec, *, lr: float, epochs: int,
                    batch_size: int, max_text_tokens: int = 96, seed: int = 0, noise_seed: int | None = None,
                    desc: str = "DP-SGD (labels)") -> DPRun:
    """The label-word loss of :func:`silobridge.models.lora.train_label_scoring` (soft cross-entropy over
    the label words at the answer position of each text's prompt; ``targets`` an (n, k) matrix) with
    DP-SGD. Prompts are left-padded to one width, so the answer position is the last column."""
    enc = encode_prompts(lm, texts, user_template, max_text_tokens)
    width, pad = max(len(e) for e in enc), lm.tokenizer.pad_token_id or 0
    ids = torch.full((len(enc), width), pad, dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for r, e in enumerate(enc):
        ids[r, width - len(e):], mask[r, width - len(e):] = torch.tensor(e), 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    label_ids = first_token_ids(lm, label_words)
    target = torch.tensor(np.asarray(targets, dtype=np.float32))

    def loss_fn(m, b_ids, b_mask, b_pos, b_target):
        logits = m(input_ids=b_ids, attention_mask=b_mask, position_ids=b_pos, logits_to_keep=1).logits[:, -1]
        lp = torch.log_softmax(torch.log_softmax(logits.float(), -1)[:, label_ids], -1)
        return -(b_target * lp).sum(-1).mean()

    return _dp_loop(model, (ids, mask, pos, target), loss_fn, spec, lr=lr, epochs=epochs, batch_size=batch_size,
                    seed=seed, noise_seed=noise_seed, desc=desc)


__all__ = ["DPRun", "dp_train_causal", "dp_train_labels"]
