"""Offsite-Tuning's building blocks, shared by `emulator` and `offsite-tuning`: the model party
builds a layer-drop emulator of its LM (optionally distilled on public text, optionally int8) and
sends only that; the data party rebuilds it, and trains LoRA adapters on its adapter layers with its
private records."""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from silobridge.boundary import Carrier, TextBatch, Weights, expect
from silobridge.configs import check, option
from silobridge.errors import BoundaryError, ModelError
from silobridge.models.causal import (EmulatorPlan, build_emulator, dequantize_int8, distill_emulator, n_layers,
                                      n_params, quantize_int8)
from silobridge.models.device import contiguous_head
from silobridge.models.lm import CausalLM
from silobridge.models.lora import LoraSpec, add_lora, train_causal, train_label_scoring
from silobridge.strategies.base import DataParty, ModelParty, ModelSide
from silobridge.strategies.prompting import PromptConfig, prompt_for, words_for

SCALE = "::scale"
log = logging.getLogger("silobridge.model")


class DistillMatch(enum.Enum):
    LOGITS = "logits"  # KL between the LM's and the emulator's next-token distributions
    HIDDEN = "hidden"  # squared error of the residual stream entering the top adapter layers


@dataclass
class EmulatorConfig(PromptConfig):
    bottom: int = option(2, "LM layers kept exactly at the bottom (adapters are trained there)")
    top: int = option(2, "LM layers kept exactly at the top (adapters are trained there)")
    stride: int = option(2, "keep every stride-th middle layer (layer-drop compression)")
    distill_steps: int = option(150, "steps distilling the emulator's middle on public text to match the LM (0 = off)")
    distill_texts: int = option(200, "public texts sent for the distillation (0 = none)")
    distill_lr: float = option(5e-4, "distillation learning rate (AdamW)")
    distill_match: DistillMatch = option(DistillMatch.HIDDEN, "what the emulator learns to match: 'logits' (the "
                                                              "LM's next-token distributions) or 'hidden' (its "
                                                              "residual stream entering the top adapter layers; "
                                                              "chosen on validation perplexity: README)")
    int8: bool = option(False, "send the emulator int8-quantised (per-row scales)")
    lora_r: int = option(8, "LoRA rank of the adapters")
    lora_lr: float = option(1e-3, "LoRA learning rate")
    lora_epochs: int = option(1, "passes over the private records")
    max_len: int = option(128, "tokens per training sequence")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("bottom", "top", "stride", "lora_r", "lora_epochs"):
            check(getattr(self, name) >= 1, f"strategy.{name}", getattr(self, name), ">= 1")
        for name in ("distill_steps", "distill_texts"):
            check(getattr(self, name) >= 0, f"strategy.{name}", getattr(self, name), ">= 0")
        check(self.lora_lr > 0, "strategy.lora_lr", self.lora_lr, "> 0")
        check(self.distill_lr > 0, "strategy.distill_lr", self.distill_lr, "> 0")

    @property
    def lora(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=2 * self.lora_r, lr=self.lora_lr, epochs=self.lora_epochs,
                        max_len=self.max_len)


def _unique_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """State dict without tied duplicates (e.g. lm_head sharing the embedding matrix)."""
    seen, out = set(), {}
    for name, t in model.state_dict().items():
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        out[name] = t.detach().float().cpu().numpy().copy()
    return out


EMULATOR_PARAMS = ("bottom", "top", "stride", "distill_steps", "distill_lr", "distill_match", "int8")


def load_subset(module: torch.nn.Module, tensors: dict[str, torch.Tensor], expected: set[str], where: str) -> None:
    """Strict load of ``tensors`` into part of ``module``: exactly the names ``expected``, same shapes."""
    own = module.state_dict()
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise ModelError(f"tensors do not match the model: missing {missing[:3]}, unexpected {extra[:3]}", where=where,
                         fix="delete the file; it will be rebuilt")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(own[name].shape):
            raise ModelError(f"tensor '{name}' has shape {tuple(t.shape)}, the model expects {tuple(own[name].shape)}",
                             where=where, fix="delete the file; it will be rebuilt")
    module.load_state_dict(tensors, strict=False)


