"""Typed error hierarchy. Every error names the input at fault and how to fix it."""
from __future__ import annotations


class SilobridgeError(Exception):
    """Base class: ``what`` went wrong with ``where`` (the input), and ``fix``."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        parts = [f"{where}: {what}" if where else what]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__("\n".join(parts))


class ConfigError(SilobridgeError):
    """A configuration value, file or override is invalid."""


class DataError(SilobridgeError):
    """A dataset file or column is missing, empty or malformed."""


class ModelError(SilobridgeError):
    """A model path or checkpoint cannot be loaded or does not fit the task."""


class UnknownStrategyError(ConfigError):
    """The named strategy is not registered."""


class PolicyViolation(SilobridgeError):
    """A carrier was refused at the silo boundary by a policy rule."""

    def __init__(self, rule: str, what: str, *, sender: str, receiver: str, kind: str, fix: str):
        self.rule = rule
        super().__init__(
            f"refused {kind} carrier {sender} -> {receiver} by rule '{rule}': {what}",
            where="boundary", fix=fix,
        )


class BoundaryError(SilobridgeError):
    """A call across the boundary is malformed (unknown party or operation, bad carrier)."""


class RemoteError(SilobridgeError):
    """An operation crashed inside the other party (not a policy or input error)."""


class AuthError(BoundaryError):
    """The model-party service refused the API key (missing or wrong)."""


ERROR_TYPES: dict[str, type[SilobridgeError]] = {
    cls.__name__: cls for cls in (SilobridgeError, ConfigError, DataError, ModelError, UnknownStrategyError,
                                  PolicyViolation, BoundaryError, RemoteError, AuthError)}


def to_wire(exc: SilobridgeError) -> dict:
    """A typed error as JSON, to send to the other party."""
    out = {"type": type(exc).__name__, "what": exc.what, "where": exc.where, "fix": exc.fix}
    if isinstance(exc, PolicyViolation):
        out["rule"] = exc.rule
    return out


def from_wire(body: dict) -> SilobridgeError:
    """The same typed error, rebuilt on this side (same class, ``what``, ``where`` and ``fix``)."""
    cls = ERROR_TYPES.get(str(body.get("type")), RemoteError)
    exc = cls.__new__(cls)
    SilobridgeError.__init__(exc, str(body.get("what", "unknown error")), where=body.get("where"), fix=body.get("fix"))
    if isinstance(exc, PolicyViolation):
        exc.rule = str(body.get("rule", ""))
    return exc
