"""The shared table: every registered strategy runs end to end on tiny models, and its result holds
the whole results contract."""
import dataclasses
import json

import pytest

from silobridge.bench.runner import run
from silobridge.settings import SMKind, TaskKind
from silobridge.boundary import NoCanary
from silobridge.errors import ConfigError
from silobridge.strategies import all_strategies

CONTRACT = {
    "utility": ["accuracy", "macro_f1"],
    "communication": ["bytes_data_to_model", "bytes_model_to_data", "messages"],
    "lm_queries": ["calls", "tokens_in", "tokens_out"],
    "privacy": ["epsilon", "canary_hits", "raw_record_hits", "declared_exposures", "mia_auc", "mia_tpr_at_1pct_fpr",
                "canary_exposure", "token_recovery"],
    "compute": ["data_party_seconds", "model_party_seconds", "wall_seconds", "phase_seconds", "peak_rss_mb"],
    "model_leakage": ["extraction_agreement", "extraction_label_agreement", "watermark_detected"],
}


# options that keep the tiny runs fast (the full-vocabulary distillation dominates otherwise)
FAST = {"emulator": {"distill_steps": 3}, "offsite-tuning": {"distill_steps": 3}, "proxy-tuning": {"distill_steps": 3},
        "dp-offsite-tuning": {"distill_steps": 3, "dp_epochs": 1, "noise_seed": 0},
        "speculative": {"distill_steps": 3, "prompts": 3, "max_new_tokens": 8},
        "dp-synthetic": {"cut_bottom": 1, "cut_top": 1, "distill_steps": 2, "per_class": 4, "gen_epochs": 1,
                         "min_words": 0, "max_new_tokens": 8, "noise_seed": 0},
        "synthetic": {"per_class": 4, "max_new_tokens": 16, "noise_seed": 0},
        "split": {"noise_seed": 0, "max_tokens": 32},
        "synthetic-rows": {"per_class": 2, "max_new_tokens": 16}}  # DP noise seeded: two runs compared
SM_USERS = ["sm-only", "distill-public"]  # strategies that train the data party's SM
TABLE = [(n, "tfidf") for n, c in sorted(all_strategies().items()) if TaskKind.CLASSIFY in c.kinds] + \
    [(n, "encoder") for n in SM_USERS]


def ledger_rows(path):
    """A ledger's entries as both runs must agree on them; the 'open' reply names the session (a fresh
    random id), so its digest is left out."""
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return [(e["seq"], e["sender"], e["receiver"], e["op"], e["kind"], e["bytes"],
             None if e["op"] == "open.reply" else e["sha256"]) for e in rows]


def assert_same_run(local, remote, local_dir, remote_dir):
    """In-process and over HTTP: same utility, bytes each way, LM bill, privacy counts, strategy report,
    and equal ledgers, each run's two ledgers agreeing entry by entry."""
    assert local["transport"]["kind"] == "in-process" and remote["transport"]["kind"] == "http"
    assert local["transport"]["ledgers_agree"] is True and remote["transport"]["ledgers_agree"] is True
    for section in ("utility", "communication", "lm_queries", "privacy", "model_leakage"):
        assert local["objectives"][section] == remote["objectives"][section], section
    assert local["report"] == remote["report"]
    assert ledger_rows(local_dir / "ledger.jsonl") == ledger_rows(remote_dir / "ledger.jsonl")
    assert ledger_rows(remote_dir / "ledger.model.jsonl") == ledger_rows(remote_dir / "ledger.jsonl")


