"""Every string a carrier holds, for egress rules and the auditor.

A carrier's *texts* (:meth:`Carrier.texts`, e.g. a TextBatch's items) are its payload: a declared
exposure may cover them. Everything else that is a string is *metadata* — a purpose, a Config's
values, a Weights' meta (tokenizer files, layer maps), dict keys, tensor names, the exposure label
itself — and no exposure ever covers it. Numeric arrays hold no strings and are not walked; arrays
of strings or objects are (they would otherwise be a way to smuggle text)."""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from silobridge.boundary.carriers import Carrier


def _walk(value: Any) -> Iterator[str]:
    """Every str inside ``value``: through dataclasses, dicts (keys and values), lists, tuples and sets,
    and arrays of strings or objects."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, np.ndarray):
        if value.dtype.kind in "USO":
            for item in value.ravel().tolist():
                yield from _walk(item.decode("utf-8", "replace") if isinstance(item, bytes) else item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _walk(getattr(value, f.name))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(k)
            yield from _walk(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _walk(item)


def strings(carrier: Carrier) -> list[str]:
    """Every str anywhere in ``carrier``'s fields (texts and metadata), in field order."""
    return list(_walk(carrier))


def texts(carrier: Carrier) -> list[str]:
    """The carrier's text payload: what a declared exposure may cover."""
    return list(carrier.texts())


def metadata(carrier: Carrier) -> list[str]:
    """``strings(carrier)`` less the text items (each removed once): what no exposure ever covers."""
    payload = Counter(texts(carrier))
    rest = []
    for s in strings(carrier):
        if payload[s] > 0:
            payload[s] -= 1
        else:
            rest.append(s)
    return rest


def field_of(carrier: Carrier, s: str) -> str:
    """Name of the first field of ``carrier`` holding the string ``s`` (to say where, not what)."""
    for f in dataclasses.fields(carrier):
        if s in _walk(getattr(carrier, f.name)):
            return f.name
    return "?"