def _distill(party: ModelParty, cfg, plan: EmulatorPlan, emu: torch.nn.Module,
             texts: list[str]) -> tuple[list[float], bool]:
    """Distil the emulator's middle; with ``lm.cache`` the result is memoised in the model party's cache
    (keyed by the LM's weights, the plan, distillation settings and texts). Returns (losses, cached?)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    key = [party.lm.digest(), dataclasses.astuple(plan), cfg.distill_steps, cfg.distill_lr, cfg.distill_match.value,
           hashlib.sha256(json.dumps(texts).encode()).hexdigest()]
    path = party.cache_dir / f"emulator-{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]}"
    trained = tuple(f".layers.{j}." for j in plan.middle_positions)
    names = {n for n in emu.state_dict() if any(k in n for k in trained)}
    if party.cache and path.with_suffix(".json").exists():
        try:
            load_subset(emu, load_file(str(path.with_suffix(".safetensors"))), names, str(path))
            return json.loads(path.with_suffix(".json").read_text())["losses"], True
        except (ModelError, SafetensorError, OSError, ValueError, KeyError) as exc:
            log.warning("ignoring a damaged cache entry %s (%s); distilling again", path, exc)
            emu.load_state_dict(build_emulator(party.lm, plan).state_dict())
    losses = distill_emulator(party.lm, emu, texts, cfg.distill_steps, lr=cfg.distill_lr,
                              train_layers=plan.middle_positions, match=cfg.distill_match.value)
    if party.cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({n: t.detach().contiguous() for n, t in emu.state_dict().items() if n in names},
                  str(path.with_suffix(".safetensors")))
        path.with_suffix(".json").write_text(json.dumps({"key": key, "losses": losses}))  # written last
    return losses, False


def make_emulator(party: ModelParty, cfg, carrier: Carrier) -> Weights:
    """Model side: public texts (for distillation) -> the emulator's weights, declared as a share of the
    LM's parameters. ``cfg`` holds the plan (bottom, top, stride), distillation settings and int8."""
    lm = party.lm
    plan = EmulatorPlan(n_layers(lm), cfg.bottom, cfg.top, cfg.stride)
    emu = build_emulator(lm, plan)
    texts = expect(carrier, TextBatch).items
    losses, cached = _distill(party, cfg, plan, emu, texts) if cfg.distill_steps and texts else ([], False)
    tensors = _unique_state(emu)
    if cfg.int8:
        q, scales = quantize_int8({k: v for k, v in tensors.items() if v.ndim == 2})
        tensors.update(q)
        tensors.update({k + SCALE: v for k, v in scales.items()})
    with tempfile.TemporaryDirectory() as tmp:
        lm.tokenizer.save_pretrained(tmp)
        tok_files = {p.name: p.read_text() for p in Path(tmp).iterdir() if p.is_file()}
    meta = {"config": emu.config.to_dict(), "tokenizer": tok_files, "kept": plan.kept,
            "adapter_layers": plan.adapter_layers, "lm_layers": plan.lm_layers,
            "revealed_param_share": n_params(emu) / n_params(lm.model), "distill_losses": losses[::5],
            "distill_cached": cached}
    return Weights(tensors=tensors, origin="emulator", meta=meta, exposure="lm_weights")


class EmulatorModel(ModelSide):
    """Offers 'emulator': public texts in, the (distilled) emulator out."""

    def ops(self) -> dict:
        return {"emulator": lambda carrier: make_emulator(self.party, self.config, carrier)}


_TOKENIZER_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def rebuild(w: Weights, device: torch.device | None = None,
            dtype: torch.dtype = torch.float32) -> tuple[CausalLM, torch.nn.Module]:
    """Data side: the emulator as a runnable model (in the data party's ``dtype`` on its ``device``), with
    the tokenizer it came with. Every tensor must have its place (strict: only tied copies such as the
    output head may be absent)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    meta = w.meta
    if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("tokenizer"), dict):
        raise BoundaryError("the emulator carrier lacks its config or tokenizer", where="model.emulator.reply",
                            fix="both parties must run the same strategy version")
    files = meta["tokenizer"]
    bad = [n for n, t in files.items() if not _TOKENIZER_FILE.match(str(n)) or not isinstance(t, str)]
    if bad:
        raise BoundaryError(f"refusing tokenizer file name(s) {bad[:3]} (only plain file names are written)",
                            where="model.emulator.reply", fix="the model party must send plain tokenizer file names")
    tensors = dict(w.tensors)
    scales = {k[:-len(SCALE)]: tensors.pop(k) for k in list(tensors) if k.endswith(SCALE)}
    tensors.update(dequantize_int8({k: tensors[k] for k in scales}, scales))
    spec = dict(meta["config"])
    try:
        config = AutoConfig.for_model(spec.pop("model_type"), **spec)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    except Exception as exc:
        raise BoundaryError(f"cannot build the emulator from its config: {exc}", where="model.emulator.reply",
                            fix="both parties must run compatible transformers versions") from exc
    own = model.state_dict()
    seen: set[int] = set()
    tied = set()  # later names of shared tensors (as _unique_state leaves them out)
    for n, t in own.items():
        (tied.add(n) if t.data_ptr() in seen else seen.add(t.data_ptr()))
    unknown = sorted(set(tensors) - set(own))
    missing = sorted(set(own) - set(tensors) - tied)
    if unknown or missing:
        raise BoundaryError(f"emulator tensors do not fit its config: unexpected {unknown[:3]}, missing {missing[:3]}",
                            where="model.emulator.reply", fix="both parties must run the same strategy version")
    for name, arr in tensors.items():
        if tuple(arr.shape) != tuple(own[name].shape):
            raise BoundaryError(f"emulator tensor '{name}' has shape {arr.shape}, expected {tuple(own[name].shape)}",
                                where="model.emulator.reply", fix="both parties must run the same strategy version")
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}, strict=False)
    model.tie_weights()
    model.to(device=device or torch.device("cpu"), dtype=dtype)
    model.eval()
    contiguous_head(model)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        tok = AutoTokenizer.from_pretrained(tmp)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return CausalLM(tok, model, "emulator"), model


def fetch_emulator(data: DataParty, n_texts: int) -> tuple[CausalLM, torch.nn.Module, Weights]:
    """Ask the model party for its emulator, sending ``n_texts`` public texts to distil it on, and
    rebuild it in the data silo."""
    batch = TextBatch(data.public[:n_texts], purpose="distillation corpus")
    w = expect(data.model.call("emulator", batch), Weights)
    return (*rebuild(w, data.device, data.dtype), w)


def adapter_positions(w: Weights) -> list[int]:
    """The emulator's own indices of the layers that carry adapters (the LM layers it kept exactly)."""
    kept = w.meta["kept"]
    return [kept.index(i) for i in w.meta["adapter_layers"]]


