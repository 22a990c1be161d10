"""Where does the LM's knowledge pay? sm-only vs distill-public across private label budgets.

Each (budget, strategy, seed) is a normal `silobridge bench` run (resumable) under OUT/budget<N>/;
lm-zero-shot is the budget-free reference. The LM score cache is on, so the public pool and the test
texts are scored once per text (compute figures of these runs therefore exclude cached LM work; the
demo's runs report uncached costs). Prints mean ± std over seeds.

    .venv/bin/python benchmarks/label_budget.py --seeds 0,1,2 --budgets 25,50,100,400 --out runs/sweep
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from silobridge.bench.suite import bench
from silobridge.configs import apply_overrides, from_dict
from silobridge.settings import RunConfig


def fmt(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budgets", default="25,50,100,400")
    ap.add_argument("--sm", default="tfidf", help="tfidf or encoder")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    ap.add_argument("--out", default="runs/sweep")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [int(b) for b in args.budgets.split(",")]
    out = Path(args.out)

    def log(kind: str, name: str, seed: int, detail: str) -> None:
        print(f"  {kind:5} {name} seed {seed} {detail}", flush=True)

    rows: dict[tuple[str, int | None], list[dict]] = {}
    base = ["lm.cache=true", f"sm.kind={args.sm}", *args.set]
    for n in budgets:
        cfg = from_dict(RunConfig, apply_overrides({}, base + [f"data.n_private={n}"]))
        print(f"budget {n}", flush=True)
        results, failures = bench(["sm-only", "distill-public"], seeds, cfg, out / f"{args.sm}-budget{n}", log)
        if failures:
            raise SystemExit("failed: " + "; ".join(failures))
        for r in results:
            rows.setdefault((r["strategy"], n), []).append(r)
    cfg = from_dict(RunConfig, apply_overrides({}, base))
    results, _ = bench(["lm-zero-shot"], seeds, cfg, out / "zero-shot", log)
    rows[("lm-zero-shot", None)] = results

    print(f"\nSM = {args.sm}; {len(seeds)} seeds; test n = {cfg.data.n_test}; "
          f"majority = {results[0]['objectives']['utility']['majority_baseline']:.3f}")
    print(f"{'strategy':16} {'labels':>6}  {'accuracy':>15}  {'macro-F1':>15}  {'AUC':>15}")
    for (name, n), rs in sorted(rows.items(), key=lambda kv: (kv[0][1] or 0, kv[0][0])):
        u = [r["objectives"]["utility"] for r in rs]
        print(f"{name:16} {n if n is not None else '-':>6}  {fmt([x['accuracy'] for x in u]):>15}  "
              f"{fmt([x['macro_f1'] for x in u]):>15}  {fmt([x['auc'] for x in u]):>15}")


if __name__ == "__main__":
    main()
