"""Split learning's pieces shared by both halves: the LM's bottom blocks as a declared weight transfer
(model party) and rebuilt as a runnable model (data party), the model party's remaining blocks, the
release mechanism (per-example clipping + Gaussian noise) and the wire layout of the activations.

Wire layout of an activations batch (data -> model): ``values`` of shape (B, T, d + 1) float32; channels
``[:d]`` are the released activations (clipped, noised), channel ``d`` the attention mask (1 = a real
token, right-padded). The mask — each text's token count — crosses in the clear."""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import torch

from silobridge.boundary import Weights
from silobridge.errors import BoundaryError
from silobridge.models.causal import _layers, n_params
from silobridge.models.lm import CausalLM
from silobridge.privacy.noise import gaussian
from silobridge.strategies.emulation import _TOKENIZER_FILE


def _inner(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder stack (embeddings, blocks, final norm) under a causal-LM head."""
    _layers(model)  # a clear error for a model without model.layers
    return model.model


def bottom_names(inner: torch.nn.Module, cut: int) -> list[str]:
    """State-dict names of the embeddings and the first ``cut`` blocks."""
    keep = ("embed_tokens.",) + tuple(f"layers.{i}." for i in range(cut))
    return [n for n in inner.state_dict() if n.startswith(keep)]


def bottom_weights(lm: CausalLM, cut: int) -> Weights:
    """Model side: the LM's embeddings and first ``cut`` blocks, exact, with the config and tokenizer to run
    them; declared as a share of the LM's parameters (exposure 'lm_weights')."""
    inner = _inner(lm.model)
    n = len(inner.layers)
    if cut >= n:
        raise BoundaryError(f"cut_layer={cut}, but the LM has {n} blocks: the model party would keep none",
                            where="strategy.cut_layer", fix=f"set strategy.cut_layer to at most {n - 1}")
    state = inner.state_dict()
    tensors = {name: state[name].detach().float().cpu().numpy().copy() for name in bottom_names(inner, cut)}
    with tempfile.TemporaryDirectory() as tmp:
        lm.tokenizer.save_pretrained(tmp)
        tok_files = {p.name: p.read_text() for p in Path(tmp).iterdir() if p.is_file()}
    share = sum(a.size for a in tensors.values()) / n_params(lm.model)
    meta = {"config": lm.model.config.to_dict(), "tokenizer": tok_files, "cut_layer": cut, "lm_layers": n,
            "revealed_param_share": share}
    return Weights(tensors=tensors, origin="lm", meta=meta, exposure="lm_weights")


def _bottom_config(spec: dict, cut: int):
    from transformers import AutoConfig

    spec = dict(spec)
    spec["num_hidden_layers"] = cut
    if isinstance(spec.get("layer_types"), list):
        spec["layer_types"] = spec["layer_types"][:cut]
    return AutoConfig.for_model(spec.pop("model_type"), **spec)


def rebuild_bottom(w: Weights, device: torch.device | None = None,
                   dtype: torch.dtype = torch.float32) -> tuple[object, torch.nn.Module]:
    """Data side: (tokenizer, bottom model). The bottom model's output (``last_hidden_state``) is the residual
    stream after block ``cut - 1`` (the embeddings for cut 0): its final norm is removed."""
    from transformers import AutoModel, AutoTokenizer

    meta = w.meta
    where = "model.bottom.reply"
    fix = "both parties must run the same strategy version"
    if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("tokenizer"), dict) \
            or not isinstance(meta.get("cut_layer"), int):
        raise BoundaryError("the bottom blocks' carrier lacks its config, tokenizer or cut layer", where=where, fix=fix)
    files = meta["tokenizer"]
    bad = [n for n, t in files.items() if not _TOKENIZER_FILE.match(str(n)) or not isinstance(t, str)]
    if bad:
        raise BoundaryError(f"refusing tokenizer file name(s) {bad[:3]} (only plain file names are written)",
                            where=where, fix="the model party must send plain tokenizer file names")
    cut = meta["cut_layer"]
    try:
        model = AutoModel.from_config(_bottom_config(meta["config"], cut), dtype=torch.float32)
    except Exception as exc:
        raise BoundaryError(f"cannot build the bottom blocks from their config: {exc}", where=where,
                            fix="both parties must run compatible transformers versions") from exc
    expected = set(bottom_names(model, cut))
    own = model.state_dict()
    if set(w.tensors) != expected:
        missing, extra = sorted(expected - set(w.tensors)), sorted(set(w.tensors) - expected)
        raise BoundaryError(f"bottom tensors do not fit their config: missing {missing[:3]}, unexpected {extra[:3]}",
                            where=where, fix=fix)
    for name, arr in w.tensors.items():
        if tuple(arr.shape) != tuple(own[name].shape):
            raise BoundaryError(f"bottom tensor '{name}' has shape {arr.shape}, expected {tuple(own[name].shape)}",
                                where=where, fix=fix)
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in w.tensors.items()}, strict=False)
    model.norm = torch.nn.Identity()  # the residual stream crosses as the next block expects it, un-normed
    model.to(device=device or torch.device("cpu"), dtype=dtype)
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        tok = AutoTokenizer.from_pretrained(tmp)
    return tok, model


