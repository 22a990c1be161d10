"""Many short scoring requests at the model party: batched across sessions or one at a time.

Starts `silobridge serve` (bundled LM, default dtype) once per batch window, opens CLIENTS sessions of
`lm-zero-shot` over HTTP on loopback (each its own data party), warms each with one call, then every
client sends REQUESTS single-text `score` calls at once, each from its own thread. Prints texts/s and
the per-request latency; and, as the ceiling, the same texts sent by one client in one call.

    .venv/bin/python benchmarks/batching.py [--clients 8] [--requests 12] [--windows 0,5]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time

import httpx

from silobridge.bench.runner import load_splits
from silobridge.boundary import Ledger, TextBatch
from silobridge.configs import from_dict
from silobridge.parties import DataParty
from silobridge.settings import RunConfig
from silobridge.strategies import get
from silobridge.transports.http_client import HttpTransport

sys.path.insert(0, os.path.dirname(__file__))
from transport import free_port, wait_healthy  # noqa: E402


def serve(window_ms: float, key: str, sets: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, SB_BENCH_KEY=key, SILOBRIDGE_PROGRESS="0")
    cmd = [sys.executable, "-m", "silobridge", "serve", "--port", str(port), "--api-key-env", "SB_BENCH_KEY",
           "--batch-window-ms", str(window_ms), "--log-level", "warning"] + [x for s in sets for x in ("--set", s)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc)
    return proc, url


def rounds_of(url: str, key: str) -> int:
    """Forward rounds the service has run for score requests so far."""
    reply = httpx.get(url + "/v1/stats", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    return reply.json()["batching"]["rounds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=12, help="single-text calls per client")
    ap.add_argument("--windows", default="0,5", help="batch windows (ms) to compare")
    ap.add_argument("--set", action="append", default=[], help="service config overrides (lm.dtype=...)")
    args = ap.parse_args()
    cfg = from_dict(RunConfig, {})
    splits = load_splits(cfg)
    hello = {"strategy": "lm-zero-shot", "kind": "classify", "task": dataclasses.asdict(splits.task),
             "params": {}, "seed": 0}
    texts = splits.test.texts[:args.clients * args.requests]
    key = secrets.token_urlsafe(24)
    print(f"{args.clients} clients x {args.requests} single-text score calls, {len(texts)} test reviews, "
          f"bundled LM, service `--set {' '.join(args.set) or '(defaults)'}`\n")
    print("| batch window | texts/s | latency p50 s | latency p95 s | forward rounds |\n|---|---|---|---|---|")
    for window in [float(w) for w in args.windows.split(",")]:
        proc, url = serve(window, key, args.set)
        try:
            parties = [DataParty(splits, cfg.sm, cfg.policy, HttpTransport(url, key), Ledger(), hello,
                                 declared=get("lm-zero-shot").exposes) for _ in range(args.clients)]
            for p in parties:  # open the sessions, load their LM copies, warm up
                p.model.call("score", TextBatch(texts[:1]))
            before = rounds_of(url, key)
            lat: list[float] = []
            start = threading.Barrier(args.clients)

            def client(c: int) -> None:
                start.wait()
                for t in texts[c * args.requests:(c + 1) * args.requests]:
                    t0 = time.perf_counter()
                    parties[c].model.call("score", TextBatch([t]))
                    lat.append(time.perf_counter() - t0)

            threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
            t0 = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            wall = time.perf_counter() - t0
            for p in parties:
                p.model.close()
            rounds = rounds_of(url, key) - before
            q = statistics.quantiles(lat, n=20)
            print(f"| {window:g} ms | {len(texts) / wall:.1f} | {statistics.median(lat):.2f} | {q[18]:.2f} | "
                  f"{rounds} |", flush=True)
            if window == float(args.windows.split(",")[-1]):  # the ceiling: every text in one call
                one = DataParty(splits, cfg.sm, cfg.policy, HttpTransport(url, key), Ledger(), hello,
                                declared=get("lm-zero-shot").exposes)
                one.model.call("score", TextBatch(texts[:1]))
                t0 = time.perf_counter()
                one.model.call("score", TextBatch(texts))
                print(f"| one client, one call of {len(texts)} texts | {len(texts) / (time.perf_counter() - t0):.1f} "
                      f"| – | – | – |")
                one.model.close()
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
