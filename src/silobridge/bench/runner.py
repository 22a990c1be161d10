"""Run one strategy: build the silos, connect them through a ledgered channel, fit, evaluate on the
test split, and write ``result.json`` (atomically, last) next to ``ledger.jsonl``."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

from silobridge import __version__, progress
from silobridge.bench.audit import Auditor
from silobridge.bench.metrics import utility
from silobridge.boundary import InProcessChannel, Ledger
from silobridge.configs import from_dict, to_dict
from silobridge.data import load_reviews, load_table, make_splits
from silobridge.data.task import Splits
from silobridge.models.causal import perplexity
from silobridge.parties import DataParty, ModelParty
from silobridge.settings import RunConfig, TaskKind
from silobridge.strategies import get
from silobridge.strategies.base import check_kind

RESULT = "result.json"


def load_splits(cfg: RunConfig) -> Splits:
    d = cfg.data
    labelled = cfg.task is TaskKind.CLASSIFY  # domain text needs no label column
    if d.path is None:
        task, pool, test = load_reviews()
        source = "bundled reviews"
    else:
        task, pool = load_table(d.path, d.text_col, d.label_col, need_labels=labelled)
        test = None
        if d.test_path:
            _, test = load_table(d.test_path, d.text_col, d.label_col, need_labels=labelled)
        source = d.path
    return make_splits(task, pool, test, n_private=d.n_private, n_val=d.n_val, n_public=d.n_public,
                       n_test=d.n_test, seed=cfg.seed, source=source, ngram=cfg.policy.ngram,
                       need_classes=labelled)


RESOURCE_KEYS = {"lm": ("threads", "cache")}  # how fast a run goes, not what it computes: not in the digest


def config_digest(strategy: str, cfg: dict[str, Any]) -> str:
    """Identity of a run for resume: the resolved config, less resource settings (``RESOURCE_KEYS``)."""
    cfg = dict(cfg)
    for section, keys in RESOURCE_KEYS.items():
        if isinstance(cfg.get(section), dict):
            cfg[section] = {k: v for k, v in cfg[section].items() if k not in keys}
    return hashlib.sha256(json.dumps([strategy, cfg], sort_keys=True).encode()).hexdigest()[:16]


def run(strategy: str, cfg: RunConfig, out: str | Path) -> dict[str, Any]:
    """Run ``strategy`` under ``cfg``; returns the result dict also written to ``out/result.json``."""
    t_start = time.perf_counter()
    progress.reset_phases()
    out = Path(out)
    cls = get(strategy)
    scfg = from_dict(cls.Config, cfg.strategy, prefix="strategy.")  # validate before any work
    check_kind(cls, cfg.task)
    splits = load_splits(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT).unlink(missing_ok=True)  # a stale result must not survive a failed rerun

    # 1. the silos and the only link between them
    ledger = Ledger(out / "ledger.jsonl")
    channel = InProcessChannel(ledger, declared=cls.exposes)
    model = ModelParty(splits.task, cfg.lm, cfg.policy)
    data = DataParty(splits, cfg.sm, cfg.policy, channel, canaries=cfg.data.canaries, seed=cfg.seed)
    channel.connect(model)
    channel.connect(data)
    auditor = Auditor(data.secrets, data.private.texts + data.val.texts + splits.test.texts, cfg.policy.ngram)
    channel.observers.append(auditor)

    # 2. the strategy installs its operations on each side, then trains
    import torch

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.lm.threads)
    strat = cls(scfg, kind=cfg.task)
    model.ops, data.ops = strat.model_ops(), strat.data_ops()
    t0 = time.perf_counter()
    strat.fit(data)
    t_fit = time.perf_counter() - t0

    # 3. classify: inference inputs arrive at the data party; the deployed predictor answers
    proba, t_pred = None, 0.0
    if cfg.task is TaskKind.CLASSIFY:
        data.admit(splits.test.texts)
        t1 = time.perf_counter()
        proba = strat.predict_proba(data, splits.test.texts)
        t_pred = time.perf_counter() - t1
    model_s = channel.busy_seconds.get("model", 0.0)

    # 4. evaluation only: causal LMs the strategy deployed, on held-out private text
    lm_rows = {}
    eval_texts = splits.test.texts[:cfg.data.n_lm_eval]
    for label, lm in (strat.language_models(data, model).items() if eval_texts else []):
        lm_rows[label] = perplexity(lm, eval_texts, model=lm.model)
    util = utility(splits.test.labels, proba, len(splits.task.label_names)) if proba is not None else {}
    if "deployed" in lm_rows:
        util |= {"perplexity": lm_rows["deployed"]["perplexity"],
                 "next_token_accuracy": lm_rows["deployed"]["next_token_accuracy"]}

    cfg_dict = to_dict(cfg) | {"strategy": to_dict(scfg)}
    result = {
        "strategy": strategy,
        "task": splits.task.name,
        "task_kind": cfg.task.value,
        "seed": cfg.seed,
        "config": cfg_dict,
        "config_digest": config_digest(strategy, cfg_dict),
        "objectives": {
            "utility": util,
            "communication": {
                "bytes_data_to_model": ledger.bytes_between("data", "model"),
                "bytes_model_to_data": ledger.bytes_between("model", "data"),
                "messages": len(ledger.entries),
            },
            "lm_queries": {"calls": model.meter.calls + model.meter.cached, "tokens_in": model.meter.tokens_in,
                           "tokens_out": model.meter.tokens_out, "cached": model.meter.cached},
            "privacy": {
                "epsilon": None,
                "delta": None,
                "canary_hits": auditor.canary_hits,
                "raw_record_hits": len(auditor.records_seen),
                "declared_exposures": len(auditor.records_declared),
                "exposures": {k: dict(v) for k, v in auditor.exposures.items()},
            },
            "model_leakage": auditor.model_leakage(model.lm.parameters() if model.lm_loaded else None),
            "compute": {
                "data_party_seconds": round(t_fit + t_pred - model_s, 3),
                "model_party_seconds": round(model_s, 3),
                "fit_seconds": round(t_fit, 3),
                "predict_seconds": round(t_pred, 3),
                "wall_seconds": round(time.perf_counter() - t_start, 3),  # the whole run, evaluation included
                "phase_seconds": progress.phase_seconds(),  # where that time went (tracked loops, this process)
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            },
        },
        "splits": {"private": len(splits.private), "val": len(splits.val), "public": len(splits.public),
                   "test": len(splits.test), "canaries": len(data.secrets)},
        "report": strat.report | ({"lm_eval": lm_rows} if lm_rows else {}),
        "env": {"silobridge": __version__, "python": platform.python_version(), "torch": torch.__version__},
    }
    eps = [e.epsilon for e in ledger.entries if e.epsilon is not None]
    if eps:
        result["objectives"]["privacy"]["epsilon"] = max(eps)
        result["objectives"]["privacy"]["delta"] = max(e.delta for e in ledger.entries if e.delta is not None)
    tmp = out / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / RESULT)  # the result appears only when complete
    return result
