"""Ledger: an append-only JSONL record of every boundary crossing."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from silobridge.boundary.carriers import Carrier


@dataclass(frozen=True)
class Entry:
    seq: int
    time: float
    sender: str
    receiver: str
    op: str
    kind: str
    bytes: int
    sha256: str
    epsilon: float | None
    delta: float | None
    exposure: str | None


class Ledger:
    """Keeps entries in memory and, when given a path, appends each one to a JSONL file at once.
    ``append``: continue the file's entries (a party answering each message in a fresh process) instead
    of starting it empty."""

    def __init__(self, path: str | Path | None = None, append: bool = False):
        self.path = Path(path) if path else None
        self.entries: list[Entry] = []
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if append and self.path.exists():
                self.entries = self.read(self.path)
            else:
                self.path.write_text("")

    def record(self, sender: str, receiver: str, op: str, carrier: Carrier, payload: bytes) -> Entry:
        import hashlib

        p = carrier.privacy
        entry = Entry(len(self.entries), time.time(), sender, receiver, op, carrier.kind, len(payload),
                      hashlib.sha256(payload).hexdigest(), p.epsilon if p else None,
                      p.delta if p else None, carrier.exposure)
        self.entries.append(entry)
        if self.path:
            with self.path.open("a") as fh:
                fh.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
        return entry

    def bytes_between(self, sender: str, receiver: str) -> int:
        return sum(e.bytes for e in self.entries if e.sender == sender and e.receiver == receiver)

    @staticmethod
    def read(path: str | Path) -> list[Entry]:
        return [Entry(**json.loads(line)) for line in Path(path).read_text().splitlines() if line]
