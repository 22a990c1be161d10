"""Carriers: the only things that may cross a silo boundary.

Each carrier is a small dataclass of JSON fields plus numpy arrays. On the wire it is a safetensors
file: the arrays are its tensors (named ``field``, or ``field/key`` for a dict of arrays such as
``Weights.tensors``) and all other fields, with the kind, sit in ONE sorted-key JSON string under the
metadata key ``silobridge``. ``encode()`` writes exactly the bytes ``safetensors.numpy.save`` would,
deterministically (tensors ordered by dtype, then name; sorted-key JSON), and ``nbytes`` is exactly the
length of that encoding, which is what the ledger records. ``decode()`` parses with safetensors and trusts
nothing: every malformed payload is refused with a :class:`BoundaryError`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import safetensors.numpy

from silobridge.errors import BoundaryError

_META_KEY = "silobridge"
MAGIC = b'{"__metadata__":{"' + _META_KEY.encode() + b'":'  # how every carrier's safetensors header begins
MAX_HEADER = 64 << 20  # the largest safetensors header (JSON) decode() will parse, in bytes
# the numpy dtypes the wire carries, by safetensors name, in safetensors' dtype order (it writes the tensors
# largest dtype first, then by name)
_DTYPES = {np.dtype(t): name for t, name in [
    (np.bool_, "BOOL"), (np.uint8, "U8"), (np.int8, "I8"), (np.int16, "I16"), (np.uint16, "U16"), (np.float16, "F16"),
    (np.int32, "I32"), (np.uint32, "U32"), (np.float32, "F32"), (np.complex64, "C64"), (np.float64, "F64"),
    (np.int64, "I64"), (np.uint64, "U64")]}
_RANK = {dtype: i for i, dtype in enumerate(_DTYPES)}
_FIX = "send Carrier objects through a Channel; both parties must run the same silobridge version"
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
    finite: ClassVar[bool] = False  # True: decode() refuses NaN and infinities in the data fields
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
        """The carrier as safetensors bytes; the same carrier always gives the same bytes."""
        fields, tensors, hints = {}, {}, _hints(type(self))
        for f in dataclasses.fields(self):
            value, hint = getattr(self, f.name), hints[f.name]
            role = _array_role(hint)
            if role and not _conforms(value, hint):
                raise self._unencodable(f"field '{f.name}' must be {f.type}, got {type(value).__name__}")
            if role == "array" and value is not None:
                tensors[f.name] = self._wire_array(f.name, value)
            elif role == "dict":
                tensors.update({f"{f.name}/{k}": self._wire_array(f"{f.name}/{k}", v) for k, v in value.items()})
            elif role is None:
                fields[f.name] = dataclasses.asdict(value) if isinstance(value, PrivacySpend) else value
        try:
            text = json.dumps({"kind": self.kind, "fields": fields}, sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False)
            return _safetensors(tensors, text)
        except (TypeError, ValueError) as exc:  # not JSON, or text that is not valid Unicode
            raise self._unencodable(str(exc)[:200]) from None

    def _wire_array(self, name: str, arr: np.ndarray) -> np.ndarray:
        """``arr`` little-endian and C-contiguous (copied only when it is not already)."""
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if arr.dtype not in _DTYPES:
            raise self._unencodable(f"array '{name}' has dtype {arr.dtype}, which the wire cannot carry",
                                    fix=f"cast it to one of: {', '.join(sorted(str(d) for d in _DTYPES))}")
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)

    def _unencodable(self, what: str, fix: str = "carriers hold JSON values and numpy arrays of their "
                                                  "declared types") -> BoundaryError:
        return BoundaryError(f"cannot encode this '{self.kind}' carrier: {what}", where=f"{self.kind} carrier",
                             fix=fix)

    @property
    def nbytes(self) -> int:
        return len(self.encode())

    def digest(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()


def _safetensors(tensors: dict[str, np.ndarray], metadata: str) -> bytes:
    """The safetensors file ``safetensors.numpy.save(tensors, {"silobridge": metadata})`` writes, byte for byte
    (tested), assembled with one copy of the arrays instead of its two."""
    order = sorted(tensors.items(), key=lambda item: (-_RANK[item[1].dtype], item[0]))
    header: dict[str, Any] = {"__metadata__": {_META_KEY: metadata}}
    offset = 0
    for name, arr in order:
        header[name] = {"dtype": _DTYPES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    head += b" " * (-len(head) % 8)  # safetensors pads its header to a multiple of 8 bytes
    return b"".join([len(head).to_bytes(8, "little"), head, *(arr.reshape(-1).view(np.uint8) for _, arr in order)])


# --- decoding: trusts nothing ---------------------------------------------------------------------
def decode(payload: bytes) -> Carrier:
    """Inverse of :meth:`Carrier.encode`; refuses anything malformed with a :class:`BoundaryError`.

    The header length is checked against the payload before anything is parsed, so no input makes
    it allocate more than about the payload's size.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise _refuse(f"payload is not a silobridge carrier (a {type(payload).__name__}, not bytes)")
    payload = bytes(payload)
    if not payload.startswith(MAGIC, 8):
        raise _refuse("payload is not a silobridge carrier")
    n = int.from_bytes(payload[:8], "little")
    if n > min(len(payload) - 8, MAX_HEADER):
        raise _refuse(f"payload is not a silobridge carrier: its header claims {n} bytes, but {len(payload) - 8}"
                      f" follow (and at most {MAX_HEADER} are allowed)")
    header = _json(payload[8:8 + n], "the safetensors header")
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or set(meta) != {_META_KEY} or not isinstance(meta[_META_KEY], str):
        raise _refuse(f"the safetensors header holds no '{_META_KEY}' metadata string (and nothing else)")
    body = _json(meta[_META_KEY], "the carrier metadata")
    if not isinstance(body, dict) or set(body) != {"kind", "fields"} or not isinstance(body["fields"], dict):
        raise _refuse('the carrier metadata is not {"kind": ..., "fields": {...}}')
    cls = _REGISTRY.get(body["kind"]) if isinstance(body["kind"], str) else None
    if cls is None:
        raise _refuse(f"unknown carrier kind {_show(body['kind'])}", fix=f"known kinds: {sorted(_REGISTRY)}; "
                      + _FIX)
    try:
        tensors = safetensors.numpy.load(payload)  # validates dtypes, shapes and offsets against the payload
    except Exception as exc:  # SafetensorError, a dtype numpy lacks (KeyError), a shape it cannot hold
        raise _refuse(f"the payload's tensors are malformed: {str(exc)[:200]}") from None
    return _build(cls, body["fields"], tensors)


