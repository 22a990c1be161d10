"""The omniscient auditor: watches every boundary crossing (independently of policy) and counts
planted canaries and data-party records found in the traffic."""
from __future__ import annotations

from collections import Counter

from silobridge.boundary import Carrier, Entry, TextFingerprint
from silobridge.boundary.inspect import metadata, texts
from silobridge.boundary.policy import declared_lm_share


class Auditor:
    """A gate observer. Canaries are searched in the payload bytes exactly as they crossed; records
    in every string of the carrier, texts and metadata alike. Records found in the text items of a
    carrier that names an exposure also count as declared; metadata is never covered by one."""

    def __init__(self, secrets: list[str], records: list[str], ngram: int, key: bytes | None = None,
                 fingerprint: TextFingerprint | None = None):
        self.secrets = [s.encode() for s in secrets]
        # ``fingerprint``: an empty index of another kind (a table's rows: boundary.rows.RowFingerprint)
        self.fingerprint = fingerprint if fingerprint is not None else TextFingerprint(n=ngram, key=key)
        self.fingerprint.add(records)
        self.canary_hits = 0
        self.records_seen: set[int] = set()
        self.records_declared: set[int] = set()
        self.exposures: dict[str, Counter[str]] = {}  # exposure -> carriers, texts, bytes
        self.exposure_records: dict[str, set[int]] = {}  # exposure -> the records found in its carriers' texts
        self.declared_share = 0.0  # the largest share of LM parameters the model party declared sending
        self.generated: list[str] = []  # texts the model party sent (its LM's writing): for watermark detection

    def __call__(self, entry: Entry, carrier: Carrier, payload: bytes) -> None:
        self.canary_hits += sum(s in payload for s in self.secrets)
        self._count_records(carrier)
        if carrier.exposure:
            self.exposures.setdefault(carrier.exposure, Counter()).update(
                carriers=1, texts=len(carrier.texts()), bytes=entry.bytes,
                **({"dp_carriers": 1} if carrier.privacy else {}))  # under a DP guarantee (its ε in the ledger)
        if entry.sender == "model":
            self.declared_share = max(self.declared_share, declared_lm_share(carrier))
            if carrier.kind == "text":
                self.generated += carrier.texts()

    def _count_records(self, carrier: Carrier) -> None:
        for text in texts(carrier):
            hits = self.fingerprint.hits(text)
            self.records_seen |= hits
            if carrier.exposure:
                self.records_declared |= hits
                self.exposure_records.setdefault(carrier.exposure, set()).update(hits)
        for s in metadata(carrier):
            self.records_seen |= self.fingerprint.hits(s)

    def exposure_counts(self) -> dict[str, dict[str, int]]:
        """Per declared exposure: carriers, texts, bytes, DP carriers, and the distinct protected records its
        texts reproduced (e.g. how many private records DP samples repeated)."""
        return {k: dict(v) | {"records": len(self.exposure_records.get(k, ()))} for k, v in self.exposures.items()}

    def model_leakage(self, exact_share: float) -> dict[str, float]:
        """Share of the LM's parameters that crossed: bit-exact copies (``exact_share``, which the
        model party reports), and the share it declared (e.g. an emulator's size, also counting
        quantised copies)."""
        return {"lm_param_share_exact": exact_share, "lm_param_share_declared": self.declared_share}
