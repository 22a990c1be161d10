"""The privacy and model-leakage columns of every run under one or more result directories (issue 15), one
row per (task kind, strategy): ε of the training records as the score counts it (0: nothing computed from them
crossed; ∞: something did without DP), canary hits in the traffic, the deployed LM's canary exposure (largest over
the canaries, bits), membership inference on the deployed SM (AUC, TPR at 1 % FPR), the emulator's next-token
agreement with the LM and the deployed SM's label agreement with it, the share of the test texts' tokens the
model party recovers from split learning's activations; mean ± sd over the seeds found.
"–": the attack does not apply (or the run predates it). Reads `result.json` files only.

    .venv/bin/python benchmarks/privacy_table.py benchmarks/results/dtype/bfloat16 [more dirs]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from silobridge.bench.score import epsilon_of, variant


def fmt(xs, spec=".2f") -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    if any(x == float("inf") for x in xs):
        return "∞"
    return format(statistics.mean(xs), spec) + (f" ± {format(statistics.stdev(xs), spec)}" if len(xs) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path)
    args = ap.parse_args()
    runs: dict[tuple[str, str], list[dict]] = {}
    for d in args.dirs:
        for p in sorted(d.glob("**/result.json")):
            r = json.loads(p.read_text())
            runs.setdefault((r.get("task_kind", "classify"), variant(r)), []).append(r)
    print("| task | strategy | runs | ε | canary hits | canary exposure max (bits) | MIA AUC | MIA TPR @ 1 % FPR "
          "| emulator next-token agreement | SM label agreement with the LM | token recovery | audit s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (kind, name), rs in sorted(runs.items()):
        p = [r["objectives"]["privacy"] for r in rs]
        m = [r["objectives"].get("model_leakage", {}) for r in rs]
        print(f"| {kind} | {name} | {len(rs)} | {fmt([epsilon_of(r) for r in rs])} | "
              f"{fmt([q.get('canary_hits') for q in p], '.0f')} | {fmt([q.get('canary_exposure') for q in p])} | "
              f"{fmt([q.get('mia_auc') for q in p], '.3f')} | {fmt([q.get('mia_tpr_at_1pct_fpr') for q in p])} | "
              f"{fmt([x.get('extraction_agreement') for x in m], '.3f')} | "
              f"{fmt([x.get('extraction_label_agreement') for x in m], '.3f')} | "
              f"{fmt([q.get('token_recovery') for q in p], '.3f')} | "
              f"{fmt([r['objectives']['compute'].get('audit_seconds') for r in rs], '.0f')} |")


if __name__ == "__main__":
    main()
