"""The `silobridge` command: thin wrappers that parse, call the library, and print."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from silobridge.cli.common import (ConfigOpt, DataOpt, FeatureColsOpt, LabelColOpt, LMOpt, SetOpt, SMOpt, TaskOpt,
                                   TextColOpt, build_config, err, friendly)
from silobridge.cli.decide import demo_cmd, plan_cmd, report_cmd
from silobridge.cli.federate import federate_cmd
from silobridge.cli.serve import serve_cmd

app = typer.Typer(help="Large and small models collaborating across silos; every trade-off measured.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
out_console = Console(width=None if Console().is_terminal else 200)
ModelUrlOpt = typer.Option(None, "--model-url", help="the model party's service (`silobridge serve`), e.g. "
                                                     "https://lm.example.org:8765; default: in this process")
ApiKeyEnvOpt = typer.Option("SILOBRIDGE_API_KEY", "--api-key-env",
                            help="NAME of the environment variable holding the service's API key (with --model-url)")
WideOpt = typer.Option(False, "--wide", help="every objective column (the default fits 80 columns)")
CaCertOpt = typer.Option(None, "--ca-cert", help="PEM certificate to trust for the service's TLS (self-signed)")


def remote_of(model_url: str | None, api_key_env: str, ca_cert: Path | None):
    """The model-party service to use, or None for one in this process."""
    from silobridge.bench.runner import Remote
    from silobridge.cli.serve import api_key_from_env
    from silobridge.errors import ConfigError

    if model_url is None:
        if ca_cert is not None:
            raise ConfigError("--ca-cert without --model-url", where="--ca-cert", fix="also pass --model-url")
        return None
    if ca_cert is not None and not ca_cert.is_file():
        raise ConfigError(f"file '{ca_cert}' not found", where="--ca-cert", fix="pass the service's PEM certificate")
    return Remote(model_url, api_key_from_env(api_key_env), str(ca_cert) if ca_cert else None)


@app.command("list")
def list_cmd() -> None:
    """Show the registered strategies."""
    from silobridge.strategies import all_strategies

    table = Table("strategy", "tasks", "exposes by design", "what it does")
    for name, cls in all_strategies().items():
        tasks = ", ".join(sorted(k.value for k in cls.kinds))
        table.add_row(name, tasks, ", ".join(sorted(cls.exposes)) or "-", cls.summary)
    out_console.print(table)


@app.command("config")
@friendly
def config_cmd(strategy: str = typer.Argument(None, help="also show this strategy's options")) -> None:
    """Show every config key with its default and help (use them in a file or with --set)."""
    from silobridge.configs import describe
    from silobridge.settings import RunConfig
    from silobridge.strategies import get

    table = Table("key", "default", "help")
    for key, default, help_ in describe(RunConfig):
        table.add_row(key, default, help_)
    if strategy:
        for key, default, help_ in describe(get(strategy).Config, prefix="strategy."):
            table.add_row(key, default, help_)
    out_console.print(table)


@app.command("run")
@friendly
def run_cmd(strategy: str = typer.Argument(..., help="strategy name (see `silobridge list`)"),
            out: Path = typer.Option(Path("runs/run"), "--out", "-o", help="output directory"),
            config: str = ConfigOpt, set_: list[str] = SetOpt, data: str = DataOpt, text_col: str = TextColOpt,
            label_col: str = LabelColOpt, feature_cols: str = FeatureColsOpt, lm: str = LMOpt, sm: str = SMOpt,
            task: str = TaskOpt, seed: int = typer.Option(None, "--seed", help="seed (overrides the config)"),
            model_url: str = ModelUrlOpt, api_key_env: str = ApiKeyEnvOpt, ca_cert: Path = CaCertOpt,
            wide: bool = WideOpt) -> None:
    """Run one strategy; writes OUT/result.json and both parties' ledgers (OUT/ledger.jsonl, the data
    party's; OUT/ledger.model.jsonl, the model party's). With --model-url the model party is a service
    elsewhere (`silobridge serve`); its lm.* settings are then the service's."""
    from silobridge.bench.runner import run
    from silobridge.strategies import get

    get(strategy)
    cfg = build_config(config, set_, data=data, text_col=text_col, label_col=label_col, lm=lm, sm=sm, seed=seed,
                       task=task, feature_cols=feature_cols)
    result = run(strategy, cfg, out, remote=remote_of(model_url, api_key_env, ca_cert))
    print_table([result], wide)
    print_phases(result)
    err.print(f"wrote {out / 'result.json'} and {out / 'ledger.jsonl'}")


@app.command("bench")
@friendly
def bench_cmd(strategies: str = typer.Option("sm-only,lm-zero-shot,distill-public", "--strategies",
                                             help="comma-separated strategy names"),
              seeds: str = typer.Option("0", "--seeds", help="comma-separated seeds"),
              out: Path = typer.Option(Path("runs/bench"), "--out", "-o", help="output directory"),
              config: str = ConfigOpt, set_: list[str] = SetOpt, data: str = DataOpt,
              text_col: str = TextColOpt, label_col: str = LabelColOpt, feature_cols: str = FeatureColsOpt,
              lm: str = LMOpt, sm: str = SMOpt, task: str = TaskOpt, model_url: str = ModelUrlOpt,
              api_key_env: str = ApiKeyEnvOpt, ca_cert: Path = CaCertOpt, wide: bool = WideOpt) -> None:
    """Run several strategies x seeds (each in its own process), resume finished ones, write
    OUT/results.jsonl and print a table. With --model-url every run talks to that model party."""
    from silobridge.bench.suite import bench
    from silobridge.errors import ConfigError

    cfg = build_config(config, set_, data=data, text_col=text_col, label_col=label_col, lm=lm, sm=sm, task=task,
                       feature_cols=feature_cols)
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"cannot read seeds {seeds!r}", where="--seeds", fix="give integers: --seeds 0,1,2") from None

    remote_of(model_url, api_key_env, ca_cert)  # check the key and certificate before any run
    link = [] if model_url is None else ["--model-url", model_url, "--api-key-env", api_key_env] + (
        ["--ca-cert", str(ca_cert)] if ca_cert else [])
    with err.status("starting") as status:
        results, failures = bench(names, seed_list, cfg, out, on_event=live_events(status), run_args=link, live=True)
    print_table(results, wide)
    err.print(f"wrote {out / 'results.jsonl'}")
    if failures:
        err.print("[bold red]failed runs[/] (see each run's log.txt):\n  " + "\n  ".join(failures))
        raise typer.Exit(1)