@pytest.mark.parametrize(("name", "sm"), TABLE)
def test_every_strategy_runs_on_tiny_models(name, sm, small_cfg, tiny_sm_dir, tmp_path, model_service, monkeypatch):
    """Each strategy end to end, with the model party in this process and then in another process
    over HTTP on 127.0.0.1: the two results agree. Each run has a data silo of its own (nothing in
    its cache from the other run)."""
    sm_cfg = dataclasses.replace(small_cfg.sm, kind=SMKind(sm), path=tiny_sm_dir, epochs=1)
    cfg = dataclasses.replace(small_cfg, sm=sm_cfg, strategy=FAST.get(name, {}))
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home-local"))
    result = run(name, cfg, tmp_path)
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home-remote"))
    remote = run(name, cfg, tmp_path / "http", remote=model_service)
    assert_same_run(result, remote, tmp_path, tmp_path / "http")
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert {"strategy", "task", "seed", "config"} <= set(on_disk)
    for section, keys in CONTRACT.items():
        for key in keys:
            assert key in on_disk["objectives"][section], f"{section}.{key} missing"
    u = on_disk["objectives"]["utility"]
    assert 0.0 <= u["accuracy"] <= 1.0
    p = on_disk["objectives"]["privacy"]
    if not all_strategies()[name].exposes & NoCanary.WAIVED:  # private records never cross: no canary either
        assert p["canary_hits"] == 0
    if name in ("sm-only", "distill-public", "synthetic", "router"):  # a deployed SM: the auditor attacks it
        assert 0.0 <= p["mia_auc"] <= 1.0 and on_disk["report"]["membership"]["attacks"]["loss"]["members"] > 0
    else:  # the LM serves the predictions: no local SM to attack (null, never omitted)
        assert p["mia_auc"] is None
    if all_strategies()[name].model_lms:  # the model party deploys an LM: its canary exposure is measured
        audit = on_disk["report"]["canary_exposure"]
        assert audit["canaries"] == small_cfg.data.canaries and audit["candidates"] == 1001
        assert p["canary_exposure"] == audit["lms"]["deployed"]["max"] and 0 <= p["canary_exposure"] <= 10
    else:
        assert p["canary_exposure"] is None
    ext = on_disk["objectives"]["model_leakage"]["extraction_agreement"]
    if name in ("emulator", "offsite-tuning", "dp-offsite-tuning"):  # the data party holds an emulator
        assert 0.0 <= ext <= 1.0 and on_disk["report"]["extraction"]["tokens"] > 0  # how well it copies the LM
    else:
        assert ext is None
    lx = on_disk["objectives"]["model_leakage"]["extraction_label_agreement"]
    if name in ("distill-public", "synthetic", "router"):  # an SM deployed beside the LM it queried
        assert 0.0 <= lx <= 1.0 and on_disk["report"]["label_extraction"]["texts"] == small_cfg.data.n_lm_eval
    else:
        assert lx is None
    if name == "dp-offsite-tuning":  # the adapters' DP-SGD: its epsilon is the run's, under the target
        assert 0 < p["epsilon"] == on_disk["report"]["epsilon_spent"] <= on_disk["report"]["epsilon_target"]
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
    assert zs["lm_queries"]["calls"] == n_test + min(200, n_public)  # + public texts for the calibration bias
    assert zs["privacy"]["declared_exposures"] == zs["privacy"]["raw_record_hits"] > 0.9 * n_test
    assert zs["privacy"]["exposures"]["inference_records"]["texts"] == n_test

    dp = run("distill-public", small_cfg, tmp_path / "c")["objectives"]
    assert dp["lm_queries"]["calls"] == n_public
    assert dp["privacy"]["raw_record_hits"] == 0 and dp["privacy"]["declared_exposures"] == 0
    assert dp["communication"]["bytes_model_to_data"] > n_public * 2 * 4  # float32 soft labels at least


DOMAIN_LM = [n for n, c in all_strategies().items() if TaskKind.DOMAIN_LM in c.kinds]


def test_domain_lm_strategies():
    assert set(DOMAIN_LM) >= {"lm-zero-shot", "lm-finetune-private", "emulator", "offsite-tuning", "dp-synthetic"}


@pytest.mark.parametrize("name", DOMAIN_LM)
def test_every_domain_lm_strategy_runs_on_tiny_models(name, small_cfg, tmp_path, model_service, monkeypatch):
    cfg = dataclasses.replace(small_cfg, task=TaskKind.DOMAIN_LM, strategy=FAST.get(name, {}))
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home-local"))  # each run: a data silo of its own
    result = run(name, cfg, tmp_path)
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home-remote"))
    remote = run(name, cfg, tmp_path / "http", remote=model_service)
    assert_same_run(result, remote, tmp_path, tmp_path / "http")
    u = result["objectives"]["utility"]
    assert result["task_kind"] == "domain-lm" and "accuracy" not in u
    assert u["perplexity"] > 1 and 0 <= u["next_token_accuracy"] <= 1
    assert result["report"]["lm_eval"]["deployed"]["perplexity"] == u["perplexity"]
    p = result["objectives"]["privacy"]
    if "inference_records" not in all_strategies()[name].exposes:
        assert "inference_records" not in p["exposures"]  # nothing is classified: test texts stay home
    if name == "speculative":  # the LM's greedy output, fewer LM passes; the prompts declared
        g = result["report"]["generation"]
        assert g["tokens"] == g["lm_alone_forward_passes"] and g["lm_forward_passes"] <= g["tokens"]
        assert p["exposures"]["inference_records"]["texts"] == g["prompts"]
    ledger = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    if name == "lm-zero-shot":  # the reference "LM alone": only the evaluation texts cross, declared
        assert [e["op"] for e in ledger if e["sender"] == "data"] == ["open", "evaluate", "close"]
        assert list(p["exposures"]) == ["evaluation_records"]
        assert p["exposures"]["evaluation_records"]["texts"] == cfg.data.n_lm_eval
        assert result["objectives"]["lm_queries"]["calls"] == 0
    if name in ("lm-finetune-private", "dp-synthetic"):
        assert ("data", "tune-lm") in [(e["sender"], e["op"]) for e in ledger]
    if name == "dp-synthetic":  # the DP samples cross as declared DP outputs, with their ε on the carrier
        dp = p["exposures"]["dp_outputs"]
        assert dp["carriers"] == dp["dp_carriers"] == 1 and dp["texts"] > 0 and 0 <= dp["records"] <= dp["texts"]
        assert [e["epsilon"] for e in ledger if e["exposure"] == "dp_outputs"] == [p["epsilon"]]


