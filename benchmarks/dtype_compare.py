"""float32 vs bfloat16, strategy by strategy: reads two `benchmarks/strategy_table.py` output directories
(the same seeds and settings, one run with `--set lm.dtype=float32`, one with `--set lm.dtype=bfloat16`)
and prints each utility metric per dtype (mean ± sd over seeds), the mean paired difference (bf16 − fp32,
same seed) and whether it is within the seed-to-seed spread (the larger of the two sds).

    .venv/bin/python benchmarks/dtype_compare.py runs/table-float32 runs/table-bfloat16
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

METRICS = {"classify": ("accuracy", "macro_f1", "auc"), "domain-lm": ("perplexity", "next_token_accuracy")}


def load(root: Path) -> dict[tuple[str, str, int], dict]:
    out = {}
    for p in root.glob("**/result.json"):
        r = json.loads(p.read_text())
        name = r["strategy"] + (" (encoder SM)" if r["config"]["sm"]["kind"] == "encoder" else "")
        out[(r["config"]["task"], name, r["seed"])] = r
    return out


def ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f}" + (f" ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("float32", type=Path)
    ap.add_argument("bfloat16", type=Path)
    args = ap.parse_args()
    f32, b16 = load(args.float32), load(args.bfloat16)
    pairs = sorted(set(f32) & set(b16))
    print("| task | strategy | metric | seeds | float32 | bfloat16 | bf16 − fp32 (paired) | seed sd | within |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task, name in sorted({(t, n) for t, n, _ in pairs}):
        seeds = [s for t, n, s in pairs if (t, n) == (task, name)]
        for metric in METRICS[task]:
            a = [f32[(task, name, s)]["objectives"]["utility"].get(metric) for s in seeds]
            b = [b16[(task, name, s)]["objectives"]["utility"].get(metric) for s in seeds]
            if None in a or None in b:
                continue
            diff = statistics.mean(y - x for x, y in zip(a, b))
            sd = max(statistics.stdev(a), statistics.stdev(b)) if len(seeds) > 1 else None
            within = "–" if sd is None else ("yes" if abs(diff) <= sd else "**no**")
            print(f"| {task} | {name} | {metric} | {len(seeds)} | {ms(a)} | {ms(b)} | {diff:+.3f} | "
                  f"{'–' if sd is None else f'{sd:.3f}'} | {within} |")


if __name__ == "__main__":
    main()
