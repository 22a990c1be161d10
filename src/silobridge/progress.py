"""Progress bars for long steps (rich); silenced by SILOBRIDGE_PROGRESS=0 or a non-terminal.
Every tracked loop is also timed, into the phase table of the party doing the work: each party
(data side, each model-party session) runs its work inside :func:`phases` with its own table, so
the two parties' timings stay apart even when they share a process. :func:`phase_seconds` reads the
current table (a run's result carries both parties' tables, so a slow run says where its time went)."""
from __future__ import annotations

import contextlib
import contextvars
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DEFAULT: dict[str, float] = {}
_CURRENT: contextvars.ContextVar[dict[str, float]] = contextvars.ContextVar("silobridge_phases", default=_DEFAULT)


def enabled() -> bool:
    return os.environ.get("SILOBRIDGE_PROGRESS", "1") != "0" and sys.stderr.isatty()


@contextlib.contextmanager
def phases(table: dict[str, float]) -> Iterator[dict[str, float]]:
    """Record tracked loops into ``table`` (a party's own) while the block runs."""
    token = _CURRENT.set(table)
    try:
        yield table
    finally:
        _CURRENT.reset(token)


def reset_phases() -> None:
    _CURRENT.get().clear()


def phase_seconds(table: dict[str, float] | None = None) -> dict[str, float]:
    """Wall seconds per tracked loop (loops with the same description, up to an 'i/n' counter, add up;
    a loop running inside another is counted in both)."""
    return {k: round(v, 3) for k, v in (_CURRENT.get() if table is None else table).items()}


def track(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    key = re.sub(r"\s*\b\d+/\d+\b", "", desc).strip() or desc  # "DP-SGD epoch 2/3" -> "DP-SGD epoch"
    table = _CURRENT.get()
    t0 = time.perf_counter()
    try:
        if not enabled():
            yield from items
            return
        from rich.console import Console
        from rich.progress import track as rich_track

        yield from rich_track(items, description=desc, total=total, console=Console(stderr=True), transient=True)
    finally:
        table[key] = table.get(key, 0.0) + time.perf_counter() - t0
