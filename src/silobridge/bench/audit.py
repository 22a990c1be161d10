"""The omniscient auditor: watches every boundary crossing (independently of policy) and counts
planted canaries and data-party records found in the traffic."""
from __future__ import annotations

from collections import Counter

from silobridge.boundary import Carrier, Entry, TextFingerprint


class Auditor:
    def __init__(self, secrets: list[str], records: list[str], ngram: int):
        self.secrets = [s.encode() for s in secrets]
        self.fingerprint = TextFingerprint(n=ngram)
        self.fingerprint.add(records)
        self.canary_hits = 0
        self.records_seen: set[int] = set()
        self.records_declared: set[int] = set()
        self.exposures: Counter[str] = Counter()

    def __call__(self, entry: Entry, carrier: Carrier) -> None:
        payload = carrier.encode()
        self.canary_hits += sum(s in payload for s in self.secrets)
        for text in carrier.texts():
            hits = self.fingerprint.hits(text)
            self.records_seen |= hits
            if carrier.exposure:
                self.records_declared |= hits
        if carrier.exposure:
            self.exposures[carrier.exposure] += len(carrier.texts())