def upper_part(lm: CausalLM, cut: int) -> torch.nn.Module:
    """Model side: a copy of the decoder stack with blocks ``cut..`` only, run on ``inputs_embeds`` (the
    activations that arrive); the LM itself is left untouched."""
    inner = _inner(lm.model)
    upper = copy.deepcopy(inner)
    upper.layers = torch.nn.ModuleList(list(upper.layers)[cut:])
    upper.config.num_hidden_layers = len(upper.layers)
    if isinstance(getattr(upper.config, "layer_types", None), list):
        upper.config.layer_types = upper.config.layer_types[cut:]
    upper.embed_tokens = None  # never used: the activations replace the embeddings
    for p in upper.parameters():
        p.requires_grad_(False)
    return upper


def encode(tok, texts: list[str], max_tokens: int) -> list[list[int]]:
    """Token ids of each text (BOS first where the tokenizer has one), at most ``max_tokens``, at least one."""
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    filler = tok.eos_token_id if tok.eos_token_id is not None else (tok.pad_token_id or 0)
    out = []
    for t in texts:
        ids = bos + tok(t, add_special_tokens=False, truncation=True, max_length=max_tokens)["input_ids"]
        ids = ids[:max_tokens]
        out.append(ids or [filler])
    return out


def pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s)
        mask[r, :len(s)] = 1
    return ids, mask


def clip_examples(h: torch.Tensor, mask: torch.Tensor, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example's activations over its real tokens (padding zeroed) scaled to L2 norm <= ``clip``
    (differentiable). Returns (clipped, norms before clipping)."""
    h = h * mask.unsqueeze(-1).to(h.dtype)
    norms = h.flatten(1).norm(dim=1)
    scale = torch.clamp(clip / (norms + 1e-12), max=1.0)
    return h * scale[:, None, None], norms.detach()


def release(h: torch.Tensor, mask: torch.Tensor, clip: float, sigma: float,
            rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian mechanism on one batch: per-example clipping to ``clip``, then N(0, sigma^2) on every
    element (``rng``: the project's noise generator). Gradients pass through the clipping."""
    clipped, norms = clip_examples(h.float(), mask, clip)
    if sigma > 0:
        noise = torch.from_numpy(gaussian(rng, sigma, tuple(clipped.shape)).astype(np.float32))
        clipped = clipped + noise.to(clipped.device)
    return clipped, norms


def pack(released: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """(B, T, d + 1) float32: the released activations and the mask as the last channel."""
    a = released.detach().float().cpu().numpy()
    return np.concatenate([a, mask.cpu().numpy()[..., None].astype(np.float32)], axis=-1)


def unpack(values: np.ndarray, hidden: int, max_tokens: int, max_batch: int,
           where: str) -> tuple[np.ndarray, np.ndarray]:
    """Check and split a packed batch: (activations (B, T, d), mask (B, T) int64, right-padded)."""
    fix = "send Activations(values=pack(released, mask)) of at most batch_size texts and max_tokens tokens"
    if values.ndim != 3 or values.shape[2] != hidden + 1 or values.dtype != np.float32:
        raise BoundaryError(f"activations of shape {values.shape} ({values.dtype}); expected (texts, tokens, "
                            f"{hidden + 1}) float32", where=where, fix=fix)
    b, t, _ = values.shape
    if not 1 <= b <= max_batch or not 1 <= t <= max_tokens:
        raise BoundaryError(f"{b} texts of {t} tokens; at most {max_batch} texts of {max_tokens} tokens allowed",
                            where=where, fix=fix)
    mask = values[..., hidden]
    if not np.isin(mask, (0.0, 1.0)).all() or (mask[:, 0] != 1).any() or (np.diff(mask, axis=1) > 0).any():
        raise BoundaryError("the mask channel is not a right-padded 0/1 mask with a token in every text",
                            where=where, fix=fix)
    return values[..., :hidden], mask.astype(np.int64)


def pool(h: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """One vector per text: the mean of its tokens' hidden states, or its last token's."""
    if how == "last":
        return h[torch.arange(h.shape[0]), mask.sum(1) - 1]
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1)
