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


STATUS_ENV = "SILOBRIDGE_STATUS_FILE"  # set by `bench` for each run it starts: the run's live status goes there


def _status(items: Iterable[T], desc: str, total: int | None, path: str) -> Iterator[T]:
    """Yield ``items``, writing 'desc<TAB>done<TAB>total<TAB>items/s' to ``path`` at most twice a second."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    t0 = last = time.perf_counter()
    for i, item in enumerate(items, 1):
        yield item
        now = time.perf_counter()
        if now - last >= 0.5 or i == total:
            last = now
            tmp = f"{path}.tmp"
            try:
                with open(tmp, "w") as fh:
                    fh.write(f"{desc}\t{i}\t{total or ''}\t{i / max(now - t0, 1e-9):.2f}")
                os.replace(tmp, path)
            except OSError:  # a status line is a courtesy: never fail a run for it
                pass


def track(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    key = re.sub(r"\s*\b\d+/\d+\b", "", desc).strip() or desc  # "DP-SGD epoch 2/3" -> "DP-SGD epoch"
    table = _CURRENT.get()
    t0 = time.perf_counter()
    status = os.environ.get(STATUS_ENV)
    if status:
        items = _status(items, desc, total, status)
    try:
        if not enabled():
            yield from items
            return
        from rich.console import Console
        from rich.progress import track as rich_track

        yield from rich_track(items, description=desc, total=total, console=Console(stderr=True), transient=True)
    finally:
        table[key] = table.get(key, 0.0) + time.perf_counter() - t0


def read_status(path) -> str | None:
    """A run's live status line, as `bench` shows it: 'LM scoring 120/1000, 9.8/s'."""
    try:
        desc, done, total, rate = open(path).read().split("\t")
    except (OSError, ValueError):
        return None
    return f"{desc} {done}{'/' + total if total else ''}, {float(rate):.1f}/s"
