"""Carriers inside Flower records. A carrier crosses as its exact encoded bytes plus its ledger identity
(kind, byte count, sha256) in one ``ConfigRecord``; the receiver checks the identity, decodes (which
trusts nothing) and records it in its own ledger. Flower is the transport; the carrier stays the unit
that policy checks and ledgers count."""
from __future__ import annotations

import hashlib

from flwr.app import ConfigRecord, RecordDict

from silobridge.boundary import Carrier
from silobridge.boundary.gate import Gate
from silobridge.errors import BoundaryError


def pack(gate: Gate, named: dict[str, Carrier], receiver: str, op: str) -> RecordDict:
    """Send each carrier through ``gate`` (policy, ledger) and wrap its bytes in a Flower record."""
    records = {}
    for name, carrier in named.items():
        entry, payload = gate.send(carrier, receiver, op)
        records[name] = ConfigRecord({"kind": entry.kind, "bytes": entry.bytes, "sha256": entry.sha256,
                                      "payload": payload})
    return RecordDict(records)


def unpack(gate: Gate, content: RecordDict, sender: str, op: str) -> dict[str, Carrier]:
    """The carriers of a Flower record, identity-checked, decoded and recorded by ``gate``."""
    out = {}
    for name, record in content.config_records.items():
        payload = record.get("payload")
        if not isinstance(payload, bytes):
            raise BoundaryError(f"record '{name}' of '{op}' holds no carrier payload", where=f"{gate.name}.{op}",
                                fix="both sides must run the same silobridge version")
        if len(payload) != record.get("bytes") or hashlib.sha256(payload).hexdigest() != record.get("sha256"):
            raise BoundaryError(f"record '{name}' of '{op}' does not match its stated size or sha256",
                                where=f"{gate.name}.{op}", fix="the message was altered in transit; resend it")
        out[name] = gate.receive(payload, sender, op)[1]
    return out