def test_classify_only_strategy_refuses_domain_lm(small_cfg, tmp_path):
    from silobridge.errors import ConfigError

    cfg = dataclasses.replace(small_cfg, task=TaskKind.DOMAIN_LM)
    with pytest.raises(ConfigError, match="cannot run task 'domain-lm'") as err:
        run("distill-public", cfg, tmp_path)
    assert "offsite-tuning" in err.value.fix
    assert not (tmp_path / "result.json").exists()


def test_emulator_reveals_a_declared_share_and_offsite_plugs_adapters(small_cfg, tmp_path):
    cfg = dataclasses.replace(small_cfg, strategy={"distill_steps": 2, "bottom": 1, "top": 1, "stride": 2})
    emu = run("emulator", cfg, tmp_path / "e")
    leak = emu["objectives"]["model_leakage"]
    assert 0 < leak["lm_param_share_exact"] <= leak["lm_param_share_declared"] < 1
    exposed = emu["objectives"]["privacy"]["exposures"]
    assert list(exposed) == ["lm_weights"] and exposed["lm_weights"]["carriers"] == 1
    assert set(emu["report"]["lm_eval"]) == {"emulator", "deployed"}
    assert emu["objectives"]["lm_queries"]["calls"] == 0  # inference stays in the data silo

    off = run("offsite-tuning", cfg, tmp_path / "o")
    rows = off["report"]["lm_eval"]
    assert set(rows) == {"lm", "emulator", "emulator+adapters", "deployed"}
    assert rows["deployed"]["perplexity"] != rows["lm"]["perplexity"]  # the adapters changed the LM
    assert off["objectives"]["utility"]["perplexity"] == rows["deployed"]["perplexity"]
    ledger = [json.loads(x) for x in (tmp_path / "o" / "ledger.jsonl").read_text().splitlines()]
    kinds = [(e["sender"], e["op"], e["kind"]) for e in ledger]
    assert ("model", "emulator.reply", "weights") in kinds and ("data", "plug", "weights") in kinds
    assert off["objectives"]["privacy"]["declared_exposures"] == cfg.data.n_test
    # the adapters were trained on private records: a declared exposure of its own, in the results
    assert off["objectives"]["privacy"]["exposures"]["private_model"]["carriers"] == 1
    plug = next(e for e in ledger if e["op"] == "plug")
    assert plug["exposure"] == "private_model"


def test_int8_emulator_shares_no_exact_tensor(small_cfg, tmp_path):
    cfg = dataclasses.replace(small_cfg, strategy={"distill_steps": 0, "int8": True})
    leak = run("emulator", cfg, tmp_path)["objectives"]["model_leakage"]
    assert leak["lm_param_share_exact"] == 0 and leak["lm_param_share_declared"] > 0


def test_emulator_keeping_more_layers_than_the_lm_has(small_cfg, tmp_path):
    from silobridge.errors import ConfigError

    cfg = dataclasses.replace(small_cfg, strategy={"bottom": 4, "top": 4})
    with pytest.raises(ConfigError, match="LM has only 5"):
        run("emulator", cfg, tmp_path)
    assert not (tmp_path / "result.json").exists()


