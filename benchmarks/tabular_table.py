"""Tables (task 'tabular'): where does the LM's reading of rows help? Both bundled credit tables, across
private label budgets: sm-only with boosting and with LR, distill-public, router and synthetic-rows (the LM
writes rows per class; also steered by DP summaries of each class's private rows, at --summaries-epsilon),
against lm-zero-shot (budget-free), with its prompt as written and with the prompt's
answer words and their assignment to the classes chosen on the validation rows (strategy.choose_prompt: it
sends them to the LM, declared, and uses their labels, which the run's label budget counts). Prints one markdown
table: accuracy, AUC, bytes each way, LM calls, ε, raw-row and canary hits, mean ± std over seeds.

Each (table, budget, strategy, seed) is a normal `silobridge bench` run (its own process, resumable) under
OUT/<table>/<sm>-budget<N>/; the LM score cache is on, so public and test rows are scored once per row
(the compute figures of these runs therefore exclude cached LM work).

    .venv/bin/python benchmarks/tabular_table.py --out runs/tabular            # 25,50,100,400 x seeds 0,1,2
    .venv/bin/python benchmarks/tabular_table.py --budgets 50 --seeds 0 --tables credit-scoring \\
        --set data.n_test=200 --set data.n_public=200 --out runs/tabular-smoke  # a smoke run
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from silobridge.bench.suite import bench
from silobridge.configs import apply_overrides, from_dict
from silobridge.settings import RunConfig, TaskKind
from silobridge.strategies import get

LM_STRATEGIES = ["distill-public", "synthetic-rows", "router"]  # with the boosting SM, per budget


def fmt(xs: list[float | None], spec: str = ".3f") -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return format(xs[0], spec)
    return f"{format(statistics.mean(xs), spec)} ± {format(statistics.stdev(xs), spec)}"


def human(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "" or n >= 10 else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.0f}G"


def row(table: str, budget: str, label: str, results: list[dict]) -> str:
    o = [r["objectives"] for r in results]
    sent = statistics.mean(x["communication"]["bytes_data_to_model"] for x in o)
    recv = statistics.mean(x["communication"]["bytes_model_to_data"] for x in o)
    eps = [x["privacy"]["epsilon"] for x in o]
    return (f"| {table} | {budget} | {label} | {fmt([x['utility']['accuracy'] for x in o])} | "
            f"{fmt([x['utility'].get('auc') for x in o])} | {human(sent)} / {human(recv)} | "
            f"{statistics.mean(x['lm_queries']['calls'] for x in o):,.0f} | "
            f"{fmt(eps, '.2f') if any(e is not None for e in eps) else '-'} | "
            f"{fmt([x['privacy']['raw_record_hits'] for x in o], '.0f')} | "
            f"{fmt([x['privacy']['canary_hits'] for x in o], '.0f')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", default="credit-default,credit-scoring", help="bundled tables (bundled:NAME)")
    ap.add_argument("--budgets", default="25,50,100,400", help="private label budgets (data.n_private)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides, e.g. data.n_test=200")
    ap.add_argument("--out", default="runs/tabular")
    ap.add_argument("--summaries-epsilon", type=float, default=1.0,
                    help="also run synthetic-rows steered by DP class summaries of the private rows at this ε "
                         "(0: not)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    runnable = [s for s in LM_STRATEGIES if TaskKind.TABULAR in get(s).kinds]
    skipped = [s for s in LM_STRATEGIES if s not in runnable]
    out = Path(args.out)

    def log(kind: str, name: str, seed: int, detail: str) -> None:
        if kind != "progress":
            print(f"  {kind:5} {name} seed {seed} {detail}", flush=True)

    def sweep(names: list[str], sets: list[str], where: Path) -> dict[str, list[dict]]:
        cfg = from_dict(RunConfig, apply_overrides({}, sets))
        results, failures = bench(names, seeds, cfg, where, log)
        if failures:
            raise SystemExit("failed: " + "; ".join(failures))
        by: dict[str, list[dict]] = {}
        for r in results:
            by.setdefault(r["strategy"], []).append(r)
        return by

    lines, majority = [], {}
    for table in tables:
        base = ["task=tabular", f"data.path=bundled:{table}", "lm.cache=true", *args.set]
        print(f"{table}: lm-zero-shot", flush=True)
        zs = sweep(["lm-zero-shot"], base, out / table / "zero-shot")["lm-zero-shot"]
        majority[table] = zs[0]["objectives"]["utility"]["majority_baseline"]
        lines.append(row(table, "-", "lm-zero-shot", zs))
        print(f"{table}: lm-zero-shot, prompt chosen on the validation rows", flush=True)
        chosen = sweep(["lm-zero-shot"], base + ["strategy.choose_prompt=true"],
                       out / table / "zero-shot-chosen")["lm-zero-shot"]
        lines.append(row(table, "-", "lm-zero-shot (prompt chosen on val.)", chosen))
        for n in budgets:
            print(f"{table}: budget {n}", flush=True)
            at = base + [f"data.n_private={n}"]
            for sm in ("boost", "logreg"):
                res = sweep(["sm-only"], at + [f"sm.kind={sm}"], out / table / f"{sm}-budget{n}")
                lines.append(row(table, str(n), f"sm-only ({sm})", res["sm-only"]))
            if runnable:
                res = sweep(runnable, at + ["sm.kind=boost"], out / table / f"boost-budget{n}")
                lines += [row(table, str(n), f"{s} (boost)", res[s]) for s in runnable]
            if "synthetic-rows" in runnable and args.summaries_epsilon:
                res = sweep(["synthetic-rows"], at + ["sm.kind=boost", "strategy.summaries=true",
                                                      f"strategy.summary_epsilon={args.summaries_epsilon}"],
                            out / table / f"boost-budget{n}-summaries")
                lines.append(row(table, str(n), f"synthetic-rows + DP summaries ε={args.summaries_epsilon:g} (boost)",
                                 res["synthetic-rows"]))

    print(f"\n{len(seeds)} seed(s): {', '.join(map(str, seeds))}; majority-class accuracy: "
          + ", ".join(f"{t} {m:.3f}" for t, m in majority.items())
          + (f"; not run (they refuse tables): {', '.join(skipped)}" if skipped else ""))
    print("\n| table | labels | strategy | accuracy | AUC | bytes sent / received | LM calls | ε | raw-row hits "
          "| canary hits |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
