"""Where and in what precision the LMs run: ``lm.device`` (auto | cpu | cuda) and ``lm.dtype``
(auto | float32 | bfloat16 | float16). ``auto`` picks bfloat16 where the hardware computes it natively
(a CPU with AVX512-BF16 or AMX, a CUDA device with bf16) and float32 otherwise; float16 only on a GPU.
Trainable weights stay float32 wherever they are trained (LoRA adapters, an emulator's distilled
layers, their optimiser state): only frozen weights and activations go to the lower precision."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache

import torch

from silobridge.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("auto", "cpu", "cuda")


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX-BF16; Arm's bf16)."""
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}", where="lm.device", fix=f"use one of: {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("no CUDA device is available", where="lm.device", fix="use lm.device=cpu (or auto)")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The precision ``dtype`` means on ``device`` (``auto``: bf16 where native, else float32)."""
    if dtype == "auto":
        native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
        return torch.bfloat16 if native else torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}", where="lm.dtype", fix=f"use auto or one of: {', '.join(DTYPES)}")
    if dtype == "float16" and device.type != "cuda":
        raise ConfigError("float16 is for GPUs (CPUs compute it slowly and overflow-prone)", where="lm.dtype",
                          fix="use lm.dtype=bfloat16 or float32 on a CPU")
    return DTYPES[dtype]


def resolve(dtype: str = "auto", device: str = "auto") -> tuple[torch.device, torch.dtype]:
    dev = resolve_device(device)
    return dev, resolve_dtype(dtype, dev)


def placement(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype of a model's (first floating) parameters."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


@contextlib.contextmanager
def autocast_for(model: torch.nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """Compute in ``dtype`` (bf16/fp16) while ``model``'s weights stay float32: for training float32
    master weights at low precision. A no-op for float32."""
    device, _ = placement(model)
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def _contiguous_input(module: torch.nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:]) if args and isinstance(args[0], torch.Tensor) else args


def contiguous_head(model: torch.nn.Module) -> torch.nn.Module:
    """Make the output head's input contiguous. With ``logits_to_keep`` the head sees a strided slice of
    the last hidden states; with torch 2.13 on a CPU, ``linear`` on such a slice and a weight that needs
    no gradient (frozen: under PEFT, in an emulator) expands the 49k x 576 head into a batched matmul,
    ≈ 60x slower in bfloat16 (1.26 s against 0.02 s for 8 answers; 10x in float32) — about half of a
    LoRA-tuned LM's scoring time and most of label-loss training. Idempotent; returns ``model``."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and not getattr(head, "_silobridge_contiguous", False):
        head.register_forward_pre_hook(_contiguous_input)
        head._silobridge_contiguous = True
    return model
