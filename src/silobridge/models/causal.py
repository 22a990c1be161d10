"""Causal-LM training and evaluation: perplexity, layer-drop emulators, LoRA adapters that move
between an emulator and its full LM (Offsite-Tuning), and LoRA fine-tuning (optionally DP-SGD)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from silobridge.errors import ConfigError, ModelError
from silobridge.models.device import autocast_for, placement
from silobridge.models.lm import CausalLM
from silobridge.progress import track

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"]


def _layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ModelError(f"{type(model).__name__} has no model.layers", where="lm.path",
                         fix="use a decoder-only LM of the Llama/Mistral/Qwen family")
    return layers


def n_layers(lm: CausalLM) -> int:
    return len(_layers(lm.model))


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _encode(lm: CausalLM, texts: list[str], max_len: int) -> list[list[int]]:
    tok = lm.tokenizer
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    return [(bos + tok(t, add_special_tokens=False)["input_ids"])[:max_len] for t in texts]


def _pad(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):  # right padding for training and scoring whole sequences
        ids[r, :len(s)] = torch.tensor(s)
        mask[r, :len(s)] = 1
    return ids, mask


def _loss_terms(model: torch.nn.Module, ids: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token NLL, per-token correctness, and the target mask (next-token prediction)."""
    dev, _ = placement(model)
    ids, mask = ids.to(dev), mask.to(dev)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    target, tmask = ids[:, 1:], mask[:, 1:].bool()
    # rows of the flattened logits (contiguous): 2.5x faster than classes along dim 1 of a transposed view
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                            reduction="none").view(target.shape)
    return nll, (logits.argmax(-1) == target), tmask


