"""`silobridge federate`: several data parties and the model party on Flower."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from silobridge.cli.common import (ConfigOpt, DataOpt, LabelColOpt, LMOpt, SetOpt, SMOpt, TextColOpt, err, friendly,
                                   merged_config)
from silobridge.errors import UnknownStrategyError

from silobridge.federation import STRATEGIES as FED_STRATEGIES


def _pct(x: Any) -> str:
    return "–" if x is None else f"{x:.3f}"


def offsite_table(result: dict) -> Table:
    t = Table(title=f"{result['strategy']} · {result['engine']} · seed {result['seed']}")
    for col in ("round", "LM acc", "LM F1", "LM AUC", "ε", "parties", "bytes", "seconds"):
        t.add_column(col, justify="right")
    for r in result["rounds"]:
        t.add_row(str(r["round"]), _pct(r["lm"].get("accuracy")), _pct(r["lm"].get("macro_f1")),
                  _pct(r["lm"].get("auc")), _pct(r["epsilon"]), str(len(r["parties"])),
                  f"{r['bytes_model_to_parties'] + r['bytes_parties_to_model']:,}", f"{r['seconds']:.0f}")
    c, comm = result["references"]["centralised"], result["communication"]
    t.caption = (f"round 0 = the LM zero-shot; offsite-tuning on the union (privacy-violating bound): acc "
                 f"{c['accuracy']:.3f}, F1 {c['macro_f1']:.3f}; emulator {comm['emulator_bytes_per_party']:,.0f} "
                 f"bytes per party once; FedAvg of the full LM would move {comm['ratio_fedavg_lm']:,.0f}× a round's "
                 "bytes")
    return t


def rounds_table(result: dict) -> Table:
    if result["strategy"] == "fed-offsite":
        return offsite_table(result)
    t = Table(title=f"{result['strategy']} · {result['engine']} · seed {result['seed']}")
    for col in ("round", "mean acc", "worst acc", "mean F1", "worst F1", "LM acc", "LM F1", "bytes", "seconds"):
        t.add_column(col, justify="right")
    for r in result["rounds"]:
        t.add_row(str(r["round"]), _pct(r["accuracy"].get("mean")), _pct(r["accuracy"].get("worst")),
                  _pct(r["macro_f1"].get("mean")), _pct(r["macro_f1"].get("worst")), _pct(r["lm"].get("accuracy")),
                  _pct(r["lm"].get("macro_f1")), f"{r['bytes_model_to_parties'] + r['bytes_parties_to_model']:,}",
                  f"{r['seconds']:.0f}")
    c = result["references"]["centralised"]
    t.caption = (f"round 0 = each party alone; centralised union (privacy-violating bound): acc {c['accuracy']:.3f}, "
                 f"F1 {c['macro_f1']:.3f}")
    return t


@friendly
def federate_cmd(strategy: str = typer.Argument(..., help=f"federated strategy: {', '.join(FED_STRATEGIES)}"),
                 parties: int = typer.Option(None, "--parties", "-n", help="data parties (federation.parties)"),
                 rounds: int = typer.Option(None, "--rounds", "-r", help="rounds after round 0 (federation.rounds)"),
                 alpha: float = typer.Option(None, "--alpha", help="label skew: Dirichlet alpha (federation.alpha)"),
                 out: Path = typer.Option(Path("runs/federate"), "--out", "-o", help="output directory"),
                 deploy: bool = typer.Option(False, "--deploy", help="Flower's deployment engine: a SuperLink and "
                                                                     "one SuperNode process per party on 127.0.0.1 "
                                                                     "(default: its simulation engine)"),
                 cpus: int = typer.Option(None, "--cpus", help="simulation: CPUs of the Ray pool (default: all); "
                                                               "each party's step uses one"),
                 config: str = ConfigOpt, set_: list[str] = SetOpt, data: str = DataOpt, text_col: str = TextColOpt,
                 label_col: str = LabelColOpt, lm: str = LMOpt, sm: str = SMOpt,
                 seed: int = typer.Option(None, "--seed", help="seed (overrides the config)")) -> None:
    """Run a federation: N data parties, each with its own non-IID private split, canaries, SM and ledger,
    and the model party (the LM owner), on Flower. fed-distill: soft labels on a public pool go both ways
    (the LM LoRA-tuned on the parties' aggregate, the SMs distilled from it). fed-offsite: every party trains
    LoRA adapters on the LM's emulator, Flower's FedAvg averages them (--set strategy.dp_noise=Z for its DP
    wrapper) and the LM runs with the average plugged in. Writes OUT/result.json (per-round utility, bytes,
    time, ε), OUT/party-i/ledger.jsonl and OUT/model/ledger.jsonl. Rerunning the same command resumes after
    the last finished round."""
    from silobridge.federation.config import FedSettings
    from silobridge.federation.engine import simulate

    if strategy not in FED_STRATEGIES:
        raise UnknownStrategyError(f"unknown federated strategy '{strategy}'", where="STRATEGY",
                                   fix=f"choose one of: {', '.join(FED_STRATEGIES)}")
    settings = FedSettings.from_overrides(merged_config(config, set_, sm=sm, **{
        "data.path": data, "data.text_col": text_col, "data.label_col": label_col, "lm.path": lm, "seed": seed,
        "federation.parties": parties, "federation.rounds": rounds, "federation.alpha": alpha}), name=strategy)
    if deploy:
        from silobridge.federation.deploy import deploy as run_deployed

        result = run_deployed(settings, out)
    else:
        result = simulate(settings, out, cpus=cpus)
    Console(width=None if Console().is_terminal else 160).print(rounds_table(result))
    err.print(f"wrote {out / 'result.json'}, {out}/party-*/ledger.jsonl and {out / 'model' / 'ledger.jsonl'}")
