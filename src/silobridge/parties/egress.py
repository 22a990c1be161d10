"""The data party's egress transform: PII sanitisation of every text item it sends (``policy.sanitize``).
Applied by its gate before the policy checks, so the ledger, the policy and the other party see only the
sanitised text. A sanitised text inherits its original's admissions: an inference input admitted under
'inference_records' may cross in its masked form, and nothing else is admitted by the rewrite."""
from __future__ import annotations

import dataclasses

from silobridge.boundary.carriers import Carrier, ContextQuery, TextBatch
from silobridge.boundary.fingerprint import TextFingerprint
from silobridge.errors import PolicyViolation
from silobridge.privacy.sanitize import Sanitiser

REWRITABLE = (TextBatch, ContextQuery)  # text items that stand alone (no array is aligned to their tokens)


class SanitisingEgress:
    def __init__(self, sanitiser: Sanitiser, fingerprint: TextFingerprint, admitted: dict[str, set[str]],
                 sender: str = "data"):
        self.sanitiser, self.fingerprint, self.admitted, self.sender = sanitiser, fingerprint, admitted, sender

    def __call__(self, carrier: Carrier) -> Carrier:
        texts = carrier.texts()
        if not texts:
            return carrier
        if not isinstance(carrier, REWRITABLE):
            raise PolicyViolation(
                "sanitize", f"policy.sanitize cannot rewrite a '{carrier.kind}' carrier: its arrays are aligned "
                "to its texts' tokens", sender=self.sender, receiver="model", kind=carrier.kind,
                fix="run this strategy with policy.sanitize=false, or sanitise the texts before the strategy "
                    "computes on them")
        clean = self.sanitiser(texts)
        if clean == texts:
            return carrier
        for before, after in zip(texts, clean):
            if before != after:
                self._inherit(before, after)
        return dataclasses.replace(carrier, items=clean)

    def _inherit(self, before: str, after: str) -> None:
        d_before, d_after = self.fingerprint.text_digest(before), self.fingerprint.text_digest(after)
        for digests in self.admitted.values():
            if d_before in digests:
                digests.add(d_after)
