"""LoRA adapters (PEFT) on causal LMs: add, train on text, export as named arrays with LM layer
indices, and plug into another model with the same layers (emulator -> full LM)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from silobridge.errors import ModelError
from silobridge.models.causal import LORA_TARGETS, _encode, _loss_terms, _pad
from silobridge.models.device import placement
from silobridge.models.lm import CausalLM
from silobridge.progress import track

_LAYER = re.compile(r"\.layers\.(\d+)\.")


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: int = 16
    lr: float = 5e-4
    epochs: int = 1
    batch_size: int = 8
    max_len: int = 128


def add_lora(model: torch.nn.Module, layers: list[int] | None, spec: LoraSpec) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=0.0, target_modules=LORA_TARGETS,
                     layers_to_transform=layers, layers_pattern="layers" if layers is not None else None)
    return get_peft_model(model, cfg)


def _optimizer(params: list[torch.nn.Parameter], spec: LoraSpec, steps: int):
    """AdamW with a linear decay to zero over ``steps``."""
    opt = torch.optim.AdamW(params, lr=spec.lr)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / max(steps, 1)))


def _step(loss: torch.Tensor, opt, sched, params: list[torch.nn.Parameter]) -> float:
    """One update with gradient clipping; returns the loss."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    return loss.item()


def train_causal(model: torch.nn.Module, lm: CausalLM, texts: list[str], spec: LoraSpec, seed: int = 0,
                 desc: str = "LoRA") -> list[float]:
    """Next-token loss on ``texts``; only trainable (LoRA) parameters move. Returns the loss per step."""
    torch.manual_seed(seed)
    seqs = [s for s in _encode(lm, texts, spec.max_len) if len(s) >= 2]
    params = [p for p in model.parameters() if p.requires_grad]
    opt, sched = _optimizer(params, spec, spec.epochs * -(-len(seqs) // spec.batch_size))
    rng = np.random.default_rng(seed)
    losses = []
    model.train()
    for epoch in range(spec.epochs):
        order = rng.permutation(len(seqs))
        batches = range(0, len(order), spec.batch_size)
        for s in track(batches, f"{desc} epoch {epoch + 1}/{spec.epochs}", total=len(batches)):
            ids, mask = _pad([seqs[i] for i in order[s:s + spec.batch_size]], lm.tokenizer.pad_token_id or 0)
            nll, _, tmask = _loss_terms(model, ids, mask)
            loss = nll[tmask].mean()
            losses.append(_step(loss, opt, sched, params))
    model.eval()
    return losses


def export_adapters(model: torch.nn.Module, index_map: list[int] | None = None) -> dict[str, np.ndarray]:
    """LoRA weights as named arrays; ``index_map[j]`` renames layer ``j`` to LM layer ``index_map[j]``."""
    from peft import get_peft_model_state_dict

    out = {name: t.detach().float().cpu().numpy().copy() for name, t in get_peft_model_state_dict(model).items()}
    return out if index_map is None else rename_layers(out, index_map)


def rename_layers(tensors: dict[str, np.ndarray], index_map: list[int]) -> dict[str, np.ndarray]:
    """Adapter tensors of an emulator renamed to the LM's layers: layer ``j`` becomes ``index_map[j]``."""
    return {_LAYER.sub(lambda m: f".layers.{index_map[int(m.group(1))]}.", name): t for name, t in tensors.items()}


def plug_adapters(model: torch.nn.Module, tensors: dict[str, np.ndarray], spec: LoraSpec) -> torch.nn.Module:
    """Wrap ``model`` with LoRA on the layers ``tensors`` name and load them; shapes must match."""
    from peft import set_peft_model_state_dict

    layers = sorted({int(m.group(1)) for n in tensors if (m := _LAYER.search(n))})
    n_model = len(model.model.layers)
    if not layers or layers[-1] >= n_model:
        raise ModelError(f"the adapters name layers {layers} but the LM has {n_model}", where="adapters",
                         fix="train the adapters on an emulator of this LM")
    peft_model = add_lora(model, layers, spec)
    expected = {k: v.shape for k, v in _named(peft_model).items()}
    for name, arr in tensors.items():
        if name not in expected:
            raise ModelError(f"adapter tensor '{name}' has no place in this LM", where="adapters",
                             fix="train the adapters on an emulator of this LM with the same LoRA targets")
        if tuple(expected[name]) != arr.shape:
            raise ModelError(f"adapter tensor '{name}' has shape {arr.shape}, the LM expects {tuple(expected[name])}",
                             where="adapters", fix="use the same LoRA rank and an emulator of this LM")
    set_peft_model_state_dict(peft_model, {k: torch.from_numpy(v) for k, v in tensors.items()})
    peft_model.eval()
    return peft_model


def _named(peft_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(peft_model)


def train_label_scoring(model: torch.nn.Module, lm: CausalLM, texts: list[str], targets: np.ndarray,
                        user_template: str, label_words: list[str], spec: LoraSpec, max_text_tokens: int = 96,
                        seed: int = 0, desc: str = "LoRA on labels") -> list[float]:
    """Tune ``model`` so that its label-word distribution at the answer position matches ``targets``
    (an (n, k) matrix: one-hot labels or soft labels): soft cross-entropy over the label words."""
    from silobridge.models.lm import first_token_ids, label_batches

    torch.manual_seed(seed)
    label_ids = first_token_ids(lm, label_words)
    dev, _ = placement(model)
    target = torch.tensor(np.asarray(targets, dtype=np.float32), device=dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, sched = _optimizer(params, spec, spec.epochs * -(-len(texts) // spec.batch_size))
    losses = []
    model.train()
    for epoch in range(spec.epochs):
        for rows, ids, mask, pos in label_batches(lm, texts, user_template, max_text_tokens, spec.batch_size,
                                                  f"{desc} epoch {epoch + 1}/{spec.epochs}", shuffle_seed=seed + epoch):
            logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                           logits_to_keep=1).logits[:, -1]
            lp = torch.log_softmax(torch.log_softmax(logits.float(), -1)[:, label_ids], -1)
            loss = -(target[torch.as_tensor(rows, device=dev)] * lp).sum(-1).mean()
            losses.append(_step(loss, opt, sched, params))
            lm.meter.tokens_in += int(mask.sum())
    model.eval()
    return losses
