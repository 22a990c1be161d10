"""Run several strategies x seeds, each in its own process (clean timing and peak memory), skip runs
already finished with the same config (resume), and collect ``results.jsonl``."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from silobridge import progress
from silobridge.bench.runner import RESULT, config_digest
from silobridge.configs import from_dict, to_dict
from silobridge.errors import ConfigError, SilobridgeError
from silobridge.settings import RunConfig
from silobridge.strategies import get
from silobridge.strategies.base import check_kind


def strategy_options(name: str, shared: dict[str, Any]) -> dict[str, Any]:
    """The subset of bench-wide strategy options that this strategy's config knows."""
    fields = {f.name for f in dataclasses.fields(get(name).Config)}
    return {k: v for k, v in shared.items() if k in fields}


def resolved(name: str, cfg: RunConfig) -> dict[str, Any]:
    scfg = from_dict(get(name).Config, cfg.strategy, prefix="strategy.")
    return to_dict(cfg) | {"strategy": to_dict(scfg)}


def same_run(prev: dict[str, Any], name: str, digest: str) -> bool:
    """Whether a finished result is the run ``digest`` names. A result written before options were
    added still counts when those options' defaults reproduce it (its config, read back, resolves to
    the same digest)."""
    if prev.get("config_digest") == digest:
        return True
    try:
        old = from_dict(RunConfig, prev.get("config", {}))
        return config_digest(name, resolved(name, old)) == digest
    except SilobridgeError:  # an option since removed or renamed: not the same run
        return False


def bench(strategies: list[str], seeds: list[int], cfg: RunConfig, out: Path,
          on_event: Callable[[str, str, int, str], None] = lambda *a: None,
          run_args: list[str] | None = None, live: bool = False) -> tuple[list[dict], list[str]]:
    """Returns (results, failures). ``on_event(kind, strategy, seed, detail)`` reports progress (kinds:
    skip, start, done, fail; with ``live`` also 'progress': the running phase, items done and items/s, at
    most twice a second); ``run_args`` are passed on to each ``silobridge run`` (e.g. the model party's URL)."""
    for name in strategies:
        check_kind(get(name), cfg.task)  # unknown names, or a strategy that cannot run the task, fail before any work
    unknown = set(cfg.strategy) - {k for n in strategies for k in strategy_options(n, cfg.strategy)}
    if unknown:
        raise ConfigError(f"no chosen strategy has option(s) {sorted(unknown)}", where="--set strategy.*",
                          fix="see `silobridge config STRATEGY` for each strategy's options")
    out.mkdir(parents=True, exist_ok=True)
    results, failures = [], []
    for name in strategies:
        for seed in seeds:
            run_cfg = dataclasses.replace(cfg, seed=seed, strategy=strategy_options(name, cfg.strategy))
            run_dir = out / name / f"seed{seed}"
            digest = config_digest(name, resolved(name, run_cfg))
            done = run_dir / RESULT
            if done.exists():
                prev = json.loads(done.read_text())
                if not same_run(prev, name, digest):
                    raise ConfigError(f"{done} holds a finished run with a different config",
                                      where="--out", fix="use a new --out directory (results are never overwritten)")
                on_event("skip", name, seed, "finished earlier")
                results.append(prev)
                continue
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(json.dumps(to_dict(run_cfg), indent=2))
            on_event("start", name, seed, str(run_dir))
            returncode, stderr = _run_child(name, seed, run_dir, run_args, on_event if live else None)
            if returncode != 0 or not done.exists():
                tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
                failures.append(f"{name} seed {seed}: {tail}")
                on_event("fail", name, seed, tail)
                continue
            results.append(json.loads(done.read_text()))
            on_event("done", name, seed, "")
    with (out / "results.jsonl").open("w") as fh:
        for r in results:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    return results, failures


def _run_child(name: str, seed: int, run_dir: Path, run_args: list[str] | None,
               on_event: Callable[[str, str, int, str], None] | None) -> tuple[int, str]:
    """`silobridge run` in its own process; its live status is passed on as 'progress' events."""
    status = run_dir / "status.txt"
    status.unlink(missing_ok=True)
    with (run_dir / "log.txt").open("w") as log, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "silobridge", "run", name, "--config",
                                 str(run_dir / "config.json"), "--out", str(run_dir), *(run_args or [])],
                                stdout=log, stderr=err, text=True,
                                env=dict(os.environ, **{progress.STATUS_ENV: str(status)}))
        shown = None
        while proc.poll() is None:
            time.sleep(0.5)
            line = progress.read_status(status)
            if on_event and line and line != shown:
                shown = line
                on_event("progress", name, seed, line)
        err.seek(0)
        stderr = err.read()
        log.write(stderr)
    status.unlink(missing_ok=True)
    return proc.returncode, stderr