def _build(cls: type[Carrier], fields: dict[str, Any], tensors: dict[str, np.ndarray]) -> Carrier:
    """A ``cls`` carrier from decoded JSON fields and tensors, each checked against its declared type."""
    hints, declared = _hints(cls), {f.name: f.type for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in declared or _array_role(hints[name]):
            raise _refuse(f"a '{cls.kind}' carrier has no JSON field {_show(name)}")
        if not _conforms(value, hints[name]):
            raise _refuse(f"field '{name}' of a '{cls.kind}' carrier must be {declared[name]}, got {_show(value)}")
        kwargs[name] = PrivacySpend(**value) if name == "privacy" and value is not None else value
    for key, arr in tensors.items():
        name, nested, sub = key.partition("/")
        if name not in declared or _array_role(hints[name]) != ("dict" if nested else "array"):
            raise _refuse(f"a '{cls.kind}' carrier has no array field {_show(key)}")
        if nested:
            kwargs.setdefault(name, {})[sub] = arr
        else:
            kwargs[name] = arr
    carrier = cls(**kwargs)
    data_fields = [name for name in declared if name not in ("privacy", "exposure")] if cls.finite else []
    for name in data_fields:
        if not _finite(getattr(carrier, name)):
            raise _refuse(f"field '{name}' of a '{cls.kind}' carrier holds NaN or infinite values",
                          fix="the sender must send finite numbers (a diverged model or a bad division?)")
    return carrier


def _refuse(what: str, fix: str = _FIX) -> BoundaryError:
    return BoundaryError(what, where="channel", fix=fix)


def _show(value: Any) -> str:
    """A short repr of untrusted input, for error messages."""
    return reprlib.repr(value)


def _json(data: bytes | str, what: str) -> Any:
    """Strict UTF-8 JSON: no duplicate keys (no two parsers may read it differently), no lone surrogates."""
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len(out := dict(pairs)) != len(pairs):
            raise ValueError("duplicate key")
        return out

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, object_pairs_hook=unique)
        if _SURROGATE_ESCAPE.search(text):  # rare: then check that every string is valid Unicode
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except (ValueError, RecursionError) as exc:  # UnicodeError and JSONDecodeError are ValueErrors
        raise _refuse(f"{what} is not valid UTF-8 JSON ({str(exc)[:200]})") from None


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _array_role(tp: Any) -> str | None:
    """'array' for an ndarray field (None-able or not), 'dict' for a dict of named arrays, else None."""
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    if tp is np.ndarray or union and np.ndarray in typing.get_args(tp):
        return "array"
    if typing.get_origin(tp) is dict and typing.get_args(tp)[1] is np.ndarray:
        return "dict"
    return None


