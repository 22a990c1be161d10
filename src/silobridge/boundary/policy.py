"""Egress policy: rules a party applies to every carrier it sends. Each rule has a name that
appears in the :class:`PolicyViolation` it raises."""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from silobridge.boundary.carriers import Carrier, Weights
from silobridge.boundary.fingerprint import TextFingerprint
from silobridge.boundary.inspect import field_of, metadata, strings, texts
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

    @property
    def dp_covered(self) -> bool:
        """The carrier's texts are the outputs of a DP mechanism, declared as such: exposure
        :data:`DP_OUTPUTS`, declared by the strategy, with a finite ε on the carrier (its PrivacySpend)."""
        p = self.carrier.privacy
        return (self.exposure_declared and self.carrier.exposure == DP_OUTPUTS and p is not None
                and math.isfinite(p.epsilon))


# what a DP mechanism released (e.g. text sampled from a DP-trained generator): releasable at the ε on its
# carrier. A text that repeats a private span or a canary is let through and counted by the auditor, not refused
DP_OUTPUTS = "dp_outputs"


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
    """(b) Refuse any carrier whose encoding contains a planted canary: the payload bytes cover every
    field, metadata included (each string is also checked, whatever the wire format does to it).
    Waived only for a carrier that ships private records by design under a declared exposure —
    'private_records' (the reference upper bound) or 'retrieved_records' (PII-sanitised neighbours, which
    a sanitiser cannot know to be secret) — whose canaries the audit then counts."""

    name = "no-canary"
    WAIVED = frozenset({"private_records", "retrieved_records"})

    def __init__(self, canaries: Iterable[str]):
        self.canaries = list(canaries)
        self._encoded = [c.encode() for c in self.canaries]

    def check(self, out: Outgoing) -> None:
        if out.exposure_declared and out.carrier.exposure in self.WAIVED or out.dp_covered:
            return
        if self._found(out):
            raise out.refuse(self.name, "it contains a planted canary secret",
                             "never send private records or text generated from them unfiltered")

    def _found(self, out: Outgoing) -> bool:
        if any(c in out.payload for c in self._encoded):
            return True
        return any(c in s for s in strings(out.carrier) for c in self.canaries)


class NoPrivateRecords(Rule):
    """(a) Refuse a carrier that reproduces a protected record (verbatim or a span of ``n`` words).

    Metadata (every string but the text items: purpose, config values, weights' meta, keys) may
    never reproduce one. A text item that does is allowed only when the carrier names an exposure
    the running strategy declared *and* that exact text was admitted for the exposure
    (``admitted[exposure]`` holds ``fingerprint.text_digest`` of each admitted text): an
    'inference_records' carrier may send the inference inputs that arrived, never a training
    record labelled that way; a declared :data:`DP_OUTPUTS` carrier with a finite ε may send any text (its
    DP guarantee covers them). ``admitted`` is read at each check (the data party adds to it)."""

    name = "no-private-records"

    def __init__(self, fingerprint: TextFingerprint, admitted: dict[str, set[str]] | None = None):
        self.fingerprint = fingerprint
        self.admitted = admitted if admitted is not None else {}  # shared, not copied

    def check(self, out: Outgoing) -> None:
        self._check_metadata(out)
        self._check_texts(out)

    def _span(self) -> str:
        return f"a span of >= {self.fingerprint.n} words or a whole record"

    def _check_metadata(self, out: Outgoing) -> None:
        for s in metadata(out.carrier):
            hits = self.fingerprint.hits(s)
            if hits:
                raise out.refuse(
                    self.name,
                    f"a metadata string in field '{field_of(out.carrier, s)}' reproduces {len(hits)} private "
                    f"record(s) ({self._span()}); no exposure covers metadata",
                    "put records only in a carrier's text items (e.g. TextBatch.items), never in its purpose, "
                    "config values, weights' meta or names")

    def _check_texts(self, out: Outgoing) -> None:
        exposure = out.carrier.exposure
        for i, text in enumerate(texts(out.carrier)):
            hits = self.fingerprint.hits(text)
            if not hits or self._admits(out, text):
                continue
            what = f"text item {i} reproduces {len(hits)} private record(s) ({self._span()})"
            if not out.exposure_declared:
                why = (f"the strategy does not declare exposure '{exposure}'" if exposure
                       else "the carrier declares no exposure")
                raise out.refuse(
                    self.name, f"{what}, and {why}",
                    "send only public or synthetic text; a strategy that must expose records declares it "
                    "(Strategy.exposes) and sets that exposure on the carrier, and the exposure is recorded")
            if exposure == DP_OUTPUTS:
                raise out.refuse(self.name, what + f", and the '{DP_OUTPUTS}' carrier states no finite ε",
                                 "attach the DP mechanism's PrivacySpend (its finite epsilon) to the carrier")
            raise out.refuse(
                self.name, what + f", and it is not one of the texts admitted under exposure '{exposure}'",
                f"'{exposure}' covers only the exact texts admitted for it (DataParty.admit(texts, '{exposure}')): "
                "send those texts unchanged, never other records under that label")

    def _admits(self, out: Outgoing, text: str) -> bool:
        exposure = out.carrier.exposure
        return out.dp_covered or (out.exposure_declared
                                  and self.fingerprint.text_digest(text) in self.admitted.get(exposure, set()))