@torch.no_grad()
def perplexity(lm: CausalLM, texts: list[str], max_len: int = 128, batch_size: int = 8,
               model: torch.nn.Module | None = None) -> dict[str, float]:
    """Token-level perplexity and next-token accuracy of ``model`` (default ``lm.model``) on ``texts``."""
    model = model or lm.model
    model.eval()
    seqs = sorted((s for s in _encode(lm, texts, max_len) if len(s) >= 2), key=len)  # similar lengths: less padding
    nll_sum, correct, count = 0.0, 0, 0
    for start in track(range(0, len(seqs), batch_size), "perplexity", total=-(-len(seqs) // batch_size)):
        ids, mask = _pad(seqs[start:start + batch_size], lm.tokenizer.pad_token_id or 0)
        nll, ok, tmask = _loss_terms(model, ids, mask)
        nll_sum += float(nll[tmask].sum())
        correct += int(ok[tmask].sum())
        count += int(tmask.sum())
    return {"perplexity": float(np.exp(nll_sum / max(count, 1))), "next_token_accuracy": correct / max(count, 1),
            "tokens": count}


@torch.no_grad()
def continuation_nll(lm: CausalLM, prefix: str, continuations: list[str], batch_size: int = 64,
                     model: torch.nn.Module | None = None) -> np.ndarray:
    """Summed negative log-likelihood (nats) of each continuation's tokens after ``prefix`` (the
    Secret Sharer's statistic: the canary's loss against same-format candidates)."""
    model = model or lm.model
    model.eval()
    head = _encode(lm, [prefix], 10**6)[0]
    tails = [lm.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
    out = np.zeros(len(tails))
    pad = lm.tokenizer.pad_token_id or 0
    for start in track(range(0, len(tails), batch_size), "canary candidates", total=-(-len(tails) // batch_size)):
        chunk = tails[start:start + batch_size]
        ids, mask = _pad([head + t for t in chunk], pad)
        nll, _, _ = _loss_terms(model, ids, mask)  # target j is token j + 1: the tail's targets start at len(head) - 1
        for r, t in enumerate(chunk):
            out[start + r] = float(nll[r, len(head) - 1:len(head) - 1 + len(t)].sum())
    return out


@torch.no_grad()
def next_token_top1(lm: CausalLM, texts: list[str], max_len: int = 128, batch_size: int = 8,
                    model: torch.nn.Module | None = None) -> np.ndarray:
    """Each position's most likely next token over ``texts`` (in text order, then position order), for
    comparing two LMs that share a tokenizer (an emulator and its LM) token by token."""
    model = model or lm.model
    model.eval()
    seqs = [s for s in _encode(lm, texts, max_len) if len(s) >= 2]
    out = []
    for start in track(range(0, len(seqs), batch_size), "next-token agreement", total=-(-len(seqs) // batch_size)):
        chunk = seqs[start:start + batch_size]
        ids, mask = _pad(chunk, lm.tokenizer.pad_token_id or 0)
        dev, _ = placement(model)
        top = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits[:, :-1].argmax(-1).cpu()
        out += [top[r, :len(s) - 1] for r, s in enumerate(chunk)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def evaluate_lms(lms: dict[str, CausalLM], texts: list[str]) -> dict[str, dict[str, float]]:
    """Perplexity and next-token accuracy of each named LM on ``texts`` (run by the party that holds them)."""
    return {name: perplexity(lm, texts, model=lm.model) for name, lm in lms.items()}


# --- emulators (layer-drop) -------------------------------------------------------------------------
@dataclass(frozen=True)
class EmulatorPlan:
    """Which LM layers an emulator keeps: ``adapter`` layers at the bottom and top (exact copies,
    where adapters are trained) and every ``stride``-th middle layer (frozen, compressed)."""

    lm_layers: int
    bottom: int
    top: int
    stride: int

    def __post_init__(self) -> None:
        if self.bottom < 1 or self.top < 1 or self.stride < 1:
            raise ConfigError(f"bottom={self.bottom}, top={self.top}, stride={self.stride}", where="strategy.emulator",
                              fix="keep at least one bottom and one top layer; stride >= 1")
        if self.bottom + self.top > self.lm_layers:
            raise ConfigError(f"the emulator keeps {self.bottom} + {self.top} adapter layers but the LM has only "
                              f"{self.lm_layers}", where="strategy.bottom/top",
                              fix=f"keep bottom + top <= {self.lm_layers} layers")

    @property
    def kept(self) -> list[int]:
        middle = list(range(self.bottom, self.lm_layers - self.top))[::self.stride]
        return list(range(self.bottom)) + middle + list(range(self.lm_layers - self.top, self.lm_layers))

    @property
    def middle_positions(self) -> list[int]:
        """Positions, in the emulator, of its compressed middle layers (the ones distillation trains)."""
        return list(range(self.bottom, len(self.kept) - self.top))

    @property
    def adapter_layers(self) -> list[int]:
        """LM indices of the layers where adapters live."""
        return list(range(self.bottom)) + list(range(self.lm_layers - self.top, self.lm_layers))


def build_emulator(lm: CausalLM, plan: EmulatorPlan) -> torch.nn.Module:
    """A copy of the LM keeping only ``plan.kept`` layers (embeddings and head included)."""
    emu = copy.deepcopy(lm.model)
    layers = _layers(emu)
    kept = plan.kept
    emu.model.layers = torch.nn.ModuleList([layers[i] for i in kept])
    for j, layer in enumerate(emu.model.layers):  # the KV cache indexes layers by position
        if hasattr(layer, "self_attn") and hasattr(layer.self_attn, "layer_idx"):
            layer.self_attn.layer_idx = j
    emu.config.num_hidden_layers = len(kept)
    emu.float()  # float32 weights: exact copies of lower-precision ones, and master weights for distillation
    emu.config.dtype = torch.float32
    if getattr(emu.config, "layer_types", None):
        emu.config.layer_types = [emu.config.layer_types[i] for i in kept]
    return emu


class _Teacher:
    """The LM's side of distillation, memoised per sequence: a text is seen ``steps * batch / texts``
    times, the 30-layer LM forward runs once for it. Kept per sequence: the final hidden state
    (``logits``: the head is re-applied, cheap) or the residual stream at layer ``at`` (``hidden``)."""

    def __init__(self, lm: CausalLM, seqs: list[list[int]], match: str, at: int):
        self.lm, self.seqs, self.match, self.at = lm, seqs, match, at
        self.pad = lm.tokenizer.pad_token_id or 0
        self.memo: dict[int, torch.Tensor] = {}
        self.head_exact: bool | None = None  # does head(final hidden) reproduce the LM's logits? (checked once)

    @torch.no_grad()
    def __call__(self, idx: list[int], ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        dev, dtype = placement(self.lm.model)
        ids, mask = ids.to(dev), mask.to(dev)
        if self.match == "logits" and self.head_exact is False:  # e.g. soft-capped logits: no memo
            return self.lm.model(input_ids=ids, attention_mask=mask).logits.float()
        missing = [i for i in idx if i not in self.memo]
        if missing:  # right padding: a sequence's states do not depend on its batch-mates
            m_ids, m_mask = _pad([self.seqs[i] for i in missing], self.pad)
            m_ids, m_mask = m_ids.to(dev), m_mask.to(dev)
            out = self.lm.model.model(input_ids=m_ids, attention_mask=m_mask,
                                      output_hidden_states=self.match == "hidden")
            feats = out.last_hidden_state if self.match == "logits" else out.hidden_states[self.at]
            if self.match == "logits" and self.head_exact is None:
                # first call: the memo is empty, so ``missing`` is ``idx`` and ``full`` is this batch's answer
                full = self.lm.model(input_ids=m_ids, attention_mask=m_mask).logits.float()
                self.head_exact = torch.allclose(self._head(feats), full, atol=1e-4, rtol=1e-4)
                if not self.head_exact:
                    return full
            for r, i in enumerate(missing):
                self.memo[i] = feats[r, :len(self.seqs[i])].clone()
        x = torch.zeros(len(idx), ids.shape[1], self.memo[idx[0]].shape[-1], dtype=dtype, device=dev)
        for r, i in enumerate(idx):
            x[r, :len(self.seqs[i])] = self.memo[i]
        return self._head(x) if self.match == "logits" else x

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        return self.lm.model.get_output_embeddings()(h).float()


def distill_emulator(lm: CausalLM, emu: torch.nn.Module, texts: list[str], steps: int, lr: float = 1e-4,
                     batch_size: int = 4, max_len: int = 96, seed: int = 0, train_layers: list[int] | None = None,
                     match: str = "logits") -> list[float]:
    """Train the emulator's layers ``train_layers`` (its compressed middle; default all) to match the
    LM on (public) text; other layers stay bit-exact copies of the LM's. ``match='logits'``: KL between
    next-token distributions; ``match='hidden'``: normalised squared error of the residual stream
    entering the layers after ``train_layers`` (the top adapter layers then see what they see in the LM)."""
    if match not in ("logits", "hidden"):
        raise ConfigError(f"unknown distillation target '{match}'", where="strategy.distill_match",
                          fix="use 'logits' or 'hidden'")
    torch.manual_seed(seed)
    seqs = _encode(lm, texts, max_len)
    layers = list(range(len(_layers(emu)))) if train_layers is None else list(train_layers)
    names = tuple(f".layers.{j}." for j in layers)
    trained = {n for n, _ in emu.named_parameters() if any(k in n for k in names)}
    flags = {n: p.requires_grad for n, p in emu.named_parameters()}
    for n, p in emu.named_parameters():  # no gradient work for frozen layers, embeddings and head
        p.requires_grad_(n in trained)
    opt = torch.optim.AdamW([p for n, p in emu.named_parameters() if n in trained], lr=lr)
    rng = np.random.default_rng(seed)
    # where the residual streams are compared: after the last trained layer, in each model's numbering
    emu_at, lm_at = layers[-1] + 1, len(_layers(lm.model)) - (len(_layers(emu)) - layers[-1] - 1)
    teacher_of = _Teacher(lm, seqs, match, lm_at)
    lm.model.eval()
    dev, compute = placement(lm.model)  # the student keeps float32 weights, computes like the teacher
    losses = []
    for _ in track(range(steps), "distilling emulator", total=steps):
        # 1. a batch of public text; 2. the LM's view of it (memoised per text, no gradient)
        idx = [int(i) for i in rng.choice(len(seqs), min(batch_size, len(seqs)), replace=False)]
        ids, mask = _pad([seqs[i] for i in idx], lm.tokenizer.pad_token_id or 0)
        ids, mask = ids.to(dev), mask.to(dev)
        teacher = teacher_of(idx, ids, mask)
        emu.train()
        with autocast_for(emu, compute):
            if match == "logits":
                teacher = torch.log_softmax(teacher, -1)
                student = torch.log_softmax(emu(input_ids=ids, attention_mask=mask).logits.float(), -1)
                per_token = (teacher.exp() * (teacher - student)).sum(-1)  # KL(teacher || student)
            else:
                h = emu.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[emu_at]
                h, teacher = h.float(), teacher.float()
                per_token = ((h - teacher) ** 2).sum(-1) / (teacher ** 2).sum(-1).clamp_min(1e-6)
        # 3. masked mean, one step on the trained layers only
        loss = (per_token * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    emu.eval()
    for n, p in emu.named_parameters():
        p.requires_grad_(flags[n])
    return losses


def quantize_int8(tensors: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Symmetric per-row int8 quantisation: (int8 tensors, float32 scales)."""
    q, scales = {}, {}
    for name, t in tensors.items():
        t2 = t.reshape(t.shape[0], -1) if t.ndim > 1 else t.reshape(1, -1)
        s = np.maximum(np.abs(t2).max(1, keepdims=True), 1e-12) / 127.0
        q[name] = np.round(t2 / s).astype(np.int8).reshape(t.shape)
        scales[name] = s.astype(np.float32).ravel()
    return q, scales


def dequantize_int8(q: dict[str, np.ndarray], scales: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, t in q.items():
        t2 = t.reshape(t.shape[0], -1) if t.ndim > 1 else t.reshape(1, -1)
        out[name] = (t2.astype(np.float32) * scales[name][:, None]).reshape(t.shape)
    return out
