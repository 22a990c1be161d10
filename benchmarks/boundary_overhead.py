"""What does the boundary cost? Channel + policy + ledger (+ audit) versus calling the same handler
directly, for the messages the slice really sends; and, with --slice, the wall time of each strategy
of the slice on the defaults (read from a finished `silobridge bench` directory).

    .venv/bin/python benchmarks/boundary_overhead.py [--slice runs/demo]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from silobridge.bench.audit import Auditor
from silobridge.boundary.gate import Gate
from silobridge.boundary import (Ledger, MaxBytes, NoCanary, NoModelWeights, NoPrivateRecords,
                                 Policy, SoftLabels, TextBatch, TextFingerprint)
from silobridge.data import load_reviews


def crossing(data: Gate, model: Gate, op: str, batch):
    """What one call costs at the boundary: both parties' gates, as any transport runs them."""
    _, payload = data.send(batch, "model", op)
    _, received = model.receive(payload, "data", op)
    _, out = model.send(handler(received), "data", op + ".reply")
    return data.receive(out, "model", op + ".reply")[1]


def handler(carrier: TextBatch) -> SoftLabels:
    """Stands in for the LM: a reply of the right size, computed in ~no time."""
    return SoftLabels(values=np.zeros((len(carrier.items), 2), np.float32), label_names=["great", "other"])


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slice", help="a finished bench directory (e.g. runs/demo) to report wall times from")
    args = ap.parse_args()
    _, pool, test = load_reviews()
    private = pool.texts[:500]
    fp = TextFingerprint(10)
    fp.add(private + test.texts)
    public = [t for t in pool.texts[1000:] if not fp.hits(t)][:1000]  # as make_splits does
    near = sum(bool(fp.hits(t)) for t in pool.texts[1000:2000])
    print(f"{near} of 1,000 candidate public texts share a 10-word span with 500 private + 1,000 test records "
          "(near-duplicates in the data set): dropped from the public pool")
    with tempfile.TemporaryDirectory() as tmp:
        data = Gate("data", Policy([MaxBytes(64 << 20), NoCanary(["ZK2M-8XBR-4F7Q"] * 5), NoPrivateRecords(fp)]),
                    Ledger(Path(tmp) / "ledger.jsonl"))
        model = Gate("model", Policy([MaxBytes(64 << 20), NoModelWeights(lambda: [])]), Ledger(Path(tmp) / "m.jsonl"))
        data.observers.append(Auditor(["ZK2M-8XBR-4F7Q"] * 5, private + test.texts, 10))
        batch = TextBatch(public, purpose="public pool")
        direct = best_of(lambda: handler(batch))
        crossed = best_of(lambda: crossing(data, model, "score", batch))
        n_bytes = sum(e.bytes for e in data.ledger.entries[-2:])
    print(f"distill-public message (1,000 public texts -> 1,000x2 soft labels, {n_bytes:,} bytes both ways)")
    print(f"  direct call            {direct * 1e3:8.2f} ms")
    print(f"  through the boundary   {crossed * 1e3:8.2f} ms  (both gates: encode, policy, ledgers, audit, decode)")
    print(f"  overhead               {(crossed - direct) * 1e3:8.2f} ms = "
          f"{(crossed - direct) / 1000 * 1e6:.1f} us per text")
    if args.slice:
        print(f"\nslice wall times from {args.slice} (seconds; data party / model party):")
        for line in (Path(args.slice) / "results.jsonl").read_text().splitlines():
            r = json.loads(line)
            c = r["objectives"]["compute"]
            total = c["data_party_seconds"] + c["model_party_seconds"]
            print(f"  {r['strategy']:16} seed {r['seed']}: {total:7.1f}  ({c['data_party_seconds']:.1f} / "
                  f"{c['model_party_seconds']:.1f}), peak RSS {c['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
