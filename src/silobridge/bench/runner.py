"""Run one strategy: build the data silo, link it to the model party (in this process or over HTTP),
fit, evaluate on the test split, and write ``result.json`` (atomically, last) next to both parties'
ledgers (``ledger.jsonl``: the data party's; ``ledger.model.jsonl``: the model party's)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import time
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from silobridge import __version__, progress
from silobridge.bench.audit import Auditor
from silobridge.bench.leakage import (canary_exposure, deployed_sm, extraction, label_extraction, privacy_fields,
                                      sm_membership, watermark)
from silobridge.bench.metrics import utility
from silobridge.boundary import Config, Entry, Ledger, TextBatch, expect
from silobridge.configs import from_dict, to_dict
from silobridge.data import load_table, make_splits
from silobridge.data.loaders import load_bundled
from silobridge.data.tabular import load_tabular, row_index
from silobridge.data.task import Splits
from silobridge.errors import ConfigError
from silobridge.models.device import resolve
from silobridge.parties import DataParty
from silobridge.parties.model_server import ModelServer, entry_key
from silobridge.models.sm import build_sm
from silobridge.settings import RunConfig, SMKind, TaskKind
from silobridge.strategies import get
from silobridge.strategies.base import check_kind
from silobridge.transports import InProcessTransport, Transport

RESULT = "result.json"


def load_splits(cfg: RunConfig) -> Splits:
    d = cfg.data
    labelled = cfg.task.labelled  # domain text needs no label column
    if cfg.task is TaskKind.TABULAR:  # rows serialised as text, the schema in the task spec
        task, pool, test = load_tabular(d.path, d.label_col, d.feature_cols, d.row_template, d.test_path)
        source = d.path or "bundled:credit-default"
    elif d.path is None or d.path.startswith("bundled:"):
        name = d.path or "bundled:reviews"
        task, pool, test = load_bundled(name)
        source = name
    else:
        task, pool = load_table(d.path, d.text_col, d.label_col, need_labels=labelled)
        test = None
        if d.test_path:
            _, test = load_table(d.test_path, d.text_col, d.label_col, need_labels=labelled)
        source = d.path
    splits = make_splits(task, pool, test, n_private=d.n_private, n_val=d.n_val, n_public=d.n_public,
                         n_test=d.n_test, seed=cfg.seed, source=source, ngram=cfg.policy.ngram,
                         need_classes=labelled)
    if d.evaluate_on == "validation":  # choosing a default: the test records are not looked at
        if not len(splits.val):
            raise ConfigError("data.evaluate_on=validation but data.n_val is 0", where="data.n_val",
                              fix="set data.n_val to the number of validation records to evaluate on")
        splits = dataclasses.replace(splits, test=splits.val)
    return splits


CALIBRATION_TEXTS = 200  # public texts on which the label-extraction audit removes the LM's label bias

RESOURCE_KEYS = {"lm": ("threads", "cache")}  # how fast a run goes, not what it computes: not in the digest


def label_budget(cfg: RunConfig, splits: Splits) -> dict[str, int]:
    """Labels a run may use, by where they went; 'total' is what tables report as its label budget."""
    if not cfg.task.labelled:
        return {"private": 0, "validation": 0, "task_design": 0, "total": 0}
    spent = {"private": len(splits.private), "validation": len(splits.val), "task_design": splits.task.design_labels}
    return spent | {"total": sum(spent.values())}


def config_digest(strategy: str, cfg: dict[str, Any]) -> str:
    """Identity of a run for resume: the resolved config, less resource settings (``RESOURCE_KEYS``)."""
    cfg = dict(cfg)
    for section, keys in RESOURCE_KEYS.items():
        if isinstance(cfg.get(section), dict):
            cfg[section] = {k: v for k, v in cfg[section].items() if k not in keys}
    return hashlib.sha256(json.dumps([strategy, cfg], sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Remote:
    """Where the model party runs when it is not in this process: its URL, the API key, and the CA
    certificate to trust (for a self-signed TLS certificate)."""

    url: str
    api_key: str
    ca_cert: str | None = None


def connect(cfg: RunConfig, remote: Remote | None) -> Transport:
    """The transport to the model party: a server in this process (the default), or HTTP."""
    if remote is None:
        return InProcessTransport(ModelServer(cfg.lm, cfg.policy))
    from silobridge.transports.http_client import HttpTransport

    return HttpTransport(remote.url, remote.api_key, verify=remote.ca_cert or True)


def ledgers_agree(ours: list[Entry], theirs: list[dict]) -> bool:
    """Both parties' ledgers hold the same entries (sequence, parties, op, kind, bytes, sha256)."""
    return [entry_key(asdict(e)) for e in ours] == [entry_key(e) for e in theirs]


