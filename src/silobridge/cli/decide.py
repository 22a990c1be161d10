"""`silobridge report` and `silobridge plan`: from measured runs to a decision (thin: parse, call, print)."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import typer
from rich.table import Table

from silobridge.cli.common import (ConfigOpt, DataOpt, LabelColOpt, LMOpt, SetOpt, SMOpt, TextColOpt, build_config,
                                   err, friendly)

WeightsOpt = typer.Option(None, "--weights", help="objective weights, e.g. utility=1,bytes=0.2,lm_calls=0.2,"
                                                  "epsilon=0.5,data_seconds=0.1 (the rest keep their defaults)")
# the pilot: strategies that train no LM (cheap), on small splits of the user's data
PILOT = ["sm-only", "lm-zero-shot", "distill-public", "router", "retrieval"]
PILOT_SETS = ["data.n_test=200", "data.n_public=300", "data.n_val=60", "data.n_lm_eval=0", "lm.cache=true"]


@friendly
def report_cmd(runs: list[Path] = typer.Argument(..., help="run directories (bench/run --out) or result.json files"),
               out: Path = typer.Option(Path("report.html"), "--out", "-o", help="the HTML file to write"),
               weights: str = WeightsOpt) -> None:
    """Write one self-contained HTML report (opens offline): objective table, score, Pareto fronts, what
    crossed the boundary, label-budget curves when present."""
    from silobridge.bench.report import write_report
    from silobridge.bench.score import parse_weights

    path = write_report(runs, out, parse_weights(weights), command=" ".join(["silobridge", *sys.argv[1:]]))
    err.print(f"wrote {path}")


def _eps(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.2f}"


DEMO = ["sm-only", "distill-public", "synthetic"]  # the data party alone, and two ways the LM helps it privately


@friendly
def demo_cmd(out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="output directory"),
             set_: list[str] = SetOpt) -> None:
    """The SM alone against two private collaborations (LM soft labels on public texts; LM-written
    synthetic data from DP class prototypes) on the bundled reviews: a table, three sentences, a report."""
    from silobridge.bench.report import write_report
    from silobridge.bench.story import story
    from silobridge.bench.suite import bench
    from silobridge.cli.main import live_events, print_table

    cfg = build_config(None, ["lm.cache=true", *(set_ or [])])
    err.print(f"demo: {', '.join(DEMO)} on the bundled reviews (400 private labels, 1,000 test texts), seed 0; "
              "about 3 minutes on a 2-core CPU with bfloat16, 6 in float32")
    with err.status("starting") as status:
        results, failures = bench(DEMO, [0], cfg, out, on_event=live_events(status), live=True)
    print_table(results)
    for sentence in story(results):
        print(sentence)
    report = write_report([out], out / "report.html", command="silobridge demo")
    err.print(f"wrote {report} (open it in a browser) and {out / 'results.jsonl'}")
    if failures:
        err.print("[bold red]failed runs[/]:\n  " + "\n  ".join(failures))
        raise typer.Exit(1)


@friendly
def plan_cmd(runs: list[Path] = typer.Option(None, "--runs", help="directories of measured runs (repeatable)"),
             max_epsilon: float = typer.Option(None, "--max-epsilon", help="ε of the training records at most"),
             no_lm_weights: bool = typer.Option(False, "--no-lm-weights",
                                                help="no LM weights may reach the data party"),
             no_private_records: bool = typer.Option(False, "--no-private-records",
                                                     help="no private record (nor non-DP results of them) may leave"),
             local_inference: bool = typer.Option(False, "--local-inference",
                                                  help="queries never leave the data party"),
             max_lm_calls_per_1k: float = typer.Option(None, "--max-lm-calls-per-1k",
                                                       help="LM calls per 1,000 queries at most"),
             max_bytes: float = typer.Option(None, "--max-bytes", help="bytes over the wire at most"),
             max_data_party_seconds: float = typer.Option(None, "--max-data-party-seconds",
                                                          help="data-party compute seconds at most"),
             min_utility: float = typer.Option(None, "--min-utility", help="accuracy (classify) at least"),
             constraints: Path = typer.Option(None, "--constraints", help="TOML/YAML/JSON file of the same keys "
                                                                          "(max_epsilon = 1, ...); flags override it"),
             weights: str = WeightsOpt,
             task: str = typer.Option("classify", "--task", help="which runs to rank: classify or domain-lm"),
             pilot: bool = typer.Option(False, "--pilot",
                                        help="no measured runs: run a cheap pilot on your data first"),
             pilot_minutes: float = typer.Option(10.0, "--pilot-minutes",
                                                 help="the pilot starts no new run after this"),
             pilot_out: Path = typer.Option(Path("runs/pilot"), "--pilot-out", help="where the pilot's runs go"),
             config: str = ConfigOpt, set_: list[str] = SetOpt, data: str = DataOpt, text_col: str = TextColOpt,
             label_col: str = LabelColOpt, lm: str = LMOpt, sm: str = SMOpt) -> None:
    """Rank the strategies that meet every constraint by the score, say why each other is excluded, and
    print the command that runs the winner on your data."""
    from silobridge.bench.plan import Constraints, plan
    from silobridge.bench.report import load_runs
    from silobridge.bench.score import parse_weights
    from silobridge.configs import from_dict, load_file
    from silobridge.errors import DataError

    base = load_file(str(constraints)) if constraints else {}
    flags = {"max_epsilon": max_epsilon, "no_lm_weights": no_lm_weights or None,
             "no_private_records": no_private_records or None, "local_inference": local_inference or None,
             "max_lm_calls_per_1k": max_lm_calls_per_1k, "max_bytes": max_bytes,
             "max_data_party_seconds": max_data_party_seconds, "min_utility": min_utility}
    c = from_dict(Constraints, base | {k: v for k, v in flags.items() if v is not None}, prefix="constraints.")
    # the user's own data and model, passed on to the winner's command (one argument each: Plan.command quotes)
    user = [a for flag, value in (("--data", data), ("--text-col", text_col), ("--label-col", label_col),
                                  ("--lm", lm)) if value for a in (flag, value)]
    trust = ""
    if not runs:
        if not pilot:
            raise DataError("no measured runs to plan from", where="--runs",
                            fix="pass --runs DIR (a `silobridge bench` output) or --pilot to measure a cheap pilot")
        runs, trust = [_pilot(config, set_, data, text_col, label_col, lm, sm, pilot_minutes, pilot_out)], \
            "pilot"
    results = [r for _, r in load_runs(list(runs))]
    p = plan(results, c, parse_weights(weights), task)
    table = Table("rank", "strategy", "score", "utility", "bytes", "LM calls/1k", "ε", "data s")
    for i, r in enumerate(p.ranked, 1):
        m = r.mean
        table.add_row(str(i), r.name, f"{r.score:+.3f}", f"{m['utility']:.3f}" if m["utility"] is not None else "-",
                      f"{m['bytes']:,.0f}", f"{m['lm_calls_per_1k'] or 0:,.0f}", _eps(m["epsilon"]),
                      f"{m['data_seconds']:,.0f}")
    from silobridge.cli.main import out_console

    out_console.print(table)
    for r, why in p.excluded:
        out_console.print(f"excluded {r.name}: {why}")
    if not p.ranked:
        out_console.print("no measured strategy meets every constraint; relax one (the reasons above say which)")
        raise typer.Exit(1)
    out_console.print(f"run the winner: {p.command(user)}")
    if trust:
        n = min(len(r.seeds) for r in p.ranked)
        out_console.print(f"from a pilot ({n} seed, 200 test texts): an accuracy difference under about 0.07 "
                          "(two standard errors) is noise; rerun the top two with `silobridge bench` at full size")


def _pilot(config, set_, data, text_col, label_col, lm, sm, minutes: float, out: Path) -> Path:
    from silobridge.bench.suite import bench
    from silobridge.cli.main import live_events

    cfg = build_config(config, PILOT_SETS + list(set_ or []), data=data, text_col=text_col, label_col=label_col,
                       lm=lm, sm=sm)
    err.print(f"pilot: {', '.join(PILOT)} on small splits ({', '.join(PILOT_SETS[:3])}), one seed, into {out}; "
              f"about 1-3 minutes per strategy on 2 cores with the bundled models; no new run starts after "
              f"{minutes:g} minutes (--pilot-minutes)")
    t0 = time.time()
    for i, name in enumerate(PILOT):
        if i and time.time() - t0 > minutes * 60:  # the SM alone always runs: the baseline to rank against
            err.print(f"pilot: {minutes:g} minutes spent; not starting {name} and the rest")
            break
        with err.status("starting") as status:
            bench([name], [0], cfg, out, on_event=live_events(status), live=True)
    return out
