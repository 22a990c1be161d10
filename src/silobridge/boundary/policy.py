"""Egress policy: rules a party applies to every carrier it sends. Each rule has a name that
appears in the :class:`PolicyViolation` it raises."""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from silobridge.boundary.carriers import Carrier, Weights
from silobridge.boundary.fingerprint import TextFingerprint
from silobridge.errors import PolicyViolation


@dataclass
class Outgoing:
    """One carrier on its way out, with what the running strategy declared it may expose."""

    carrier: Carrier
    payload: bytes
    sender: str
    receiver: str
    declared: frozenset[str]

    def refuse(self, rule: str, what: str, fix: str) -> PolicyViolation:
        return PolicyViolation(rule, what, sender=self.sender, receiver=self.receiver,
                               kind=self.carrier.kind, fix=fix)

    @property
    def exposure_declared(self) -> bool:
        return self.carrier.exposure is not None and self.carrier.exposure in self.declared


def array_digest(a: np.ndarray) -> str:
    """Digest of an array's values as float32: equal digests mean a bit-exact copy of a tensor."""
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


class Rule:
    name = "rule"

    def check(self, out: Outgoing) -> None:  # raise out.refuse(...) to refuse
        raise NotImplementedError


class MaxBytes(Rule):
    """(d) Refuse carriers over a size limit."""

    name = "max-bytes"

    def __init__(self, limit: int):
        self.limit = limit

    def check(self, out: Outgoing) -> None:
        if len(out.payload) > self.limit:
            raise out.refuse(self.name, f"{len(out.payload):,} bytes exceeds the limit of {self.limit:,}",
                             "send smaller batches or raise policy.max_bytes")


class NoCanary(Rule):
    """(b) Refuse any carrier whose encoding contains a planted canary. Waived only for a carrier
    that ships private records under a declared 'private_records' exposure (the reference upper
    bound), whose canaries the audit then counts."""

    name = "no-canary"

    def __init__(self, canaries: Iterable[str]):
        self.canaries = [c.encode() for c in canaries]

    def check(self, out: Outgoing) -> None:
        if out.exposure_declared and out.carrier.exposure == "private_records":
            return
        for c in self.canaries:
            if c in out.payload:
                raise out.refuse(self.name, "it contains a planted canary secret",
                                 "never send private records or text generated from them unfiltered")


class NoPrivateRecords(Rule):
    """(a) Refuse text that contains a protected record verbatim or shares a long span with one,
    unless the carrier names an exposure the running strategy declared."""

    name = "no-private-records"

    def __init__(self, fingerprint: TextFingerprint):
        self.fingerprint = fingerprint

    def check(self, out: Outgoing) -> None:
        if out.exposure_declared:
            return
        for i, text in enumerate(out.carrier.texts()):
            hits = self.fingerprint.hits(text)
            if hits:
                raise out.refuse(
                    self.name,
                    f"text item {i} reproduces {len(hits)} private record(s) (a span of "
                    f">= {self.fingerprint.n} words or a whole record)",
                    "send only public or synthetic text; a strategy that must expose records "
                    "declares it (Strategy.exposes) and the exposure is recorded")


class NoModelWeights(Rule):
    """(c) Refuse weights of the protected model: any carrier with ``origin='lm'`` or an array equal
    to one of its parameters, unless the strategy declared the transfer ('lm_weights')."""

    name = "no-lm-weights"

    def __init__(self, parameters: Callable[[], Iterable[np.ndarray]]):
        self._parameters = parameters
        self._hashes: set[str] | None = None

    def check(self, out: Outgoing) -> None:
        if "lm_weights" in out.declared:
            return
        if isinstance(out.carrier, Weights) and out.carrier.origin == "lm":
            raise out.refuse(self.name, "the carrier holds the LM's weights",
                             "send outputs (labels, text), not weights, or declare 'lm_weights'")
        arrays = [a for a in out.carrier.arrays().values() if a.size >= 256 and a.dtype.kind == "f"]
        if not arrays:
            return
        if self._hashes is None:
            self._hashes = {array_digest(p) for p in self._parameters()}
        for a in arrays:
            if array_digest(a) in self._hashes:
                raise out.refuse(self.name, "an array equals one of the LM's parameter tensors",
                                 "never copy LM parameters into a carrier, or declare 'lm_weights'")


@dataclass
class Policy:
    """The ordered rules one party applies to what it sends."""

    rules: list[Rule] = field(default_factory=list)

    def check(self, out: Outgoing) -> None:
        for rule in self.rules:
            rule.check(out)