def membership(cfg: RunConfig, side: Any, data: DataParty, splits: Splits) -> dict[str, Any] | None:
    """The auditor's membership inference on the data party's deployed SM (``None``: off, or no local SM)."""
    sm = deployed_sm(side)
    if not cfg.audit.mia or not cfg.task.labelled or sm is None or len(data.private) < 2 \
            or len(splits.test) < 4:
        return None
    k = len(splits.task.label_names)
    refs = cfg.audit.mia_references
    if refs < 0:
        refs = 0 if cfg.sm.kind is SMKind.ENCODER else 4  # an encoder reference would be a fine-tuning
    return sm_membership(sm, lambda s: build_sm(cfg.sm, k, s, splits.task.table), data.private, splits.test, k,
                         cfg.audit, cfg.seed, refs)


def run(strategy: str, cfg: RunConfig, out: str | Path, remote: Remote | None = None) -> dict[str, Any]:
    """Run ``strategy`` under ``cfg``; returns the result dict also written to ``out/result.json``.
    The model party runs in this process unless ``remote`` names a model-party service."""
    t_start = time.perf_counter()
    out = Path(out)
    spec = get(strategy)
    scfg = from_dict(spec.Config, cfg.strategy, prefix="strategy.")  # validate before any work
    check_kind(spec, cfg.task)
    splits = load_splits(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT).unlink(missing_ok=True)  # a stale result must not survive a failed rerun

    # 1. the data silo, and its only link to the model party: what the model side needs travels in
    #    the 'open' carrier (strategy, public task metadata, protocol parameters, seed)
    import torch

    torch.set_num_threads(cfg.lm.threads)
    lm_cfg = cfg  # the config stays as asked (its digest too); what the LMs run in may differ
    if cfg.lm.dtype == "auto" and spec.auto_float32 and remote is None:
        lm_cfg = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, dtype="float32"))
    transport = connect(lm_cfg, remote)
    ledger = Ledger(out / "ledger.jsonl")
    params = {k: v for k, v in to_dict(scfg).items() if k in spec.model_params}
    hello = {"strategy": spec.name, "kind": cfg.task.value, "task": asdict(splits.task), "params": params,
             "seed": cfg.seed}
    declared = spec.exposes | ({"evaluation_records"} if spec.model_lms else frozenset())
    placement = resolve(lm_cfg.lm.dtype, cfg.lm.device)  # the data party's own LMs (an emulator) run like this
    data = DataParty(splits, cfg.sm, cfg.policy, transport, ledger, hello, declared=frozenset(declared),
                     canaries=cfg.data.canaries, canary_repeats=cfg.data.canary_repeats, seed=cfg.seed,
                     placement=placement)
    auditor = Auditor(data.secrets, data.private.texts + data.val.texts + splits.test.texts, cfg.policy.ngram,
                      fingerprint=row_index(splits.task))  # a table's records: rows, exact or near-exact
    data.gate.observers.append(auditor)
    view = spec.observer(scfg) if cfg.audit.inversion else None  # a strategy's own attack (split: inversion)
    if view is not None:
        data.gate.observers.append(view)

    # 2. the data side trains (the model side answers its calls), then serves the inference inputs
    side = spec.DataSide(scfg, cfg.task)
    proba, t_pred = None, 0.0
    eval_texts = splits.test.texts[:cfg.data.n_lm_eval]
    lm_rows: dict[str, Any] = {}
    try:
        with data.working():
            t0 = time.perf_counter()
            side.fit(data)
            t_fit = time.perf_counter() - t0
            if cfg.task.labelled:
                data.admit(splits.test.texts, "inference_records")
                t1 = time.perf_counter()
                proba = side.predict_proba(data, splits.test.texts)
                t_pred = time.perf_counter() - t1
            wait = data.model.wait_seconds
            # 3. evaluation: the data silo's LMs here; the model party's LMs by the model party, on
            #    texts sent under the declared 'evaluation_records' exposure
            if eval_texts:
                lm_rows = side.evaluate(eval_texts, data)
                if spec.model_lms:
                    data.admit(eval_texts, "evaluation_records")
                    batch = TextBatch(eval_texts, purpose="evaluation", exposure="evaluation_records")
                    lm_rows |= expect(data.model.call("evaluate", batch), Config).values
        canary = None
        if cfg.audit.exposure and data.secrets and spec.model_lms and data.model.session:
            canary = canary_exposure(lambda req: transport.audit(data.model.session, req), data.secrets,
                                     cfg.audit.exposure_references, cfg.seed)
        received = {k: v for k, v in side.language_models().items() if k == "emulator"}  # as it came, untuned
        extract = None
        if cfg.audit.extraction and received and data.model.session and eval_texts:
            extract = extraction(lambda req: transport.audit(data.model.session, req), received, eval_texts)
        labels_x, sm = None, deployed_sm(side)  # an SM deployed beside an LM it queried: how closely it copies it
        if cfg.audit.extraction and sm is not None and data.model.session and eval_texts and cfg.task.labelled:
            labels_x = label_extraction(lambda req: transport.audit(data.model.session, req), sm, eval_texts,
                                        splits.public[:CALIBRATION_TEXTS])
        marks = None
        if cfg.audit.watermark and auditor.generated and data.model.session:
            marks = watermark(lambda req: transport.audit(data.model.session, req), auditor.generated,
                              splits.public, cfg.audit.watermark_z)
        attacked = view.attack(splits.test.texts, splits.public[:cfg.audit.inversion_texts], cfg.seed + 1) \
            if view is not None else None
        data.model.close()
        sid = data.model.session
        theirs, model_report = (transport.ledger(sid), transport.report(sid)) if sid else ([], {})
    finally:
        transport.close()
    util = utility(splits.test.labels, proba, len(splits.task.label_names)) if proba is not None else {}
    if "deployed" in lm_rows:
        util |= {"perplexity": lm_rows["deployed"]["perplexity"],
                 "next_token_accuracy": lm_rows["deployed"]["next_token_accuracy"]}
    audit_s = sum(x.pop("seconds") for x in (canary, extract, labels_x, marks, attacked) if x)
    wall = time.perf_counter() - t_start - audit_s
    mia = membership(cfg, side, data, splits)
    audit_s += mia.pop("seconds") if mia else 0.0
    (out / "ledger.model.jsonl").write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in theirs))

    cfg_dict = to_dict(cfg) | {"strategy": to_dict(scfg)}
    queries = model_report.get("lm_queries", {"calls": 0, "tokens_in": 0, "tokens_out": 0, "cached": 0})
    model_s = float(model_report.get("busy_seconds", 0.0))
    result = {
        "strategy": strategy,
        "task": splits.task.name,
        "task_kind": cfg.task.value,
        "seed": cfg.seed,
        "config": cfg_dict,
        "config_digest": config_digest(strategy, cfg_dict),
        "transport": {"kind": transport.kind, "ledgers_agree": ledgers_agree(ledger.entries, theirs),
                      "model_entries": len(theirs)},
        "objectives": {
            "utility": util,
            "communication": {
                "bytes_data_to_model": ledger.bytes_between("data", "model"),
                "bytes_model_to_data": ledger.bytes_between("model", "data"),
                "messages": len(ledger.entries),
            },
            "lm_queries": queries,
            # every label the run could use: the private and validation records' and those spent designing
            # the task's prompt (domain-lm uses no label)
            "labels": label_budget(cfg, splits),
            "privacy": {
                "epsilon": None,
                "delta": None,
                "canary_hits": auditor.canary_hits,
                "raw_record_hits": len(auditor.records_seen),
                "declared_exposures": len(auditor.records_declared),
                "exposures": auditor.exposure_counts(),
                # PII entities the data party's egress sanitiser masked (null: policy.sanitize off)
                "pii_masked": data.sanitiser.report()["entities_masked"] if data.sanitiser else None,
                # share of the test texts' tokens the model party recovers from what crossed (null: no attack)
                "token_recovery": attacked["recovery"] if attacked else None,
            } | privacy_fields(mia, canary),
            "model_leakage": auditor.model_leakage(float(model_report.get("lm_param_share_exact", 0.0)))
            | {"extraction_agreement": extract["agreement"]["emulator"] if extract else None,
               # the deployed SM's top label vs the LM's on held-out texts (null: no SM beside an LM)
               "extraction_label_agreement": labels_x["agreement"] if labels_x else None,
               # share of the LM-written texts the data party received that the LM owner detects as its own
               "watermark_detected": marks["whole"]["generated_detected"] if marks else None},
            "compute": {
                "data_party_seconds": round(t_fit + t_pred - wait, 3),
                "model_party_seconds": round(model_s, 3),
                "fit_seconds": round(t_fit, 3),
                "predict_seconds": round(t_pred, 3),
                "wait_seconds": round(wait, 3),  # the data party waiting on calls (model time + transport)
                "wall_seconds": round(wall, 3),  # the whole run, evaluation included, the audit's attacks not
                "audit_seconds": round(audit_s, 3),
                # where that time went: each party's tracked loops (the model party's as it reported them)
                "phase_seconds": progress.phase_seconds(data.phases)
                | {f"model: {k}": v for k, v in model_report.get("phase_seconds", {}).items()},
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "model_peak_rss_mb": model_report.get("peak_rss_mb"),
            },
        },
        "splits": {"private": len(splits.private), "val": len(splits.val), "public": len(splits.public),
                   "test": len(splits.test), "canaries": len(data.secrets)},
        "report": side.report | ({"lm_eval": lm_rows} if lm_rows else {}) | ({"membership": mia} if mia else {})
        | ({"canary_exposure": canary} if canary else {}) | ({"extraction": extract} if extract else {})
        | ({"label_extraction": labels_x} if labels_x else {})
        | ({"sanitisation": data.sanitiser.report()} if data.sanitiser else {})
        | ({"watermark": marks} if marks else {}) | ({view.name: attacked} if attacked else {}),
        "env": {"silobridge": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "data_party": {"device": str(placement[0]), "dtype": str(placement[1]).removeprefix("torch.")},
                "model_party": {k: model_report[k] for k in ("device", "dtype") if k in model_report}},
    }
    eps = [e.epsilon for e in ledger.entries if e.epsilon is not None]
    if eps:
        result["objectives"]["privacy"]["epsilon"] = max(eps)
        result["objectives"]["privacy"]["delta"] = max(e.delta for e in ledger.entries if e.delta is not None)
    tmp = out / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / RESULT)  # the result appears only when complete
    return result
