"""Channels carry request/response calls between parties. Every carrier is encoded, checked by the
sender's egress policy, recorded in the ledger, shown to observers and decoded on the other side,
so no Python object is shared across the boundary. HTTP or Flower transports implement the same
:class:`Channel` interface."""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from silobridge.boundary.carriers import Carrier, decode
from silobridge.boundary.ledger import Entry, Ledger
from silobridge.boundary.policy import Outgoing, Policy
from silobridge.errors import BoundaryError

Observer = Callable[[Entry, Carrier], None]


class Endpoint(Protocol):
    """What a party offers the channel: its name, egress policy and a call handler."""

    name: str
    policy: Policy

    def handle(self, op: str, carrier: Carrier) -> Carrier: ...


class Channel(ABC):
    @abstractmethod
    def call(self, sender: str, receiver: str, op: str, carrier: Carrier) -> Carrier:
        """Send ``carrier`` to ``receiver``'s operation ``op`` and return its reply."""


class InProcessChannel(Channel):
    def __init__(self, ledger: Ledger, declared: frozenset[str] = frozenset()):
        self.ledger = ledger
        self.declared = declared
        self.observers: list[Observer] = []
        self.endpoints: dict[str, Endpoint] = {}
        self.busy_seconds: dict[str, float] = defaultdict(float)

    def connect(self, endpoint: Endpoint) -> None:
        self.endpoints[endpoint.name] = endpoint

    def _cross(self, sender: str, receiver: str, op: str, carrier: Carrier) -> Carrier:
        if not isinstance(carrier, Carrier):
            raise BoundaryError(f"{type(carrier).__name__} is not a Carrier", where=f"{sender}->{op}",
                                fix="wrap what crosses in a carrier from silobridge.boundary")
        payload = carrier.encode()
        self.endpoints[sender].policy.check(Outgoing(carrier, payload, sender, receiver, self.declared))
        entry = self.ledger.record(sender, receiver, op, carrier, payload)
        for obs in self.observers:
            obs(entry, carrier)
        return decode(payload)

    def call(self, sender: str, receiver: str, op: str, carrier: Carrier) -> Carrier:
        for name in (sender, receiver):
            if name not in self.endpoints:
                raise BoundaryError(f"no party named '{name}' on this channel", where="channel",
                                    fix=f"connect it first; known: {sorted(self.endpoints)}")
        request = self._cross(sender, receiver, op, carrier)
        t0 = time.perf_counter()
        reply = self.endpoints[receiver].handle(op, request)
        self.busy_seconds[receiver] += time.perf_counter() - t0
        return self._cross(receiver, sender, op + ".reply", reply)


class Remote:
    """A party's only view of another party: a name to call operations on."""

    __slots__ = ("_call",)

    def __init__(self, channel: Channel, me: str, peer: str):
        self._call = lambda op, carrier: channel.call(me, peer, op, carrier)

    def call(self, op: str, carrier: Carrier) -> Carrier:
        return self._call(op, carrier)
