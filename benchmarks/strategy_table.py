"""Every strategy on the bundled defaults, several seeds, both task kinds: the table of issue 3, with the
reference baseline `sm-only` on the encoder SM (fine-tuned MiniLM; under OUT/encoder) first.

Classification (`task=classify`, all strategies) runs under OUT/<strategy>/seed<N>; domain language
modelling (`task=domain-lm`: LM alone = lm-zero-shot, the private-fine-tuning upper bound, and the
emulator family) under OUT/domain-lm/<strategy>/seed<N>. Runs go seed by seed (all strategies of
seed 0 first), each is a normal resumable `silobridge bench` run, so an interrupted table resumes.
`lm.cache` is on: one distilled emulator per seed serves emulator, offsite-tuning and dp-synthetic of
both kinds (its distillation is paid by the first run that asks; later runs report it cached).
Prints markdown tables, mean ± sd over seeds.

    .venv/bin/python benchmarks/strategy_table.py --seeds 0,1,2 --out runs/table3
    .venv/bin/python benchmarks/strategy_table.py --seeds 0,1,2 --tasks reviews,wordnet-nouns --out runs/tables
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from silobridge.bench.suite import bench
from silobridge.configs import apply_overrides, from_dict
from silobridge.settings import RunConfig

CLASSIFY = ["sm-only", "lm-zero-shot", "distill-public", "synthetic", "emulator", "offsite-tuning",
            "reverse-distill", "dp-synthetic", "lm-finetune-private", "router", "proxy-tuning", "retrieval",
            "dp-offsite-tuning", "split"]
DOMAIN_LM = ["lm-zero-shot", "emulator", "offsite-tuning", "dp-synthetic", "lm-finetune-private", "proxy-tuning",
             "dp-offsite-tuning"]
ENCODER_ROW = "sm-only, encoder SM (reference)"  # the other rows' SMs are TF-IDF


def fmt(xs: list[float | None], spec: str = ".3f") -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    if len(xs) == 1:
        return format(xs[0], spec)
    return f"{format(statistics.mean(xs), spec)} ± {format(statistics.stdev(xs), spec)}"


def mean(xs: list[float]) -> str:
    return f"{statistics.mean(xs):,.0f}"


def row(rs: list[dict], kind: str) -> str:
    o = [r["objectives"] for r in rs]
    u = [x["utility"] for x in o]
    c = [x["communication"] for x in o]
    p = [x["privacy"] for x in o]
    share = [x.get("model_leakage", {}).get("lm_param_share_declared") for x in o]
    exact = [x.get("model_leakage", {}).get("lm_param_share_exact") for x in o]
    busy = [x["compute"]["data_party_seconds"] + x["compute"]["model_party_seconds"] for x in o]
    wall = [x["compute"].get("wall_seconds") for x in o]  # absent in results written before it existed
    budget = [x.get("labels", {}).get("total") for x in o]  # absent in results written before it existed
    head = ([fmt([x["accuracy"] for x in u]), fmt([x["macro_f1"] for x in u]), fmt([x["auc"] for x in u]),
             mean(budget) if None not in budget else "–"] if kind == "classify" else [])
    return " | ".join([rs[0]["strategy"], str(len(rs)), *head, fmt([x.get("perplexity") for x in u], ".1f"),
                       fmt([x.get("next_token_accuracy") for x in u]),
                       mean([x["bytes_data_to_model"] for x in c]), mean([x["bytes_model_to_data"] for x in c]),
                       mean([x["lm_queries"]["calls"] for x in o]), fmt([x["epsilon"] for x in p], ".2f"),
                       f"{mean([x['canary_hits'] for x in p])} / {mean([x['raw_record_hits'] for x in p])} "
                       f"({mean([x['declared_exposures'] for x in p])})",
                       f"{fmt(share, '.2f')} ({fmt(exact, '.2f')})" if any(share) else "–", mean(busy),
                       fmt(wall, ".0f") + (f" ({sum(w is not None for w in wall)})" if len(rs) > 1 else "")])


def offsite_rows(rs: list[dict]) -> list[str]:
    """Offsite-Tuning's comparison: every LM the run evaluated, perplexity on held-out private text."""
    names = rs[0]["report"].get("lm_eval", {})
    return [f"{name} | {fmt([r['report']['lm_eval'][name]['perplexity'] for r in rs], '.1f')} | "
            f"{fmt([r['report']['lm_eval'][name]['next_token_accuracy'] for r in rs])}" for name in names]