def test_reverse_distill_tunes_the_lm(small_cfg, tmp_path):
    zs = run("lm-zero-shot", small_cfg, tmp_path / "zs")
    rd = run("reverse-distill", small_cfg, tmp_path / "rd")
    ledger = [json.loads(x) for x in (tmp_path / "rd" / "ledger.jsonl").read_text().splitlines()]
    tune = next(e for e in ledger if e["op"] == "tune")
    assert tune["sender"] == "data" and tune["kind"] == "text"  # public texts + the SM's soft labels
    assert rd["objectives"]["privacy"]["raw_record_hits"] == small_cfg.data.n_test  # only declared inference
    assert rd["objectives"]["privacy"]["declared_exposures"] == small_cfg.data.n_test
    assert rd["objectives"]["utility"]["perplexity"] != zs["objectives"]["utility"]["perplexity"]
    assert rd["report"]["lm_tuning"]["loss_last"] != rd["report"]["lm_tuning"]["loss_first"]


def test_lm_finetune_private_declares_and_counts_what_it_ships(small_cfg, tmp_path):
    r = run("lm-finetune-private", small_cfg, tmp_path)
    p = r["objectives"]["privacy"]
    n_private, n_test = small_cfg.data.n_private, small_cfg.data.n_test
    assert p["exposures"]["private_records"]["texts"] == n_private
    assert p["canary_hits"] == small_cfg.data.canaries  # canaries ride along, and are counted
    assert p["declared_exposures"] >= n_private + n_test - 5  # (records under 5 words are not indexed)