def live_events(status):
    """bench's events for a terminal: one line per start/done/fail, the running phase on a status line."""
    def event(kind: str, name: str, seed: int, detail: str) -> None:
        if kind == "progress":
            status.update(f"{name} seed {seed}: {detail}")
            return
        style = {"skip": "dim", "start": "cyan", "done": "green", "fail": "bold red"}[kind]
        err.print(f"[{style}]{kind:5}[/] {name} seed {seed} {detail}")
        if kind == "start":
            status.update(f"{name} seed {seed}: starting")
    return event


def human_bytes(n: float) -> str:
    """412k, 8.6k, 1.2M: bytes in four characters or so."""
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "" or n >= 10 else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.0f}G"


def result_table(results: list[dict], wide: bool = False) -> Table:
    """The results as a table: key columns (fits 80 columns), or every objective with ``wide``."""
    from rich import box

    def num(x, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    if not wide:
        table = Table("strategy", "seed", "acc/ppl", "sent", "recv", "LM calls", "leaks", "s", box=box.SIMPLE_HEAD,
                      caption="leaks: canary/raw-record hits; sent/recv: bytes to/from the LM side; --wide: all")
        for r in results:
            o = r["objectives"]
            u, c, p, t = o["utility"], o["communication"], o["privacy"], o["compute"]
            utility = num(u.get("accuracy"), ".3f") if u.get("accuracy") is not None else \
                "ppl " + num(u.get("perplexity"), ".1f")
            table.add_row(r["strategy"], str(r["seed"]), utility, human_bytes(c["bytes_data_to_model"]),
                          human_bytes(c["bytes_model_to_data"]), f"{o['lm_queries']['calls']:,}",
                          f"{p['canary_hits']}/{p['raw_record_hits']}", num(t.get("wall_seconds"), ".0f"))
        return table
    table = Table("strategy", "task", "seed", "acc", "macro-F1", "AUC", "ppl", "next-tok", "bytes d→m", "bytes m→d",
                  "LM calls", "ε", "canary", "raw rec", "declared", "LM share", "data s", "model s", "wall s",
                  "peak MB")
    for r in results:
        o = r["objectives"]
        u, c, p, t = o["utility"], o["communication"], o["privacy"], o["compute"]
        share = o.get("model_leakage", {}).get("lm_param_share_declared") or None
        table.add_row(r["strategy"], r.get("task_kind", "classify"), str(r["seed"]), num(u.get("accuracy"), ".3f"),
                      num(u.get("macro_f1"), ".3f"), num(u.get("auc"), ".3f"), num(u.get("perplexity"), ".1f"),
                      num(u.get("next_token_accuracy"), ".3f"),
                      f"{c['bytes_data_to_model']:,}", f"{c['bytes_model_to_data']:,}",
                      str(o["lm_queries"]["calls"]), num(p.get("epsilon"), ".2f"), str(p["canary_hits"]),
                      str(p["raw_record_hits"]), str(p["declared_exposures"]), num(share, ".2f"),
                      f"{t['data_party_seconds']:.1f}", f"{t['model_party_seconds']:.1f}",
                      num(t.get("wall_seconds"), ".0f"), f"{t['peak_rss_mb']:.0f}")
    return table


def print_table(results: list[dict], wide: bool = False) -> None:
    out_console.print(result_table(results, wide))


def print_phases(result: dict, top: int = 8) -> None:
    """Where one run's wall time went: its longest tracked phases."""
    t = result["objectives"]["compute"]
    phases = sorted(t.get("phase_seconds", {}).items(), key=lambda kv: -kv[1])[:top]
    if phases:
        out_console.print(f"time: {t.get('wall_seconds', 0):.0f} s in all; longest phases: "
                          + ", ".join(f"{k} {v:.0f} s" for k, v in phases))


@app.command("show")
@friendly
def show_cmd(path: Path = typer.Argument(..., help="a result.json or results.jsonl"), wide: bool = WideOpt) -> None:
    """Print the table for saved results."""
    from silobridge.errors import DataError

    if not path.is_file():
        raise DataError("file not found", where=str(path), fix="pass a result.json or results.jsonl")
    text = path.read_text()
    rows = [json.loads(text)] if path.suffix == ".json" else [json.loads(x) for x in text.splitlines() if x]
    print_table(rows, wide)
    if len(rows) == 1:
        print_phases(rows[0])


app.command("serve")(serve_cmd)
app.command("report")(report_cmd)
app.command("plan")(plan_cmd)
app.command("demo")(demo_cmd)
app.command("federate")(federate_cmd)


def main() -> None:
    app(prog_name="silobridge")