def synthetic_rows(rs: list[dict]) -> list[str]:
    """What feedback and filtering add: the data party's validation scores of its ablation SMs."""
    names = [("private_only", "private labels only"), ("round0_only", "+ round-0 rows (no feedback)"),
             ("unfiltered", "+ both rounds, unfiltered"), ("with_synthetic", "+ both rounds, filtered (deployed)")]
    return [f"{label} | {fmt([r['report']['val'][key]['accuracy'] for r in rs])} | "
            f"{fmt([r['report']['val'][key]['macro_f1'] for r in rs])}"
            for key, label in names if all(key in r["report"]["val"] for r in rs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="runs/table3")
    ap.add_argument("--only", default="", help="comma list: run only these strategies (the table shows all found)")
    ap.add_argument("--kinds", default="classify,domain-lm")
    ap.add_argument("--tasks", default="", help="comma list of bundled tasks (e.g. reviews,wordnet-nouns): one "
                    "table each, under OUT/<task>; domain-lm only for the reviews (WordNet's definitions are too "
                    "short to be domain text). Empty: the data the config names, under OUT")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    ap.add_argument("--report-only", action="store_true", help="run nothing: tabulate the finished runs under --out")
    ap.add_argument("--no-encoder", action="store_true", help="skip the reference baseline sm-only with the encoder SM")
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    tasks = [t for t in args.tasks.split(",") if t]
    failures: list[str] = []
    if not tasks:
        failures += table(args, Path(args.out), kinds, [])
    for task in tasks:
        print(f"\n## {task}\n", flush=True)
        failures += table(args, Path(args.out) / task, kinds if task == "reviews" else ["classify"],
                          [f"data.path=bundled:{task}"])
    if failures:
        raise SystemExit("failed: " + "; ".join(failures))


def table(args: argparse.Namespace, out: Path, kinds: list[str], extra: list[str]) -> list[str]:
    """Run (or read back) one task's table under ``out``, print it; returns the failed runs."""
    seeds = [int(s) for s in args.seeds.split(",")]
    only = set(filter(None, args.only.split(",")))
    plan = {"classify": (CLASSIFY, out), "domain-lm": (DOMAIN_LM, out / "domain-lm")}
    overrides = [*extra, *args.set]

    def log(kind: str, name: str, seed: int, detail: str) -> None:
        print(f"  {kind:5} {name} seed {seed} {detail}", flush=True)

    rows: dict[tuple[str, str], list[dict]] = {}
    failures: list[str] = []
    for seed in seeds:
        for kind in kinds:
            names, where = plan[kind]
            chosen = [n for n in names if not only or n in only]
            cfg = from_dict(RunConfig, apply_overrides({}, ["lm.cache=true", f"task={kind}", *overrides]))
            if args.report_only:
                found = [where / n / f"seed{seed}" / "result.json" for n in chosen]
                results, failed = [json.loads(f.read_text()) for f in found if f.exists()], []
            else:
                results, failed = bench(chosen, [seed], cfg, where, log)
            failures += failed
            for r in results:
                rows.setdefault((kind, r["strategy"]), []).append(r)
            if kind == "classify" and "sm-only" in chosen and not args.no_encoder:
                # the reference baseline: the strongest SM the data party trains alone (fine-tuned MiniLM)
                enc = from_dict(RunConfig, apply_overrides({}, ["lm.cache=true", f"task={kind}", *overrides,
                                                                "sm.kind=encoder"]))
                found = where / "encoder" / "sm-only" / f"seed{seed}" / "result.json"
                if args.report_only:
                    results, failed = ([json.loads(found.read_text())] if found.exists() else []), []
                else:
                    results, failed = bench(["sm-only"], [seed], enc, where / "encoder", log)
                failures += failed
                for r in results:
                    rows.setdefault((kind, ENCODER_ROW), []).append(r | {"strategy": ENCODER_ROW})

    cols = "ppl | next-token acc | bytes d→m | bytes m→d | LM calls | ε | canary / raw hits (declared) | " \
           "LM share declared (exact) | data + model s | run wall s (runs timed)"
    for kind in kinds:
        names = plan[kind][0]
        print(f"\n### task = {kind} (mean ± sd over seeds)\n")
        print(f"| strategy | runs | {'acc | macro-F1 | AUC | labels | ' if kind == 'classify' else ''}{cols} |")
        print("|" + "---|" * (cols.count("|") + (7 if kind == "classify" else 3)))
        for name in ([ENCODER_ROW] if kind == "classify" else []) + names:
            if (kind, name) in rows:
                print(f"| {row(rows[(kind, name)], kind)} |")
        for name in ("offsite-tuning",):
            if (kind, name) in rows:
                print(f"\n{name} ({kind}), every LM it evaluated:\n\n| LM | ppl | next-token acc |\n|---|---|---|")
                for line in offsite_rows(rows[(kind, name)]):
                    print(f"| {line} |")
        if (kind, "synthetic") in rows:
            rs = rows[(kind, "synthetic")]
            print(f"\nsynthetic: what feedback and filtering add (validation, n={rs[0]['config']['data']['n_val']}; "
                  f"kept {mean([r['report']['kept'] for r in rs])} of {mean([r['report']['generated'] for r in rs])} "
                  f"generated)\n\n| SM trained on | val acc | val macro-F1 |\n|---|---|---|")
            for line in synthetic_rows(rs):
                print(f"| {line} |")
    return failures


if __name__ == "__main__":
    main()
