"""The shared table: every registered strategy runs end to end on tiny models, and its result holds
the whole results contract."""
import dataclasses
import json

import pytest

from silobridge.bench.runner import run
from silobridge.settings import SMKind
from silobridge.strategies import all_strategies

CONTRACT = {
    "utility": ["accuracy", "macro_f1"],
    "communication": ["bytes_data_to_model", "bytes_model_to_data", "messages"],
    "lm_queries": ["calls", "tokens_in", "tokens_out"],
    "privacy": ["epsilon", "canary_hits", "raw_record_hits", "declared_exposures"],
    "compute": ["data_party_seconds", "model_party_seconds", "peak_rss_mb"],
}


@pytest.mark.parametrize("name", sorted(all_strategies()))
@pytest.mark.parametrize("sm", ["tfidf", "encoder"])
def test_every_strategy_runs_on_tiny_models(name, sm, small_cfg, tiny_sm_dir, tmp_path):
    sm_cfg = dataclasses.replace(small_cfg.sm, kind=SMKind(sm), path=tiny_sm_dir, epochs=1)
    cfg = dataclasses.replace(small_cfg, sm=sm_cfg)
    result = run(name, cfg, tmp_path)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert {"strategy", "task", "seed", "config"} <= set(on_disk)
    for section, keys in CONTRACT.items():
        for key in keys:
            assert key in on_disk["objectives"][section], f"{section}.{key} missing"
    u = on_disk["objectives"]["utility"]
    assert 0.0 <= u["accuracy"] <= 1.0
    p = on_disk["objectives"]["privacy"]
    assert p["canary_hits"] == 0
    ledger = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    c = on_disk["objectives"]["communication"]
    assert c["messages"] == len(ledger)
    assert c["bytes_data_to_model"] == sum(e["bytes"] for e in ledger if e["sender"] == "data")
    assert c["bytes_model_to_data"] == sum(e["bytes"] for e in ledger if e["sender"] == "model")


def test_what_each_slice_strategy_sends(small_cfg, tmp_path):
    n_test, n_public = small_cfg.data.n_test, small_cfg.data.n_public
    only = run("sm-only", small_cfg, tmp_path / "a")["objectives"]
    assert only["communication"]["messages"] == 0 and only["lm_queries"]["calls"] == 0

    zs = run("lm-zero-shot", small_cfg, tmp_path / "b")["objectives"]
    assert zs["lm_queries"]["calls"] == n_test
    assert zs["privacy"]["declared_exposures"] == zs["privacy"]["raw_record_hits"] > 0.9 * n_test
    assert zs["privacy"]["exposures"] == {"inference_records": n_test}

    dp = run("distill-public", small_cfg, tmp_path / "c")["objectives"]
    assert dp["lm_queries"]["calls"] == n_public
    assert dp["privacy"]["raw_record_hits"] == 0 and dp["privacy"]["declared_exposures"] == 0
    assert dp["communication"]["bytes_model_to_data"] > n_public * 2 * 4  # float32 soft labels at least
