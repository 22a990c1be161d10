"""Choose the LM prompt and label words on a validation sample (never the test split).

Scores a validation sample of the bundled reviews' *training* file under each template, reads the
label-word log-probs of several verbalizers from the same forward pass, and prints accuracy / AUC
per (template, verbalizer, calibration). The defaults in strategies/prompting.py come from this.

    .venv/bin/python benchmarks/select_prompt.py --n 300
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from silobridge.data import load_reviews
from silobridge.models.lm import load_lm, score_labels
from silobridge.strategies.prompting import Calibration, PromptConfig, calibrate, choose_demos

TEMPLATES = {
    "is-it": "Here is {description}.\n\n{text}\n\nIs it {labels}? Answer with one word.",
    "sentiment": "Review: {text}\n\nIs this review {labels}? Answer with one word.",
    "love": "Review: {text}\n\nDid the reviewer love this product? Answer {labels}.",
}
VERBALIZERS = [("great", "other"), ("positive", "negative"), ("yes", "no"), ("good", "bad")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--shots", type=int, default=0, help="demonstrations per class (from a disjoint public sample)")
    ap.add_argument("--templates", default=",".join(TEMPLATES), help="comma-separated template names")
    args = ap.parse_args()
    task, pool, _ = load_reviews()
    idx = np.random.default_rng(args.seed).permutation(len(pool))
    val = pool.subset(idx[:args.n])
    demo_pool = [pool.texts[i] for i in idx[args.n:args.n + 100]]  # unlabelled, disjoint from val
    y = val.labels
    prior = np.bincount(y, minlength=2) / len(y)
    lm = load_lm()
    rows = []
    for tname in args.templates.split(","):
        template = TEMPLATES[tname]
        for words in VERBALIZERS:
            user = template.replace("{labels}", " or ".join(words)).replace("{description}", task.description)
            shots = (choose_demos(lm, demo_pool, user, list(words), PromptConfig(n_shots=args.shots))
                     if args.shots else ())
            logp = score_labels(lm, val.texts, user, list(words), shots=shots)
            bias = score_labels(lm, demo_pool, user, list(words), shots=shots).mean(0)  # as deployed: other texts
            for cal in Calibration:
                p = calibrate(logp, cal, prior, bias)
                rows.append((roc_auc_score(y == 0, p[:, 0]), float((p.argmax(1) == y).mean()), tname, words, cal.value))
            print(f"{tname:10} {'/'.join(words):18} shots {args.shots} AUC {rows[-1][0]:.3f}", flush=True)
    print("\nbest by AUC (then accuracy):")
    for auc, acc, tname, words, cal in sorted(rows, reverse=True)[:10]:
        print(f"  AUC {auc:.3f}  acc {acc:.3f}  {tname:10} {'/'.join(words):18} {cal}")
    print(f"majority baseline {max(prior):.3f}")


if __name__ == "__main__":
    main()