@pytest.mark.parametrize("name", ["lm-zero-shot", "distill-public"])
def test_few_shot_demonstrations_come_from_the_public_pool(name, small_cfg, tmp_path):
    cfg = dataclasses.replace(small_cfg, strategy={"n_shots": 1, "demo_pool": 10})
    r = run(name, cfg, tmp_path)
    ledger = [json.loads(x) for x in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    demos = [e for e in ledger if e["op"] == "demos"]
    assert demos and demos[0]["sender"] == "data" and demos[0]["exposure"] is None  # public texts only
    assert r["config"]["strategy"]["n_shots"] == 1


def test_distilled_emulator_is_reused_from_the_model_party_cache(small_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home"))
    lm = dataclasses.replace(small_cfg.lm, cache=True)
    cfg = dataclasses.replace(small_cfg, lm=lm, strategy={"distill_steps": 3})
    first = run("emulator", cfg, tmp_path / "a")
    second = run("emulator", cfg, tmp_path / "b")
    assert first["report"]["distill_cached"] is False and second["report"]["distill_cached"] is True
    # the very same emulator crossed: same distillation record, same perplexity before the adapters
    assert first["report"]["distill_losses"] == second["report"]["distill_losses"]
    assert first["report"]["lm_eval"]["emulator"] == second["report"]["lm_eval"]["emulator"]
    assert first["config_digest"] == second["config_digest"]


def test_changing_a_filter_does_not_regenerate(small_cfg, tmp_path, monkeypatch):
    """synthetic with lm.cache: a rerun that changes only the data side's agreement filter reuses the DP
    prototype release (no new epsilon, same round-1 request) and the model party serves both rounds of
    generation from its cache."""
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home"))
    lm = dataclasses.replace(small_cfg.lm, cache=True)
    opts = {"per_class": 4, "max_new_tokens": 16}  # DP noise secret (unseeded), as by default
    first = run("synthetic", dataclasses.replace(small_cfg, lm=lm, strategy=opts), tmp_path / "a")
    second = run("synthetic", dataclasses.replace(small_cfg, lm=lm, strategy={**opts, "agreement_keep": 0.9}),
                 tmp_path / "b")
    generated = first["report"]["generated"]
    assert first["objectives"]["lm_queries"]["cached"] == 0 and not first["report"]["prototype"]["release_reused"]
    assert second["report"]["prototype"]["release_reused"]
    assert second["report"]["prototype"]["terms_per_class"] == first["report"]["prototype"]["terms_per_class"]
    assert second["objectives"]["lm_queries"]["cached"] == generated and second["report"]["generated"] == generated
    assert second["objectives"]["lm_queries"]["tokens_out"] == 0  # nothing written anew
    assert second["config"]["strategy"]["agreement_keep"] == 0.9


def test_defaults_can_be_chosen_without_the_test_set(small_cfg, tmp_path):
    """data.evaluate_on=validation: the harness scores the validation records; no test record is
    sent to the model party or evaluated."""
    data = dataclasses.replace(small_cfg.data, evaluate_on="validation")
    r = run("sm-only", dataclasses.replace(small_cfg, data=data), tmp_path)
    assert r["splits"]["test"] == small_cfg.data.n_val and r["config"]["data"]["evaluate_on"] == "validation"
    assert 0 <= r["objectives"]["utility"]["accuracy"] <= 1
    with pytest.raises(Exception, match="data.n_val"):
        run("sm-only", dataclasses.replace(small_cfg, data=dataclasses.replace(data, n_val=0)), tmp_path / "b")


def test_emulator_and_offsite_tuning_share_the_adapters_they_train(small_cfg, tmp_path, monkeypatch):
    """Both train the same adapters on the same emulator with the same records: the second run loads
    them from the data silo's cache (same training record), and says so."""
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home"))
    cfg = dataclasses.replace(small_cfg, lm=dataclasses.replace(small_cfg.lm, cache=True),
                              strategy={"distill_steps": 3})
    first = run("emulator", cfg, tmp_path / "a")
    second = run("offsite-tuning", cfg, tmp_path / "b")
    assert first["report"]["adapters_cached"] is False and second["report"]["adapters_cached"] is True
    assert first["report"]["lora_loss_first_last"] == second["report"]["lora_loss_first_last"]
    assert first["report"]["lm_eval"]["deployed"] == second["report"]["lm_eval"]["emulator+adapters"]
    fresh = dataclasses.replace(cfg, seed=cfg.seed + 1)  # other records: trained anew
    assert run("emulator", fresh, tmp_path / "c")["report"]["adapters_cached"] is False


def test_proxy_tuning_with_alpha_zero_is_the_lm_alone(small_cfg, tmp_path):
    """alpha = 0 removes the emulator's shift: the predictions are lm-zero-shot's (same prompt, same
    calibration on the same public texts)."""
    lm_alone = run("lm-zero-shot", small_cfg, tmp_path / "lm")
    proxy = run("proxy-tuning", dataclasses.replace(small_cfg, strategy={"alpha": 0.0, "distill_steps": 2}),
                tmp_path / "proxy")
    assert proxy["objectives"]["utility"]["accuracy"] == lm_alone["objectives"]["utility"]["accuracy"]
    assert proxy["objectives"]["utility"]["auc"] == pytest.approx(lm_alone["objectives"]["utility"]["auc"], abs=1e-9)
    steered = run("proxy-tuning", dataclasses.replace(small_cfg, strategy={"alpha": 1.0, "distill_steps": 2}),
                  tmp_path / "steered")
    assert steered["report"]["alpha"] == 1.0 and steered["report"]["adapters_cached"] is True  # same adapters


TABULAR = [n for n, c in all_strategies().items() if TaskKind.TABULAR in c.kinds]


def test_tabular_strategies():
    assert set(TABULAR) >= {"sm-only", "lm-zero-shot", "distill-public", "router"}


@pytest.mark.parametrize("name", sorted(TABULAR))
def test_every_tabular_strategy_runs_on_a_tiny_table(name, table_cfg, tmp_path, model_service, monkeypatch):
    """Each strategy that reads tables, on a tiny generated table, in process and over HTTP: the same
    result, the whole contract, and no private row or canary crossing outside a declared exposure."""
    cfg = dataclasses.replace(table_cfg, strategy=FAST.get(name, {}))
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home-local"))
    result = run(name, cfg, tmp_path)
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home-remote"))
    remote = run(name, cfg, tmp_path / "http", remote=model_service)
    assert_same_run(result, remote, tmp_path, tmp_path / "http")
    assert result["task_kind"] == "tabular" and result["task"] == "loans"
    for section, keys in CONTRACT.items():
        for key in keys:
            assert key in result["objectives"][section], f"{section}.{key} missing"
    u, p = result["objectives"]["utility"], result["objectives"]["privacy"]
    assert 0.0 <= u["accuracy"] <= 1.0 and 0.0 <= u["auc"] <= 1.0
    assert p["canary_hits"] == 0
    if not all_strategies()[name].exposes:  # nothing private crosses: no row either
        assert p["raw_record_hits"] == 0
    assert p["raw_record_hits"] == p["declared_exposures"]  # every row that crossed was declared
    if name in ("sm-only", "distill-public", "router", "synthetic-rows"):  # a deployed SM: the auditor attacks it
        assert 0.0 <= p["mia_auc"] <= 1.0


@pytest.mark.parametrize("name", sorted(n for n, c in all_strategies().items() if TaskKind.TABULAR not in c.kinds))
def test_strategies_that_cannot_read_tables_refuse_them(name, table_cfg, tmp_path):
    with pytest.raises(ConfigError, match="cannot run task 'tabular'") as err:
        run(name, table_cfg, tmp_path)
    assert all(n in str(err.value) for n in TABULAR)  # the fix lists those that can
    assert not (tmp_path / "result.json").exists()
