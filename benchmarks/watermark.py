"""Watermarking, measured (issue 15): the bundled LM writes the texts `synthetic` asks for (its prompts, its
sampling settings), without a watermark and with a green-list watermark at several biases; the LM owner's
detector then scores them, and human text (the public pool's reviews), over each text's first 8, 16
and 32 tokens and whole (synthetic asks for at most 60). Reported: mean z, the detection rate at z >= 4
(a one-sided false-positive rate of 3.2e-5 under the no-key null) and at z >= 2.33 (1 %), the measured
false-positive rates on plain LM text and on human text, and the text-quality cost as the perplexity of
each set under the plain LM. With --utility, `synthetic` runs with and without `lm.watermark` (each a
normal resumable `silobridge bench` run under OUT/{plain,watermarked}) give the utility cost for the SM
trained on watermarked synthetic data.

    .venv/bin/python benchmarks/watermark.py --texts 96 --out runs/watermark [--utility --seeds 0]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

from silobridge.bench.runner import load_splits
from silobridge.bench.suite import bench
from silobridge.configs import apply_overrides, from_dict
from silobridge.models.causal import perplexity
from silobridge.models.generate import generate
from silobridge.models.lm import build_prompt, load_lm
from silobridge.privacy.watermark import Detector, watermarking, z_threshold
from silobridge.settings import RunConfig
from silobridge.strategies.synthetic.config import SyntheticConfig
from silobridge.strategies.synthetic.model_side import requests

LENGTHS = (8, 16, 32, None)
STRICT, LOOSE = 4.0, round(z_threshold(0.01), 2)


def rates(det: Detector, texts: list[str]) -> dict:
    out = {}
    for n in LENGTHS:
        z = det.z(texts, max_tokens=n)
        z = z[~np.isnan(z)]
        out["whole" if n is None else f"first_{n}"] = {
            "mean_z": float(z.mean()), "at_z4": float(np.mean(z >= STRICT)), "at_z2.33": float(np.mean(z >= LOOSE))}
    return out


def measure(cfg: RunConfig, n: int, biases: list[float], seed: int) -> dict:
    splits = load_splits(cfg)
    syn = SyntheticConfig()
    lm = load_lm(cfg.lm.path, cfg.lm.threads, cfg.lm.dtype, cfg.lm.device)
    users, _ = requests(splits.task, -(-n // len(splits.task.label_names)), None, syn.terms_per_prompt,
                        random.Random(seed))
    prompts = [build_prompt(lm, u) for u in users[:n]]
    human = random.Random(seed).sample(splits.public, n)
    sets = {"human (public pool)": human}
    seconds = {}
    for bias in [0.0, *biases]:
        name = "LM, plain" if bias == 0 else f"LM, bias {bias:g}"
        lm.watermark = watermarking(dataclasses.replace(cfg.lm, watermark=bias > 0, watermark_bias=bias or 1.0))
        t0 = time.perf_counter()
        sets[name] = generate(lm, prompts, syn.max_new_tokens, syn.temperature, syn.top_p, syn.batch_size, seed=seed,
                              desc=name)
        seconds[name] = time.perf_counter() - t0
    lm.watermark = None
    # detection depends on the key and gamma only (the bias shapes generation): one detector scores every set;
    # plain LM text and human text are its false positives
    det = Detector(lm, watermarking(dataclasses.replace(cfg.lm, watermark=True)))
    rows = [{"texts": name, "n": len(texts), "rates": rates(det, texts),
             "tokens": statistics.mean(len(det.tokens(t)) for t in texts)} for name, texts in sets.items()]
    ppl = {name: perplexity(lm, texts)["perplexity"] for name, texts in sets.items()}
    return {"texts": n, "seed": seed, "dtype": str(next(lm.model.parameters()).dtype),
            "gamma": cfg.lm.watermark_gamma, "rows": rows, "perplexity_under_plain_lm": ppl,
            "generation_seconds": seconds, "z_loose": LOOSE}


def print_measure(d: dict) -> None:
    print(f"\n{d['texts']} texts per set, gamma {d['gamma']}, seed {d['seed']}; detected = share at z >= 4 "
          f"(z >= {d['z_loose']}: 1 % FPR)\n")
    print("| texts | tokens | " + " | ".join(
        f"{k}: mean z, detected (1 %)" for k in ("first 8", "first 16", "first 32", "whole")) + " | perplexity |")
    print("|---|---|" + "---|" * 5)
    for r in d["rows"]:
        cells = [f"{v['mean_z']:.2f}, {v['at_z4']:.2f} ({v['at_z2.33']:.2f})" for v in r["rates"].values()]
        print(f"| {r['texts']} | {r['tokens']:.0f} | " + " | ".join(cells)
              + f" | {d['perplexity_under_plain_lm'][r['texts']]:.1f} |")


def utility(seeds: list[int], sets: list[str], out: Path) -> None:
    rows = {}
    for label, extra in (("plain", []), ("watermarked", ["lm.watermark=true"])):
        cfg = from_dict(RunConfig, apply_overrides({}, ["lm.cache=true", *sets, *extra]))
        results, failed = bench(["synthetic"], seeds, cfg, out / label,
                                lambda k, n, s, d: print(f"  {label} {n} {s} {d}"))
        if failed:
            print("failed:", failed)
        rows[label] = results
    print("\n| synthetic | runs | acc | macro-F1 | AUC | watermark detected (whole, z >= 4) | plain flagged | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for label, rs in rows.items():
        u = [r["objectives"]["utility"] for r in rs]
        det = [r["objectives"]["model_leakage"].get("watermark_detected") for r in rs]
        flag = [r["report"].get("watermark", {}).get("whole", {}).get("plain_flagged") for r in rs]

        def m(xs, spec=".3f"):
            xs = [x for x in xs if x is not None]
            return format(statistics.mean(xs), spec) if xs else "–"
        print(f"| {label} | {len(rs)} | {m([x['accuracy'] for x in u])} | {m([x['macro_f1'] for x in u])} | "
              f"{m([x['auc'] for x in u])} | {m(det, '.2f')} | {m(flag, '.2f')} | "
              f"{m([r['objectives']['compute']['wall_seconds'] for r in rs], '.0f')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=96, help="texts per set")
    ap.add_argument("--biases", default="1,2,4", help="watermark logit biases to compare (the default is 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/watermark")
    ap.add_argument("--utility", action="store_true", help="also run synthetic with and without the watermark")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = from_dict(RunConfig, apply_overrides({}, [f"seed={args.seed}", *args.set]))
    d = measure(cfg, args.texts, [float(b) for b in args.biases.split(",")], args.seed)
    (out / "detection.json").write_text(json.dumps(d, indent=2) + "\n")
    print_measure(d)
    if args.utility:
        utility([int(s) for s in args.seeds.split(",")], args.set, out)


if __name__ == "__main__":
    main()
