"""PII sanitisation, measured (issue 15): synthetic names, e-mail addresses, phone numbers and Luhn-valid
card numbers planted at known positions in real host texts (the bundled reviews' public pool), then
Presidio (offline) at several score thresholds: the share of planted values fully masked per type, what
it masks on the same texts without planted PII (the reviews name actors and directors: real PERSON
entities, counted here as masks on clean text), and its speed. With --utility, the cost in utility of
sanitising everything the data party sends (`policy.sanitize=true`) for the strategies named, against
the same runs without it (each a normal resumable `silobridge bench` run under OUT/{plain,sanitised}).

    .venv/bin/python benchmarks/sanitisation.py --hosts 300 --out runs/sanitisation \\
        [--utility lm-zero-shot,distill-public --seeds 0]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from pathlib import Path

from silobridge.bench.runner import load_splits
from silobridge.bench.suite import bench
from silobridge.configs import apply_overrides, from_dict
from silobridge.privacy.pii import TYPES, plant, recall
from silobridge.privacy.sanitize import analyse, mask
from silobridge.settings import RunConfig

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.85)


def detection(hosts: list[str], seed: int) -> dict:
    planted_texts, planted = plant(hosts, seed=seed)
    analyse(hosts[:1])  # load the engines outside the timing
    t0 = time.perf_counter()
    found_planted = analyse(planted_texts)
    per_text = (time.perf_counter() - t0) / len(planted_texts)
    found_clean = analyse(hosts)
    rows = []
    for th in THRESHOLDS:
        rec = recall(hosts, mask(planted_texts, found_planted, th).texts, planted)
        clean = mask(hosts, found_clean, th)
        rows.append({"min_score": th, "recall": rec, "clean_masks_per_100": {
            k: 100 * v / len(hosts) for k, v in sorted(clean.entities.items())},
            "clean_texts_changed": clean.changed / len(hosts)})
    return {"hosts": len(hosts), "planted": len(planted), "seconds_per_text": per_text, "thresholds": rows}


def print_detection(d: dict) -> None:
    print(f"\n{d['hosts']} host texts, {d['planted']} planted values ({len(TYPES)} per text); "
          f"Presidio {1000 * d['seconds_per_text']:.0f} ms per text (planted)\n")
    print("| min score | " + " | ".join(f"{t} masked (partly)" for t in TYPES)
          + " | clean texts changed | masks per 100 clean texts |")
    print("|---|" + "---|" * (len(TYPES) + 2))
    for r in d["thresholds"]:
        cells = [f"{r['recall'][t]['masked']:.2f} ({r['recall'][t]['partly']:.2f})" for t in TYPES]
        top = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["clean_masks_per_100"].items(), key=lambda kv: -kv[1])[:4])
        print(f"| {r['min_score']} | " + " | ".join(cells) + f" | {r['clean_texts_changed']:.2f} | {top} |")


def utility(strategies: list[str], seeds: list[int], sets: list[str], out: Path) -> None:
    rows = {}
    for label, extra in (("plain", []), ("sanitised", ["policy.sanitize=true"])):
        cfg = from_dict(RunConfig, apply_overrides({}, ["lm.cache=true", *sets, *extra]))
        results, failed = bench(strategies, seeds, cfg, out / label, lambda k, n, s, d: print(f"  {label} {n} {s} {d}"))
        if failed:
            print("failed:", failed)
        for r in results:
            rows.setdefault((r["strategy"], label), []).append(r)
    print("\n| strategy | sanitised | runs | acc | macro-F1 | AUC | PII masked | texts changed | sanitiser s "
          "| wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (name, label), rs in sorted(rows.items()):
        u = [r["objectives"]["utility"] for r in rs]
        s = [r["report"].get("sanitisation", {}) for r in rs]

        def m(xs, spec=".3f"):
            return format(statistics.mean(xs), spec) if xs else "–"
        print(f"| {name} | {label} | {len(rs)} | {m([x['accuracy'] for x in u])} | {m([x['macro_f1'] for x in u])} | "
              f"{m([x['auc'] for x in u])} | {m([x['entities_masked'] for x in s if x], ',.0f')} | "
              f"{m([x['texts_changed'] for x in s if x], ',.0f')} | {m([x['seconds'] for x in s if x], '.0f')} | "
              f"{m([r['objectives']['compute']['wall_seconds'] for r in rs], '.0f')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=300, help="host texts from the public pool")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/sanitisation")
    ap.add_argument("--utility", default="", help="comma list of strategies to run with and without sanitisation")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = from_dict(RunConfig, apply_overrides({}, [f"seed={args.seed}", *args.set]))
    hosts = load_splits(cfg).public[:args.hosts]
    d = detection(hosts, args.seed)
    (out / "detection.json").write_text(json.dumps(d, indent=2) + "\n")
    print_detection(d)
    if args.utility:
        utility(args.utility.split(","), [int(s) for s in args.seeds.split(",")], args.set, out)


if __name__ == "__main__":

    main()
