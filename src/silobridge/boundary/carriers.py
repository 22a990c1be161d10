"""Carriers: the only things that may cross a silo boundary.

Each carrier is a small dataclass of JSON fields plus numpy arrays. ``encode()`` is deterministic
(sorted-key JSON header, arrays in field order, little-endian raw bytes) and ``nbytes`` is exactly
the length of that encoding, which is what the ledger records.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from silobridge.errors import BoundaryError

MAGIC = b"SBC1"
_REGISTRY: dict[str, type["Carrier"]] = {}


@dataclass(frozen=True)
class PrivacySpend:
    """Differential-privacy budget a carrier consumed (None fields when not DP)."""

    epsilon: float
    delta: float
    mechanism: str


@dataclass
class Carrier:
    """Base class. Subclasses set ``kind`` and declare fields; arrays are ``np.ndarray`` fields."""

    kind: ClassVar[str] = "carrier"
    privacy: PrivacySpend | None = field(default=None, kw_only=True)
    exposure: str | None = field(default=None, kw_only=True)  # a declared data exposure, if any

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "kind" in cls.__dict__:
            _REGISTRY[cls.kind] = cls

    # --- text view used by policies and auditors -------------------------------------------
    def texts(self) -> list[str]:
        """Text payload (for sanitization and leakage checks); empty for numeric carriers."""
        return []

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), np.ndarray)}

    # --- deterministic encoding -------------------------------------------------------------
    def encode(self) -> bytes:
        meta: dict[str, Any] = {"kind": self.kind, "fields": {}, "arrays": []}
        blobs = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arr = np.ascontiguousarray(value)
                if arr.dtype.byteorder == ">":
                    arr = arr.astype(arr.dtype.newbyteorder("<"))
                meta["arrays"].append({"name": f.name, "dtype": arr.dtype.str, "shape": list(arr.shape)})
                blobs.append(arr.tobytes())
            elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
                for k in sorted(value):  # named tensors (weights): sorted for determinism
                    arr = np.ascontiguousarray(value[k])
                    meta["arrays"].append({"name": f"{f.name}/{k}", "dtype": arr.dtype.str,
                                           "shape": list(arr.shape)})
                    blobs.append(arr.tobytes())
            elif isinstance(value, PrivacySpend):
                meta["fields"][f.name] = dataclasses.asdict(value)
            else:
                meta["fields"][f.name] = value
        header = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return MAGIC + struct.pack("<I", len(header)) + header + b"".join(blobs)

    @property
    def nbytes(self) -> int:
        return len(self.encode())

    def digest(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()


def decode(payload: bytes) -> Carrier:
    """Inverse of :meth:`Carrier.encode`; rejects anything malformed."""
    if payload[:4] != MAGIC or len(payload) < 8:
        raise BoundaryError("payload is not a silobridge carrier", where="channel",
                            fix="send Carrier objects through a Channel")
    (hlen,) = struct.unpack("<I", payload[4:8])
    meta = json.loads(payload[8:8 + hlen])
    cls = _REGISTRY.get(meta["kind"])
    if cls is None:
        raise BoundaryError(f"unknown carrier kind '{meta['kind']}'", where="channel")
    kwargs: dict[str, Any] = dict(meta["fields"])
    if kwargs.get("privacy"):
        kwargs["privacy"] = PrivacySpend(**kwargs["privacy"])
    offset = 8 + hlen
    for spec in meta["arrays"]:
        dt = np.dtype(spec["dtype"])
        n = int(np.prod(spec["shape"], dtype=np.int64)) * dt.itemsize
        arr = np.frombuffer(payload[offset:offset + n], dtype=dt).reshape(spec["shape"]).copy()
        offset += n
        name, _, sub = spec["name"].partition("/")
        if sub:
            kwargs.setdefault(name, {})[sub] = arr
        else:
            kwargs[name] = arr
    return cls(**kwargs)


# --- the carrier kinds ------------------------------------------------------------------------
@dataclass
class TextBatch(Carrier):
    """Texts crossing the boundary: public pool items, prompts, synthetic records, inference inputs."""

    kind: ClassVar[str] = "text"
    items: list[str] = field(default_factory=list)
    purpose: str = "texts"
    labels: list[int] | None = None  # for labelled synthetic records
    soft: np.ndarray | None = None  # (n, k) class distributions, e.g. an SM's soft labels

    def texts(self) -> list[str]:
        return list(self.items)


@dataclass
class SoftLabels(Carrier):
    """Per-class scores for a batch: log-probabilities (``log=True``) or probabilities."""

    kind: ClassVar[str] = "soft_labels"
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    log: bool = True
    label_names: list[str] = field(default_factory=list)


@dataclass
class HardLabels(Carrier):
    kind: ClassVar[str] = "hard_labels"
    values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class Weights(Carrier):
    """Named tensors: adapters, emulators, SM weights. ``origin`` says whose model they come from."""

    kind: ClassVar[str] = "weights"
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    origin: str = "adapter"  # "lm", "emulator", "adapter", "sm"
    meta: dict[str, Any] = field(default_factory=dict)  # architecture, layer map, quantisation scales' names

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.tensors)


@dataclass
class Activations(Carrier):
    kind: ClassVar[str] = "activations"
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))


@dataclass
class Metrics(Carrier):
    kind: ClassVar[str] = "metrics"
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class Config(Carrier):
    """Protocol parameters (a JSON object); carries no records."""

    kind: ClassVar[str] = "config"
    values: dict[str, Any] = field(default_factory=dict)


def expect(carrier: Carrier, cls: type[Carrier]) -> Carrier:
    """Check a reply's kind (a protocol error otherwise)."""
    if not isinstance(carrier, cls):
        raise BoundaryError(f"expected a '{cls.kind}' carrier, got '{carrier.kind}'", where="channel reply",
                            fix="both parties must run the same strategy version")
    return carrier