def fetch_and_tune(data: DataParty, cfg: EmulatorConfig, seed: int, raw_text: bool = False,
                   trainer: Callable[..., list[float]] | None = None,
                   ) -> tuple[CausalLM, torch.nn.Module, Weights, list[float]]:
    """Ask for the emulator, rebuild it, train LoRA adapters on its adapter layers with private data:
    the label-word distribution at the answer position of the scoring prompt (classification), or
    next-token prediction on the raw private texts (``raw_text``, domain LM). ``trainer(tuned, emu_lm,
    texts, words)`` replaces that training (``texts``: the raw records, or None for the label loss), e.g.
    with DP-SGD; its adapters are trained afresh every run, never taken from the cache."""
    emu_lm, emu, w = fetch_emulator(data, min(cfg.distill_texts, len(data.public)))
    adapters_at = adapter_positions(w)
    tuned = add_lora(emu, adapters_at, cfg.lora)
    words = words_for(cfg, data.task)
    if raw_text:
        eos = emu_lm.tokenizer.eos_token or ""
        texts = [t + eos for t in data.private.texts]

        def train() -> list[float]:
            return train_causal(tuned, emu_lm, texts, cfg.lora, seed=seed, desc="LoRA on emulator")
    else:  # the loss sits on the answer alone, not diluted over the prompt's tokens
        def train() -> list[float]:
            return train_label_scoring(tuned, emu_lm, data.private.texts, data.one_hot(data.private.labels),
                                       prompt_for(cfg, data.task, words), words, cfg.lora, cfg.max_text_tokens,
                                       seed=seed, desc="LoRA on emulator (labels)")
    if trainer is not None:
        losses, w.meta["adapters_cached"] = trainer(tuned, emu_lm, texts if raw_text else None, words), False
    else:
        key = [weights_digest(w), adapters_at, dataclasses.astuple(cfg.lora), raw_text, seed, str(data.dtype),
               data.private.texts, [] if raw_text else [data.private.labels.tolist(),
                                                        prompt_for(cfg, data.task, words), words, cfg.max_text_tokens]]
        losses, w.meta["adapters_cached"] = _tune_once(data, tuned, key, train)
    emu_lm.model = tuned
    return emu_lm, tuned, w, losses


def weights_digest(w: Weights) -> str:
    """sha256 over a weights carrier's tensors (names, dtypes, shapes, values)."""
    h = hashlib.sha256()
    for name in sorted(w.tensors):
        a = np.ascontiguousarray(w.tensors[name])
        h.update(f"{name}|{a.dtype}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _tune_once(data: DataParty, tuned: torch.nn.Module, key: list,
               train: Callable[[], list[float]]) -> tuple[list[float], bool]:
    """Adapters trained on the same emulator with the same records and settings are kept in the data
    silo's cache and loaded instead of trained again (``emulator`` and ``offsite-tuning`` train the very
    same adapters; a rerun after a crash or a change elsewhere does not retrain). Returns (losses, cached?)."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    path = data.cache_dir / f"adapters-{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]}"
    if path.with_suffix(".json").exists():
        try:
            tensors = load_file(str(path.with_suffix(".safetensors")))
            expected = get_peft_model_state_dict(tuned)
            if set(tensors) != set(expected) or any(tensors[n].shape != expected[n].shape for n in expected):
                raise ValueError("the cached adapters do not fit the model")
            set_peft_model_state_dict(tuned, tensors)
            tuned.eval()
            return json.loads(path.with_suffix(".json").read_text())["losses"], True
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            log.warning("ignoring a damaged cache entry %s (%s); training again", path, exc)
    losses = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({n: t.detach().contiguous() for n, t in get_peft_model_state_dict(tuned).items()},
              str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps({"losses": losses}))  # written last
    return losses, False


class AdaptersOff(torch.nn.Module):
    """A PEFT model seen with its adapters disabled (the base model), for evaluation."""

    def __init__(self, peft_model: torch.nn.Module):
        super().__init__()
        self.peft_model = peft_model

    @property
    def config(self):  # what callers read of a model (a KV cache is built from it)
        return self.peft_model.config

    def forward(self, **kw):
        with self.peft_model.disable_adapter():
            return self.peft_model(**kw)