def _conforms(value: Any, tp: Any) -> bool:
    """Whether ``value`` (as JSON or numpy gives it) has the declared type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if tp in (int, float):  # an int is a valid float; a bool is neither
        return isinstance(value, int if tp is int else (int, float)) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _conforms(v, args[1]) for k, v in value.items())
    if dataclasses.is_dataclass(tp):  # sent as a JSON object of exactly its fields
        hints = _hints(tp)
        return isinstance(value, dict) and value.keys() == hints.keys() and all(
            _conforms(value[k], hints[k]) for k in hints)
    return isinstance(value, tp)  # str, bool, NoneType, np.ndarray


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in ``value`` (arrays, floats, lists, dicts)."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or bool(np.isfinite(value).all())
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, dict)):
        return all(map(_finite, value.values() if isinstance(value, dict) else value))
    return True


# --- the carrier kinds ------------------------------------------------------------------------
@dataclass
class TextBatch(Carrier):
    """Texts crossing the boundary: public pool items, prompts, synthetic records, inference inputs."""

    kind: ClassVar[str] = "text"
    finite: ClassVar[bool] = True
    items: list[str] = field(default_factory=list)
    purpose: str = "texts"
    labels: list[int] | None = None  # for labelled synthetic records
    soft: np.ndarray | None = None  # (n, k) class distributions, e.g. an SM's soft labels

    def texts(self) -> list[str]:
        return list(self.items)


@dataclass
class ContextQuery(Carrier):
    """Texts to classify, each with its context examples: row i of ``context`` holds indices into the
    labelled examples sent earlier in the session (a ``TextBatch``), most relevant first; -1 pads."""

    kind: ClassVar[str] = "context_query"
    finite: ClassVar[bool] = True
    items: list[str] = field(default_factory=list)
    context: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    purpose: str = "texts"

    def texts(self) -> list[str]:
        return list(self.items)


@dataclass
class LogitShift(Carrier):
    """Offsets to add to a causal LM's next-token logits on ``items``: row p of ``token_ids`` / ``values``
    is the p-th next-token position over the texts' tokens (``max_len`` each), in order."""

    kind: ClassVar[str] = "logit_shift"
    finite: ClassVar[bool] = True
    items: list[str] = field(default_factory=list)
    token_ids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float16))
    max_len: int = 128

    def texts(self) -> list[str]:
        return list(self.items)


@dataclass
class SoftLabels(Carrier):
    """Per-class scores for a batch: log-probabilities (``log=True``) or probabilities."""

    kind: ClassVar[str] = "soft_labels"
    finite: ClassVar[bool] = True
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
    finite: ClassVar[bool] = True
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))


@dataclass
class Metrics(Carrier):
    kind: ClassVar[str] = "metrics"
    finite: ClassVar[bool] = True
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