class NoModelWeights(Rule):
    """(c) Refuse weights of the protected model: a carrier with ``origin='lm'`` or an array equal
    (bit-exact) to one of its parameters. Waived only for a carrier that declares the transfer
    itself (``exposure='lm_weights'``, declared by the strategy), and only up to the share it
    declares: the LM's parameters (by element count) found in the carrier may not exceed
    ``meta['revealed_param_share']`` of a Weights carrier (0 for any other carrier)."""

    name = "no-lm-weights"
    tolerance = 1e-6  # on the share, for rounding in the declared value

    def __init__(self, parameters: Callable[[], Iterable[np.ndarray]]):
        self._parameters = parameters
        self._sizes: dict[str, int] | None = None  # digest -> elements of the LM's tensors with it
        self._total = 0

    def check(self, out: Outgoing) -> None:
        carrier = out.carrier
        declares = carrier.exposure == "lm_weights" and out.exposure_declared
        if isinstance(carrier, Weights) and carrier.origin == "lm" and not declares:
            raise out.refuse(self.name, "the carrier holds the LM's weights (origin='lm')",
                             "send outputs (labels, text), not weights, or declare 'lm_weights' in the "
                             "strategy's exposes and set exposure='lm_weights' on the carrier")
        share = self.exact_share(carrier)
        if share == 0:
            return
        if not declares:
            raise out.refuse(self.name, f"arrays equal the LM's parameter tensors ({share:.2%} of its parameters)",
                             "never copy LM parameters into a carrier, or declare 'lm_weights' in the strategy's "
                             "exposes and set exposure='lm_weights' on the carrier")
        allowed = declared_lm_share(carrier)
        if share > allowed + self.tolerance:
            raise out.refuse(self.name, f"{share:.4%} of the LM's parameters are copied bit-exactly, but the "
                                        f"carrier declares revealed_param_share={allowed:.4%}",
                             "declare the share the carrier reveals in meta['revealed_param_share'] "
                             "(LM parameters sent / all LM parameters), or send fewer LM tensors")

    def exact_share(self, carrier: Carrier) -> float:
        """Share of the LM's parameters (by element count) that ``carrier`` holds bit-exactly."""
        digests = {array_digest(a) for a in carrier.arrays().values() if _comparable(a)}
        if not digests:
            return 0.0
        sizes = self._lm_sizes()
        found = sum(sizes.get(d, 0) for d in digests)
        return found / self._total if self._total else 0.0

    def _lm_sizes(self) -> dict[str, int]:
        if self._sizes is None:  # the LM is read once, on the first carrier with float arrays
            sizes: dict[str, int] = {}
            for p in self._parameters():
                d = array_digest(p)
                sizes[d] = sizes.get(d, 0) + p.size  # equal tensors (tied, all-zero) share a digest
                self._total += p.size
            self._sizes = sizes
        return self._sizes


class NoPrivateModel(Rule):
    """(e) The data party's rule: weights it sends (adapters, SM weights: anything trained on its
    private records) are a declared exposure or nothing. A Weights carrier must set
    ``exposure='private_model'`` and the running strategy must declare 'private_model'."""

    name = "no-private-model"

    def check(self, out: Outgoing) -> None:
        carrier = out.carrier
        if not isinstance(carrier, Weights):
            return
        if carrier.exposure == "private_model" and out.exposure_declared:
            return
        why = ("the strategy does not declare 'private_model'" if carrier.exposure == "private_model"
               else f"the carrier declares exposure {carrier.exposure!r}, not 'private_model'")
        raise out.refuse(self.name, f"weights trained on private records would leave the data party: {why}",
                         "declare 'private_model' in the strategy's exposes and set exposure='private_model' "
                         "on the carrier")


def declared_lm_share(carrier: Carrier) -> float:
    """The share of the LM's parameters a carrier declares it reveals (0 unless a Weights carrier
    says otherwise in ``meta['revealed_param_share']``)."""
    if not isinstance(carrier, Weights):
        return 0.0
    try:
        return float(carrier.meta.get("revealed_param_share", 0.0) or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _comparable(a: np.ndarray) -> bool:
    """Float arrays big enough that a bit-exact match with an LM tensor is no coincidence."""
    return a.dtype.kind == "f" and a.size >= 256


@dataclass
class Policy:
    """The ordered rules one party applies to what it sends."""

    rules: list[Rule] = field(default_factory=list)

    def check(self, out: Outgoing) -> None:
        for rule in self.rules:
            rule.check(out)
