"""The transport interface the data party talks through, and the in-process transport."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from silobridge.parties.model_server import ModelServer


class Transport(ABC):
    """Moves encoded carriers to a model-party server and back. Errors raised by the server come
    back as the same typed :class:`~silobridge.errors.SilobridgeError` (class, where, fix)."""

    kind: str = "transport"

    @abstractmethod
    def open(self, payload: bytes) -> bytes:
        """Open a session (``payload``: the encoded 'open' Config carrier); returns the encoded reply."""

    @abstractmethod
    def call(self, session: str, seq: int, op: str, payload: bytes) -> bytes:
        """Call operation ``op`` of ``session``; ``seq`` is the request's ledger sequence number (a retry
        of the same ``seq`` gets the same reply, so calls may be retried safely)."""

    @abstractmethod
    def ledger(self, session: str) -> list[dict]:
        """The model party's ledger of ``session`` (for the entry-by-entry comparison)."""

    @abstractmethod
    def report(self, session: str) -> dict:
        """The model party's report of a closed session (its bill, time and what it revealed)."""

    @abstractmethod
    def audit(self, session: str, request: dict) -> dict:
        """The auditor's measurement on an open session (``ModelServer.audit``): not protocol, not ledgered."""

    def close(self) -> None:
        """Release connections."""


class InProcessTransport(Transport):
    """The model-party server in this process, called directly with the same bytes HTTP would carry."""

    kind = "in-process"

    def __init__(self, server: "ModelServer"):
        self._server = server

    def open(self, payload: bytes) -> bytes:
        return self._server.open(payload)

    def call(self, session: str, seq: int, op: str, payload: bytes) -> bytes:
        return self._server.call(session, seq, op, payload)

    def ledger(self, session: str) -> list[dict]:
        return self._server.ledger(session)

    def report(self, session: str) -> dict:
        return self._server.report(session)

    def audit(self, session: str, request: dict) -> dict:
        return self._server.audit(session, request)
