"""Run a federation and summarise it. ``simulate``: Flower's simulation engine (Ray), every party a node on
this machine. Both engines leave the same files: ``rounds.jsonl`` (the model party's per-round record),
``party-i/`` (each party's ledger and own rounds), ``model/`` (the model party's ledger) and, last,
``result.json``."""
from __future__ import annotations

import json
import logging
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from silobridge import __version__
from silobridge.bench.metrics import utility
from silobridge.bench.runner import config_digest
from silobridge.errors import ConfigError, SilobridgeError
from silobridge.federation.config import FedSettings
from silobridge.federation.fed_distill import party_splits

RESULT = "result.json"


class FederationError(SilobridgeError):
    """A federation stopped before its last round."""


def prepare(settings: FedSettings, out: Path) -> Path:
    """Write ``federation.json`` (what every node reads); refuse an output folder that holds a federation
    with other settings (its finished rounds would be mixed with these)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "federation.json"
    doc = {"settings": settings.to_dict(), "out": str(out.resolve())}
    if path.exists() and (out / "rounds.jsonl").exists():
        old = json.loads(path.read_text())
        if _identity(old.get("settings", {})) != _identity(doc["settings"]):
            raise ConfigError(f"{out} holds a federation run with other settings", where="--out",
                              fix="use another --out, or delete the folder to start over")
    (out / RESULT).unlink(missing_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


OPERATIONAL = ("timeout", "min_parties", "party_threads")  # how a federation runs, not what it computes


def _identity(settings: dict) -> dict:
    fed = {k: v for k, v in settings.get("federation", {}).items() if k not in OPERATIONAL}
    return settings | {"federation": fed}


def simulate(settings: FedSettings, out: str | Path, cpus: int | None = None) -> dict[str, Any]:
    """A federated strategy on Flower's simulation engine: ``federation.parties`` virtual nodes, each ClientApp call
    on one CPU of a Ray pool of ``cpus`` (default: all), the ServerApp (the model party) in this process.
    Resumes after the last finished round found in ``out``."""
    from flwr.simulation import run_simulation

    from silobridge.federation.apps import ENV, client_app, finished_rounds, server_app

    out = Path(out)
    path = prepare(settings, out)
    t0 = time.perf_counter()
    os.environ[ENV] = str(path.resolve())  # Ray's workers inherit it
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    cpus = cpus or os.cpu_count() or 1
    if len(finished_rounds(out)) >= expected_rounds(settings):  # nothing left to run
        return finish(settings, out, "simulation", time.perf_counter() - t0)
    backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
               "init_args": {"num_cpus": cpus, "num_gpus": 0, "include_dashboard": False,
                             "logging_level": logging.WARNING, "log_to_driver": True}}
    try:
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=settings.federation.parties,
                       backend_config=backend)
    except SilobridgeError:
        pass  # the model party's error is in rounds.failed.jsonl; finish() reports it with what did finish
    return finish(settings, out, "simulation", time.perf_counter() - t0)


def finish(settings: FedSettings, out: Path, engine: str, wall: float) -> dict[str, Any]:
    """Check every round finished, then write ``result.json``."""
    from silobridge.federation.apps import finished_rounds

    rows = finished_rounds(out)
    if len(rows) < expected_rounds(settings):
        failed = out / "rounds.failed.jsonl"
        why = "see the log above"
        if failed.exists():
            row = json.loads(failed.read_text().splitlines()[-1])
            why = row["aborted"] + "".join(f"; party {p}: {m}" for p, m in row.get("failed", {}).items())
        raise FederationError(f"the federation stopped after {len(rows)} of {expected_rounds(settings)} "
                              f"rounds: {why}", where=str(out),
                              fix="fix the cause and rerun the same command: it resumes after the last finished round")
    how = {"fed-offsite": summarise_offsite, "lm-fusion": summarise_fusion}.get(settings.name, summarise)
    result = how(settings, rows, out, engine, wall)
    tmp = out / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / RESULT)
    return result


def header(settings: FedSettings, out: Path, engine: str) -> dict[str, Any]:
    """What every federated result opens with: the strategy, engine, seed, config, its digest (what resume
    compares) and the parties' introductions."""
    parties = json.loads((out / "parties.json").read_text()) if (out / "parties.json").exists() else {}
    return {"strategy": settings.name, "engine": engine, "seed": settings.run.seed, "config": settings.to_dict(),
            "config_digest": config_digest(settings.name, _identity(settings.to_dict())), "parties": parties}


def expected_rounds(settings: FedSettings) -> int:
    """Rows of ``rounds.jsonl`` a finished federation has: round 0 and every round, or lm-fusion's one."""
    return 1 if settings.name == "lm-fusion" else settings.federation.rounds + 1


def _stats(parties: dict[str, dict], key: str) -> dict[str, float]:
    vals = [p["evaluation"][f"sm.{key}"] for p in parties.values() if f"sm.{key}" in p["evaluation"]]
    return {"mean": float(np.mean(vals)), "worst": float(np.min(vals))} if vals else {}


