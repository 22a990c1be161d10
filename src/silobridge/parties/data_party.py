"""The data party: owns private records and SMs. It reaches the model party only through its
:class:`Link`: operations on one session, every carrier through the data party's gate (egress
policy, ledger). The session opens on the first call, so a strategy that never calls the model
party sends nothing at all."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from silobridge import progress
from silobridge.boundary import (Carrier, Config, Ledger, MaxBytes, NoCanary, NoPrivateModel, NoPrivateRecords,
                                 Policy, TextFingerprint, expect)
from silobridge.boundary.gate import Gate
from silobridge.boundary.rows import NoPrivateRows
from silobridge.data.tabular import row_index
from silobridge.data.splits import plant_canaries
from silobridge.data.task import Splits
from silobridge.errors import BoundaryError
from silobridge.home import home
from silobridge.models.sm import build_sm
from silobridge.parties.egress import SanitisingEgress
from silobridge.privacy.sanitize import Sanitiser
from silobridge.rng import PartyRNG
from silobridge.settings import PolicyConfig, SMConfig
from silobridge.transports.base import Transport


class Link:
    """The data party's only view of the model party: a name to call operations on. It holds the
    transport and the gate, never an object of the other party."""

    __slots__ = ("_gate", "_transport", "_hello", "session", "wait_seconds", "closed")

    def __init__(self, gate: Gate, transport: Transport, hello: dict[str, Any]):
        self._gate, self._transport, self._hello = gate, transport, hello
        self.session: str | None = None
        self.wait_seconds = 0.0
        self.closed = False

    @property
    def opened(self) -> bool:
        return self.session is not None

    def _open(self) -> None:
        _, payload = self._gate.send(Config(values=self._hello), "model", "open")
        t0 = time.perf_counter()
        reply = self._transport.open(payload)
        self.wait_seconds += time.perf_counter() - t0
        _, carrier = self._gate.receive(reply, "model", "open.reply")
        sid = expect(carrier, Config).values.get("session")
        if not isinstance(sid, str) or not sid.isalnum():
            raise BoundaryError(f"the model party answered 'open' without a session id ({sid!r})",
                                where="model.open.reply", fix="check that the URL points at a silobridge model party")
        self.session = sid

    def call(self, op: str, carrier: Carrier) -> Carrier:
        if self.session is None:
            self._open()
        entry, payload = self._gate.send(carrier, "model", op)
        t0 = time.perf_counter()
        reply = self._transport.call(self.session, entry.seq, op, payload)
        self.wait_seconds += time.perf_counter() - t0
        return self._gate.receive(reply, "model", op + ".reply")[1]

    def close(self) -> None:
        """End the session, if one was opened."""
        if self.session is not None and not self.closed:
            expect(self.call("close", Config(values={})), Config)
            self.closed = True


class DataParty:
    name = "data"

    def __init__(self, splits: Splits, sm: SMConfig, policy: PolicyConfig, transport: Transport, ledger: Ledger,
                 hello: dict[str, Any], *, declared: frozenset[str] = frozenset(), canaries: int = 0, seed: int = 0,
                 canary_repeats: int = 1,
                 placement: tuple[torch.device, torch.dtype] = (torch.device("cpu"), torch.float32),
                 cache_dir: Path | None = None):
        self.task = splits.task
        self.private, self.secrets = plant_canaries(splits.private, canaries, seed, canary_repeats)
        self.val = splits.val
        self.public = list(splits.public)
        self.seed = seed
        self.cache_dir = cache_dir or home() / "data-cache"  # what this silo keeps across runs (its DP releases)
        self.device, self.dtype = placement  # for the LMs the data party runs itself (an emulator)
        self._sm_config = sm
        self.rng = PartyRNG(seed)
        self.phases: dict[str, float] = {}
        # egress policy: what never leaves this silo, and the exact texts each declared exposure admits
        rows = row_index(self.task)  # a table's records are rows: exact or near-exact copies (boundary.rows)
        self.protected = rows if rows is not None else TextFingerprint(n=policy.ngram)
        self.protected.add(self.private.texts + self.val.texts)
        records_rule = NoPrivateRows if rows is not None else NoPrivateRecords
        self.admitted: dict[str, set[str]] = {"private_records": set()}
        self.admit(self.private.texts, "private_records")
        self.policy = Policy([MaxBytes(policy.max_bytes), NoCanary(self.secrets),
                              records_rule(self.protected, self.admitted), NoPrivateModel()])
        self.gate = Gate(self.name, self.policy, ledger, declared)
        self.sanitiser = None
        if policy.sanitize:
            self.sanitiser = Sanitiser(tuple(policy.sanitize_entities), policy.sanitize_min_score)
            self.gate.transform = SanitisingEgress(self.sanitiser, self.protected, self.admitted, self.name)
        self.model = Link(self.gate, transport, hello)

    def admit(self, texts: list[str], exposure: str) -> None:
        """Texts that arrived (inference inputs) or are set aside (evaluation texts) become protected
        records; a carrier declaring ``exposure`` may send exactly these texts and no other record."""
        self.protected.add(texts)
        self.admitted.setdefault(exposure, set()).update(self.protected.text_digest(t) for t in texts)

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """The data party's own random state and phase timings, around everything it computes."""
        with self.rng.scope(), progress.phases(self.phases):
            yield

    def label_prior(self) -> np.ndarray:
        counts = np.bincount(self.private.labels, minlength=len(self.task.label_names)) + 1.0
        return counts / counts.sum()

    def one_hot(self, labels: np.ndarray) -> np.ndarray:
        return np.eye(len(self.task.label_names))[labels]

    def new_sm(self):
        """A fresh, untrained SM of the configured kind."""
        return build_sm(self._sm_config, len(self.task.label_names), self.seed, self.task.table)
