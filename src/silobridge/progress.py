"""Progress bars for long steps (rich); silenced by SILOBRIDGE_PROGRESS=0 or a non-terminal."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    return os.environ.get("SILOBRIDGE_PROGRESS", "1") != "0" and sys.stderr.isatty()


def track(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    if not enabled():
        yield from items
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(items, description=desc, total=total, console=Console(stderr=True), transient=True)
