"""The omniscient auditor: watches every boundary crossing (independently of policy) and counts
planted canaries and data-party records found in the traffic."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from silobridge.boundary import Carrier, Entry, TextFingerprint, Weights
from silobridge.boundary.policy import array_digest


class Auditor:
    def __init__(self, secrets: list[str], records: list[str], ngram: int):
        self.secrets = [s.encode() for s in secrets]
        self.fingerprint = TextFingerprint(n=ngram)
        self.fingerprint.add(records)
        self.canary_hits = 0
        self.records_seen: set[int] = set()
        self.records_declared: set[int] = set()
        self.exposures: dict[str, Counter[str]] = {}  # exposure -> carriers, texts, bytes
        self.sent_arrays: set[str] = set()  # hashes of float arrays the model party sent
        self.declared_share = 0.0

    def __call__(self, entry: Entry, carrier: Carrier) -> None:
        payload = carrier.encode()
        self.canary_hits += sum(s in payload for s in self.secrets)
        for text in carrier.texts():
            hits = self.fingerprint.hits(text)
            self.records_seen |= hits
            if carrier.exposure:
                self.records_declared |= hits
        if carrier.exposure:
            self.exposures.setdefault(carrier.exposure, Counter()).update(
                carriers=1, texts=len(carrier.texts()), bytes=entry.bytes)
        if entry.sender == "model":
            self.sent_arrays |= {array_digest(a) for a in carrier.arrays().values()
                                 if a.dtype.kind == "f" and a.size >= 256}
            if isinstance(carrier, Weights):
                self.declared_share = max(self.declared_share, float(carrier.meta.get("revealed_param_share", 0.0)))

    def model_leakage(self, lm_parameters: Iterable[np.ndarray] | None) -> dict[str, float]:
        """Share of the LM's parameters that crossed: bit-exact copies found in the traffic, and the
        share the model party declared (e.g. an emulator's size, also counting quantised copies)."""
        exact = total = 0
        for p in lm_parameters or []:
            total += p.size
            if self.sent_arrays and array_digest(p) in self.sent_arrays:
                exact += p.size
        return {"lm_param_share_exact": exact / total if total else 0.0,
                "lm_param_share_declared": self.declared_share}