def summarise(settings: FedSettings, rows: list[dict], out: Path, engine: str, wall: float) -> dict[str, Any]:
    fed = settings.federation
    rounds = []
    for row in rows:
        parties = row["parties"]
        lm = {k.removeprefix("lm."): v for k, v in parties.get("0", {}).get("evaluation", {}).items()
              if k.startswith("lm.")}
        rounds.append({"round": row["round"], "seconds": row["seconds"], "failed": row["failed"],
                       "accuracy": _stats(parties, "accuracy"), "macro_f1": _stats(parties, "macro_f1"),
                       "lm": lm, "weights": row["model"].get("weights"),
                       "bytes_model_to_parties": row["bytes_model_to_parties"],
                       "bytes_parties_to_model": row["bytes_parties_to_model"],
                       "parties": {p: {k.removeprefix("sm."): v for k, v in r["evaluation"].items()
                                       if k.startswith("sm.")} | {"val_macro_f1": r["quality"]["macro_f1"],
                                                                  "private": r["quality"]["private"]}
                                   for p, r in parties.items()}})
    last, first = rounds[-1], rounds[0]
    sizes = rows[-1]["model"].get("sizes", {})
    per_round = [r["bytes_model_to_parties"] + r["bytes_parties_to_model"] for r in rounds[1:]] or [0]
    comm = {"bytes_per_round": float(np.mean(per_round)), "bytes_total": sum(r["bytes_model_to_parties"] +
                                                                             r["bytes_parties_to_model"]
                                                                             for r in rounds)}
    if sizes.get("lm_params"):
        # full-parameter FedAvg, float32: every party downloads and uploads the whole model each round
        comm["fedavg_lm_bytes_per_round"] = 2 * fed.parties * 4 * sizes["lm_params"]
        comm["ratio_fedavg_lm"] = comm["fedavg_lm_bytes_per_round"] / max(comm["bytes_per_round"], 1)
    sm_params = [r["quality"].get("sm_params") for r in rows[-1]["parties"].values() if r["quality"].get("sm_params")]
    if sm_params:
        comm["fedavg_sm_bytes_per_round"] = 2 * 4 * int(sum(sm_params))
        comm["ratio_fedavg_sm"] = comm["fedavg_sm_bytes_per_round"] / max(comm["bytes_per_round"], 1)
    return header(settings, out, engine) | {
        "rounds": rounds,
        "final": {"accuracy": last["accuracy"], "macro_f1": last["macro_f1"], "lm": last["lm"]},
        "references": {"alone": {"accuracy": first["accuracy"], "macro_f1": first["macro_f1"],
                                 "note": "round 0: each party's SM on its own private split"},
                       "lm_zero_shot": first["lm"],
                       "centralised": centralised(settings)},
        "communication": comm,
        "privacy": {"sent_by_parties": "SM class probabilities on public texts, validation and test metrics; "
                                       "party 0 also the test texts (declared exposure 'evaluation_records')",
                    "epsilon": None, "note": "no DP: soft labels of an SM trained on private records (ε unbounded)"},
        "compute": {"wall_seconds": round(wall, 3), "round_seconds": [r["seconds"] for r in rounds],
                    "peak_rss_mb_model_party": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
        "env": {"silobridge": __version__},
    }


def centralised(settings: FedSettings) -> dict[str, Any]:
    """The privacy-violating upper bound: one SM trained on the union of the parties' private records."""
    from silobridge.bench.runner import load_splits
    from silobridge.models.sm import build_sm

    splits = load_splits(settings.run)
    parts = party_splits(splits, settings)
    k = len(splits.task.label_names)
    texts = [t for p in parts for t in p.private.texts]
    labels = np.concatenate([p.private.labels for p in parts])
    c = settings.run.sm
    sm = build_sm(c, k, settings.run.seed)
    sm.fit(texts, np.eye(k)[labels], val=(splits.val.texts, splits.val.labels))
    return utility(splits.test.labels, sm.predict_proba(splits.test.texts), k) | {
        "note": "privacy-violating upper bound: all parties' private records in one place", "sm": c.kind.value}


def summarise_offsite(settings: FedSettings, rows: list[dict], out: Path, engine: str, wall: float) -> dict[str, Any]:
    """fed-offsite's result: the LM's utility with each round's global adapters (round 0: none, the LM
    zero-shot), the parties' training, bytes against full-parameter FedAvg of the LM, and ε under DP."""
    from silobridge.federation.fed_offsite import centralised as offsite_centralised

    fed, c = settings.federation, settings.strategy
    rounds = [{"round": r["round"], "seconds": r["seconds"], "failed": r["failed"], "lm": r["lm"],
               "bytes_model_to_parties": r["bytes_model_to_parties"],
               "bytes_parties_to_model": r["bytes_parties_to_model"],
               "epsilon": r["model"].get("dp", {}).get("epsilon"),
               "parties": {p: v["quality"] for p, v in r["parties"].items()}} for r in rows]
    last = rows[-1]["model"]
    sizes, emu = last["sizes"], last["emulator"]
    per_round = [r["bytes_model_to_parties"] + r["bytes_parties_to_model"] for r in rounds[1:]] or [0]
    comm = {"emulator_bytes_per_party": emu["bytes"] / max(fed.parties, 1),
            "emulator_revealed_param_share": emu["revealed_param_share"],
            "adapter_params": sizes["adapter_params"], "lm_params": sizes["lm_params"],
            "adapter_share_of_lm": sizes["adapter_params"] / sizes["lm_params"],
            "bytes_per_round": float(np.mean(per_round)),
            "bytes_total": emu["bytes"] + sum(r["bytes_model_to_parties"] + r["bytes_parties_to_model"]
                                              for r in rounds),
            "fedavg_lm_bytes_per_round": 2 * fed.parties * 4 * sizes["lm_params"]}
    comm["ratio_fedavg_lm"] = comm["fedavg_lm_bytes_per_round"] / max(comm["bytes_per_round"], 1)
    dp = last.get("dp")
    return header(settings, out, engine) | {
        "rounds": rounds,
        "final": {"lm": rounds[-1]["lm"]},
        "references": {"lm_zero_shot": rounds[0]["lm"], "centralised": offsite_centralised(settings, out)},
        "communication": comm,
        "privacy": {"sent_by_parties": "LoRA adapters trained on private records (declared 'private_model') and "
                                       "record counts; party 0 also the test texts ('evaluation_records')",
                    "sent_by_model": f"the emulator ({emu['revealed_param_share']:.1%} of the LM's parameters, "
                                     "declared 'lm_weights') once per party, the global adapters each round",
                    "epsilon": dp["epsilon"] if dp else None, "delta": dp["delta"] if dp else None,
                    "note": ("party-level DP: Flower's server-side fixed clipping (clip "
                             f"{c.dp_clip}, noise multiplier {c.dp_noise}, secure noise), Opacus RDP accountant"
                             if dp else "no DP: adapters trained on private records (ε unbounded)")},
        "compute": {"wall_seconds": round(wall, 3), "round_seconds": [r["seconds"] for r in rounds],
                    "emulator_seconds": emu["seconds"],
                    "peak_rss_mb_model_party": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
        "env": {"silobridge": __version__},
    }


def summarise_fusion(settings: FedSettings, rows: list[dict], out: Path, engine: str, wall: float) -> dict[str, Any]:
    """lm-fusion's result: per party and across parties (mean, worst) the SM's utility alone, with each LM
    as the teacher and with the fusion; each LM's own utility; the weights each party gave the LMs."""
    row, lms = rows[-1], settings.strategy.lms
    parties = row["parties"]
    names = ["alone"] + [f"teacher:lm{i}" for i in range(len(lms))] + ["teacher:fused"]

    def stats(name: str, key: str) -> dict[str, float]:
        vals = [p["evaluation"][f"{name}.{key}"] for p in parties.values() if f"{name}.{key}" in p["evaluation"]]
        return {"mean": float(np.mean(vals)), "worst": float(np.min(vals))} if vals else {}
    rows_out = {n: {key: stats(n, key) for key in ("accuracy", "macro_f1", "auc")} for n in names}
    first = parties.get("0", {}).get("evaluation", {})
    lm_alone = {spec: {k.split(".", 1)[1]: v for k, v in first.items() if k.startswith(f"lm{i}.")}
                for i, spec in enumerate(lms)}
    head = header(settings, out, engine)
    val_sent = sum(int(v.get("val", 0)) for v in head["parties"].values()) if settings.strategy.weighting == \
        "validation" else 0
    return head | {
        "rounds": [{"round": 1, "seconds": row["seconds"], "failed": row["failed"],
                    "bytes_model_to_parties": row["bytes_model_to_parties"],
                    "bytes_parties_to_model": row["bytes_parties_to_model"],
                    "parties": {p: {k: v for k, v in r["evaluation"].items()} | r["quality"]
                                for p, r in parties.items()}}],
        "sm": rows_out,
        "final": rows_out["teacher:fused"],
        "references": {"alone": rows_out["alone"], "lm_zero_shot": lm_alone},
        "weights": {p: {k: v for k, v in r["quality"].items() if k.startswith("weight_")} for p, r in parties.items()},
        "lms": row["model"].get("lms", []),
        "communication": {"bytes_total": row["bytes_model_to_parties"] + row["bytes_parties_to_model"]},
        "privacy": {"sent_by_parties": "validation and test metrics; party 0 the test texts ('evaluation_records')"
                                       + ("; every party its validation texts ('validation_records')"
                                          if val_sent else ""),
                    "validation_records_sent": val_sent, "epsilon": None,
                    "note": "the LMs see public texts (and the declared records); the SMs are trained on private "
                            "records and stay in their silos"},
        "compute": {"wall_seconds": round(wall, 3),
                    "peak_rss_mb_model_party": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
        "env": {"silobridge": __version__},
    }
