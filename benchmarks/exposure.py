"""Canary exposure of the LMs the model party deploys (issue 15), domain-lm: the LM alone (`lm-zero-shot`, what
chance looks like), the positive control that ships the private records (`lm-finetune-private`), the leakiest
SM -> LM path (`offsite-tuning`: adapters trained on the records) and its DP twin (`dp-offsite-tuning`), with each
canary planted in 1 and in R private records (`data.canary_repeats`; the Secret Sharer's insertions). Each run
is a normal resumable `silobridge bench` run under OUT/repeats<R>/; the table gives, per strategy and insertion
count, the largest and mean exposure over the canaries (measurable up to log2 of the candidates, 10 bits with
1,000 references), the largest skew-normal extrapolation (up to 60 bits), perplexity and ε.

    .venv/bin/python benchmarks/exposure.py --repeats 1,10 --seeds 0 --out runs/exposure
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from silobridge.bench.suite import bench
from silobridge.configs import apply_overrides, from_dict
from silobridge.settings import RunConfig

STRATEGIES = ["lm-zero-shot", "lm-finetune-private", "offsite-tuning", "dp-offsite-tuning"]


def fmt(xs, spec=".2f") -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return format(statistics.mean(xs), spec) + (f" ± {format(statistics.stdev(xs), spec)}" if len(xs) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", default="1,10", help="insertions per canary to compare")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", default="runs/exposure")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for r in [int(x) for x in args.repeats.split(",")]:
        cfg = from_dict(RunConfig, apply_overrides({}, ["task=domain-lm", "lm.cache=true", f"data.canary_repeats={r}",
                                                        *args.set]))
        results, failed = bench(args.strategies.split(","), seeds, cfg, Path(args.out) / f"repeats{r}",
                                lambda k, n, s, d: print(f"  repeats {r}: {k} {n} seed {s} {d}", flush=True))
        if failed:
            print("failed:", failed)
        for name in args.strategies.split(","):
            rs = [x for x in results if x["strategy"] == name]
            if not rs:
                continue
            ce = [x["report"].get("canary_exposure", {}).get("lms", {}).get("deployed", {}) for x in rs]
            p = [x["objectives"]["privacy"] for x in rs]
            rows.append((name, r, len(rs), fmt([c.get("max") for c in ce]), fmt([c.get("mean") for c in ce]),
                         fmt([c.get("extrapolated_max") for c in ce], ".1f"),
                         fmt([x["objectives"]["utility"].get("perplexity") for x in rs], ".1f"),
                         fmt([q.get("epsilon") for q in p]),
                         fmt([x["objectives"]["compute"].get("audit_seconds") for x in rs], ".0f")))
    print("\n| strategy | insertions per canary | runs | exposure max (bits) | exposure mean | extrapolated max "
          "| perplexity | ε | audit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
