"""Progress bars for long steps (rich); silenced by SILOBRIDGE_PROGRESS=0 or a non-terminal.
Every tracked loop is also timed: :func:`phase_seconds` gives wall seconds per description since
the last :func:`reset_phases` (a run's result carries them, so a slow run says where its time went)."""
from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_PHASES: dict[str, float] = {}


def enabled() -> bool:
    return os.environ.get("SILOBRIDGE_PROGRESS", "1") != "0" and sys.stderr.isatty()


def reset_phases() -> None:
    _PHASES.clear()


def phase_seconds() -> dict[str, float]:
    """Wall seconds per tracked loop (loops with the same description, up to an 'i/n' counter, add up;
    a loop running inside another is counted in both)."""
    return {k: round(v, 3) for k, v in _PHASES.items()}


def track(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    key = re.sub(r"\s*\b\d+/\d+\b", "", desc).strip() or desc  # "DP-SGD epoch 2/3" -> "DP-SGD epoch"
    t0 = time.perf_counter()
    try:
        if not enabled():
            yield from items
            return
        from rich.console import Console
        from rich.progress import track as rich_track

        yield from rich_track(items, description=desc, total=total, console=Console(stderr=True), transient=True)
    finally:
        _PHASES[key] = _PHASES.get(key, 0.0) + time.perf_counter() - t0
