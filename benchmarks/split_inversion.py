"""Split learning (`split`): utility and token recovery from the crossing activations by noise level (issue 15).

For each cut layer and `strategy.noise_std`, one normal `split` run on the bundled reviews, whose auditor
runs the attack (`audit.inversion`; the figures are the result's `report.inversion`). The attacker is the
model party: it owns the bottom blocks it sent (the `bottom.reply` carrier, exactly as it crossed), knows
the clip and the noise level, runs public texts through those blocks and the same release mechanism (its
own noise), fits a linear inverter (ridge least squares, activation -> token id) and applies it to the
activations of the test texts that crossed for inference; at cut 0 it also maps each activation to the
nearest embedding row (cosine). Recovery is the share of the test texts' real token positions
whose id is recovered exactly; chance is always guessing the most frequent public token. ε is per example,
per release (analytic Gaussian mechanism, sensitivity 2·clip, σ = noise_std·clip, δ = strategy.delta):
not a training guarantee.

Small sizes by default; the CPU is shared, so keep it small (or pass --set data.n_private=400 ... to scale):

    .venv/bin/python benchmarks/split_inversion.py --cuts 0,2 --noise 0,0.1,0.5,1.0 --out runs/split-inversion
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from silobridge.bench.runner import run
from silobridge.configs import apply_overrides, from_dict
from silobridge.settings import RunConfig

SMALL = ["data.n_private=64", "data.n_val=16", "data.n_public=64", "data.n_test=48", "data.n_lm_eval=0",
         "lm.dtype=float32", "audit.mia=false"]


def one(cfg: RunConfig, out: Path) -> dict:
    """One split run; its auditor's inversion of the test texts' crossing activations (``report.inversion``)."""
    t0 = time.perf_counter()
    result = run("split", cfg, out)
    run_s = time.perf_counter() - t0
    s = result["config"]["strategy"]
    u, r = result["objectives"]["utility"], result["report"]
    c = result["objectives"]["communication"]
    return {"cut_layer": s["cut_layer"], "noise_std": s["noise_std"], "clip": s["clip"],
            "epsilon_per_example_per_release": r["per_example_per_release"]["epsilon"],
            "accuracy": u["accuracy"], "macro_f1": u["macro_f1"], "majority_baseline": u.get("majority_baseline"),
            "bytes": c["bytes_data_to_model"] + c["bytes_model_to_data"], "lm_param_share": r["lm_param_share"],
            "clipped_share": r["clipped_share"], "activation_norm_median": r["activation_norm_median"],
            "attack": r["inversion"], "run_seconds": round(run_s, 1),
            "attack_seconds": result["objectives"]["compute"]["audit_seconds"]}


def show(x, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuts", default="0,2", help="strategy.cut_layer values")
    ap.add_argument("--noise", default="0,0.1,0.5,1.0", help="strategy.noise_std values")
    ap.add_argument("--attack-texts", type=int, default=64, help="public texts the attacker fits its inverter on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/split-inversion")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides (after the small defaults)")
    args = ap.parse_args()
    out = Path(args.out)
    rows = []
    for cut in [int(x) for x in args.cuts.split(",")]:
        for noise in [float(x) for x in args.noise.split(",")]:
            cfg = from_dict(RunConfig, apply_overrides({}, SMALL + [
                f"seed={args.seed}", f"strategy.cut_layer={cut}", f"strategy.noise_std={noise}",
                f"audit.inversion_texts={args.attack_texts}", *args.set]))
            row = one(cfg, out / f"cut{cut}-noise{noise}")
            print(json.dumps(row), flush=True)
            rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    (out / "split_inversion.json").write_text(json.dumps(rows, indent=1))
    print("\n| cut | noise_std | ε / example / release | accuracy | macro-F1 | linear recovery | nearest-embedding "
          "recovery | chance | MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a = r["attack"]
        print(f"| {r['cut_layer']} | {r['noise_std']:g} | {show(r['epsilon_per_example_per_release'], '.3g')} "
              f"| {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {a['linear_recovery']:.3f} "
              f"| {show(a['nearest_embedding_recovery'], '.3f')} | {a['chance']:.3f} | {r['bytes'] / 1e6:.1f} |")


if __name__ == "__main__":
    main()
