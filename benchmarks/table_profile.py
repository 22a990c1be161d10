"""Where a strategy table's time goes: wall seconds per run and `compute.phase_seconds` summed over
the runs of a `benchmarks/strategy_table.py` output directory, per seed (both task kinds).

    .venv/bin/python benchmarks/table_profile.py runs/table3 [runs/other ...]
"""
from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path


def load(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("**/result.json"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=15, help="phases to list")
    args = ap.parse_args()
    for root in args.dirs:
        runs = load(root)
        seeds = sorted({r["seed"] for r in runs})
        print(f"\n## {root} ({len(runs)} runs, seeds {seeds})\n")
        print("| kind | strategy | seed | wall s | largest phases (s) |\n|---|---|---|---|---|")
        phases: dict[str, float] = defaultdict(float)
        for r in sorted(runs, key=lambda r: (r["seed"], r["config"]["task"], r["strategy"])):
            c = r["objectives"]["compute"]
            ps = c.get("phase_seconds", {})
            for k, v in ps.items():
                phases[re.sub(r" epoch \d+/\d+", "", k)] += v
            top = ", ".join(f"{k} {v:.0f}" for k, v in sorted(ps.items(), key=lambda kv: -kv[1])[:4])
            print(f"| {r['config']['task']} | {r['strategy']} | {r['seed']} | {c.get('wall_seconds', 0):.0f} | {top} |")
        total = sum(r["objectives"]["compute"].get("wall_seconds", 0) for r in runs)
        print(f"\nwall seconds of all runs: {total:,.0f} ({total / 60 / max(len(seeds), 1):.1f} min per seed)\n")
        print("| phase (all runs) | s | share of wall |\n|---|---|---|")
        for k, v in sorted(phases.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"| {k} | {v:.0f} | {v / max(total, 1):.0%} |")


if __name__ == "__main__":
    main()
