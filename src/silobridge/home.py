"""Where silobridge keeps its caches (converted models): ``$SILOBRIDGE_HOME`` or ~/.cache/silobridge."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    path = Path(os.environ.get("SILOBRIDGE_HOME", Path.home() / ".cache" / "silobridge"))
    path.mkdir(parents=True, exist_ok=True)
    return path
