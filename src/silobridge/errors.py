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
