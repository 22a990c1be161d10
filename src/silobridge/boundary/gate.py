"""A party's side of the boundary. Everything the party sends is encoded, checked by its egress
policy and written to its ledger (then shown to observers, e.g. an auditor); everything it receives
is decoded and written to its ledger too. An egress transform, where the party sets one, rewrites a
carrier before all of that. Both parties keep a gate, so after a run their two ledgers
can be compared entry by entry. Knows no transport: it turns carriers into bytes and back."""
from __future__ import annotations

from collections.abc import Callable

from silobridge.boundary.carriers import Carrier, decode
from silobridge.boundary.ledger import Entry, Ledger
from silobridge.boundary.policy import Outgoing, Policy
from silobridge.errors import BoundaryError

Observer = Callable[[Entry, Carrier, bytes], None]


class Gate:
    def __init__(self, name: str, policy: Policy, ledger: Ledger, declared: frozenset[str] = frozenset()):
        self.name, self.policy, self.ledger, self.declared = name, policy, ledger, declared
        self.observers: list[Observer] = []
        self.transform: Callable[[Carrier], Carrier] | None = None  # an egress rewrite (e.g. PII sanitisation)

    def send(self, carrier: Carrier, receiver: str, op: str) -> tuple[Entry, bytes]:
        """Encode ``carrier`` for ``receiver``'s operation ``op``; refuse it if policy forbids it."""
        if not isinstance(carrier, Carrier):
            raise BoundaryError(f"{type(carrier).__name__} is not a Carrier", where=f"{self.name}.{op}",
                                fix="wrap what crosses in a carrier from silobridge.boundary")
        if self.transform is not None:
            carrier = self.transform(carrier)
        payload = carrier.encode()
        self.policy.check(Outgoing(carrier, payload, self.name, receiver, self.declared))
        entry = self.ledger.record(self.name, receiver, op, carrier, payload)
        for obs in self.observers:
            obs(entry, carrier, payload)
        return entry, payload

    def receive(self, payload: bytes, sender: str, op: str) -> tuple[Entry, Carrier]:
        """Decode what ``sender`` sent (a typed error if it is malformed) and record it."""
        carrier = decode(payload)
        entry = self.ledger.record(sender, self.name, op, carrier, payload)
        for obs in self.observers:
            obs(entry, carrier, payload)
        return entry, carrier
