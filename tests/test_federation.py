"""Several data parties on Flower: partitions, carriers in Flower records, fed-distill's math, and a
2-round, 3-party fed-distill on tiny models in Flower's simulation engine."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from silobridge.boundary import Ledger, Metrics, Policy, SoftLabels, TextBatch
from silobridge.boundary.gate import Gate
from silobridge.errors import BoundaryError, ConfigError, DataError
from silobridge.federation.config import FedSettings, Teacher
from silobridge.federation.fed_distill import aggregate, holdout, party_weights, teacher_probs
from silobridge.federation.partition import partition

from conftest import SMALL


def test_partition_is_non_iid_complete_and_reproducible():
    labels = np.repeat(np.arange(4), 50)
    parts, shares = partition(labels, 4, 5, alpha=0.3, seed=1)
    assert sorted(np.concatenate(parts).tolist()) == list(range(200))  # every record at exactly one party
    assert all(len(np.unique(labels[p])) >= 2 for p in parts)
    again, _ = partition(labels, 4, 5, alpha=0.3, seed=1)
    assert all((a == b).all() for a, b in zip(parts, again))
    mix = np.array([np.bincount(labels[p], minlength=4) / len(p) for p in parts])
    assert mix.std(0).mean() > 0.1  # label skew: the parties' class mixes differ
    iid, _ = partition(labels, 4, 5, alpha=1000.0, seed=1)
    assert np.array([np.bincount(labels[p], minlength=4) / len(p) for p in iid]).std(0).mean() < 0.05


def test_quantity_skew_keeps_the_class_mix():
    labels = np.repeat(np.arange(2), 300)
    parts, _ = partition(labels, 2, 4, alpha=1.0, quantity_alpha=0.5, seed=3)
    sizes = [len(p) for p in parts]
    assert max(sizes) > 2 * min(sizes)
    assert all(abs(np.mean(labels[p]) - 0.5) < 0.1 for p in parts if len(p) > 40)


def test_impossible_partition_says_how_to_fix():
    with pytest.raises(DataError, match="federation.alpha|raise data.n_private"):
        partition(np.array([0, 1, 0, 1]), 2, 3, alpha=0.5, seed=0)


def test_holdout_keeps_every_class_for_training():
    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    tr, va = holdout(labels, 0.5, np.random.default_rng(0))
    assert set(labels[tr]) == {0, 1, 2} and len(va) >= 1 and not set(tr) & set(va)


def test_aggregate_weights_and_teacher():
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    w = party_weights("quality", [0.9, 0.3], [10, 10])
    assert w == pytest.approx([0.75, 0.25])
    assert party_weights("size", [0.9, 0.3], [30, 10]) == pytest.approx([0.75, 0.25])
    assert aggregate([a, b], w) == pytest.approx(np.array([[0.75, 0.25]]))
    lm = np.array([[0.5, 0.5]])
    assert teacher_probs(Teacher.BOTH, lm, np.array([[1.0, 0.0]])) == pytest.approx(np.array([[0.75, 0.25]]))
    assert teacher_probs(Teacher.LM, lm, a) is lm and teacher_probs(Teacher.ENSEMBLE, lm, a) is a
    with pytest.raises(BoundaryError, match="same public pool"):
        aggregate([a, np.ones((2, 2)) / 2], np.array([0.5, 0.5]))


def test_records_keep_the_carriers_identity(tmp_path):
    from silobridge.federation.records import pack, unpack

    send = Gate("data", Policy([]), Ledger(tmp_path / "a.jsonl"))
    recv = Gate("model", Policy([]), Ledger(tmp_path / "b.jsonl"))
    soft = SoftLabels(values=np.full((3, 2), 0.5, np.float32), log=False, label_names=["x", "y"])
    content = pack(send, {"soft": soft, "q": Metrics(values={"macro_f1": 0.5})}, "model", "train.distill")
    got = unpack(recv, content, "data", "train.distill")
    assert np.array_equal(got["soft"].values, soft.values) and got["q"].values == {"macro_f1": 0.5}
    ours, theirs = Ledger.read(tmp_path / "a.jsonl"), Ledger.read(tmp_path / "b.jsonl")
    assert [(e.kind, e.bytes, e.sha256) for e in ours] == [(e.kind, e.bytes, e.sha256) for e in theirs]
    rec = content.config_records["soft"]
    rec["payload"] = rec["payload"][:-1] + b"x"  # altered in transit
    with pytest.raises(BoundaryError, match="sha256"):
        unpack(recv, content, "data", "train.distill")


def test_ledger_append_continues_the_sequence(tmp_path):
    first = Ledger(tmp_path / "l.jsonl")
    first.record("data", "model", "op", TextBatch(["a"]), b"abc")
    again = Ledger(tmp_path / "l.jsonl", append=True)
    again.record("data", "model", "op", TextBatch(["b"]), b"abcd")
    assert [e.seq for e in Ledger.read(tmp_path / "l.jsonl")] == [0, 1]


def test_settings_validate_and_round_trip():
    s = FedSettings.from_overrides({"federation": {"parties": 4, "sms": ["tfidf", "encoder"]},
                                    "strategy": {"teacher": "ensemble"}})
    assert FedSettings.from_dict(s.to_dict()).to_dict() == s.to_dict()
    assert s.strategy.teacher is Teacher.ENSEMBLE
    with pytest.raises(ConfigError, match="federation.sms"):
        FedSettings.from_overrides({"federation": {"sms": ["bert"]}})
    with pytest.raises(ConfigError, match="federation.min_parties"):
        FedSettings.from_overrides({"federation": {"parties": 2, "min_parties": 3}})


def fed_settings(tiny_lm_dir, **fed):
    from silobridge.configs import apply_overrides

    flat = apply_overrides({}, SMALL + [f"lm.path={tiny_lm_dir}", "data.n_private=60", "data.n_val=30",
                                        "strategy.n_transfer=20", "strategy.lora_epochs=1"])
    flat["federation"] = {"parties": 3, "rounds": 2, "alpha": 1.0, "timeout": 600} | fed
    return FedSettings.from_overrides(flat)


def test_fed_distill_in_the_simulation_engine_with_a_crash_and_resume(tmp_path, tiny_lm_dir, monkeypatch):
    """2 rounds, 3 parties. Party 1 crashes in round 2: with every party required the federation stops after
    round 1, keeping rounds 0-1; rerun with min_parties=2 it resumes at round 2 alone, which completes
    without party 1, the failure in the result. (Round 2 is the first whose teacher comes from a tuned LM
    and a round-1 aggregate: the full loop runs.)"""
    from silobridge.federation.apps import FAULT
    from silobridge.federation.engine import FederationError, simulate

    out = tmp_path / "fed"
    monkeypatch.setenv(FAULT, "1:2")
    with pytest.raises(FederationError, match="after 2 of 3 rounds.*party 1 crashed"):
        simulate(fed_settings(tiny_lm_dir), out, cpus=2)
    assert [json.loads(x)["round"] for x in (out / "rounds.jsonl").read_text().splitlines()] == [0, 1]
    party2_rows = len((out / "party-2" / "rounds.jsonl").read_text().splitlines())

    result = simulate(fed_settings(tiny_lm_dir, min_parties=2), out, cpus=2)
    assert [r["round"] for r in result["rounds"]] == [0, 1, 2]
    assert len((out / "party-2" / "rounds.jsonl").read_text().splitlines()) == party2_rows + 1  # round 2 only
    last = result["rounds"][2]
    assert set(last["parties"]) == {"0", "2"} and "crashed" in last["failed"]["1"]
    for r in result["rounds"]:
        assert 0 <= r["macro_f1"]["worst"] <= r["macro_f1"]["mean"] <= 1
        assert "accuracy" in r["lm"]  # the LM's utility, measured by party 0 each round
    assert result["rounds"][1]["weights"] and sum(result["rounds"][1]["weights"]) == pytest.approx(1, abs=1e-3)
    assert result["references"]["centralised"]["note"].startswith("privacy-violating")
    assert result["communication"]["ratio_fedavg_lm"] > 1
    assert {p["partition"] for p in result["parties"].values()} == {0, 1, 2}
    assert all(0 <= p["canaries"] <= 3 for p in result["parties"].values())  # each party's own canaries
    check_ledgers(out, 3)
    # a finished federation gives its result again without running anything
    monkeypatch.delenv(FAULT)
    again = simulate(fed_settings(tiny_lm_dir, min_parties=2), out, cpus=2)
    assert again["rounds"] == result["rounds"]
    with pytest.raises(ConfigError, match="other settings"):
        simulate(fed_settings(tiny_lm_dir, alpha=2.0), out, cpus=2)


def check_ledgers(out, parties):
    """Each party's ledger holds what crossed, the model party's mirrors it (kind, bytes, sha256), and of
    the parties' texts only public ones and party 0's declared test texts crossed."""
    model = Ledger.read(out / "model" / "ledger.jsonl")
    for pid in range(parties):
        ours = Ledger.read(out / f"party-{pid}" / "ledger.jsonl")
        assert {e.kind for e in ours} >= {"soft_labels", "metrics", "config"}
        assert {e.sha256 for e in ours} <= {e.sha256 for e in model}
    party_sent = [e for e in model if e.sender != "model" and e.kind == "text"]
    assert {e.exposure for e in party_sent} <= {None, "evaluation_records"}


def test_fed_distill_on_the_deployment_engine(tmp_path, tiny_lm_dir):
    """The same app as real processes over the network on 127.0.0.1; every process stopped afterwards."""
    import psutil

    from silobridge.federation.deploy import deploy

    before = {p.pid for p in psutil.process_iter()}
    out = tmp_path / "dep"
    result = deploy(fed_settings(tiny_lm_dir, rounds=1), out)
    assert result["engine"] == "deployment" and [r["round"] for r in result["rounds"]] == [0, 1]
    assert all(set(r["parties"]) == {"0", "1", "2"} for r in result["rounds"])
    check_ledgers(out, 3)
    time.sleep(1)
    left = [p for p in psutil.process_iter(["pid", "cmdline"]) if p.pid not in before
            and any("flwr" in c or "flower" in c for c in (p.info["cmdline"] or []))]
    assert not left, f"processes left running: {[p.info['cmdline'] for p in left]}"


def test_the_model_party_restores_its_base_lm_each_round(tmp_path, tiny_lm_dir):
    """Each round's tuning starts from the base weights (restored in place, not reloaded)."""
    from silobridge.federation.fed_distill import FedModel, FedParty

    settings = fed_settings(tiny_lm_dir)
    party = FedParty(settings, 0, tmp_path)
    intro = party.introduce()
    model = FedModel(settings, tmp_path)
    model.meet(intro["task"], intro["public"], intro["eval"])
    model.teach([])
    base = model.party.lm.digest()
    res = party.train(0, None, None, None)
    model.teach([(res.soft, res.quality)])  # tunes the LM on the aggregate
    tuned = model.party.lm.digest()
    model.fresh()
    assert tuned != base and model.party.lm.digest() == base


# --- fed-offsite ------------------------------------------------------------------------------------------
def offsite_settings(tiny_lm_dir, strategy=(), **fed):
    from silobridge.configs import apply_overrides

    flat = apply_overrides({}, SMALL + [f"lm.path={tiny_lm_dir}", "data.n_private=60", "data.n_val=30",
                                        "strategy.distill_steps=3", "strategy.distill_texts=8",
                                        "strategy.calibration_texts=10", "strategy.bottom=1", "strategy.top=1",
                                        *strategy])
    flat["federation"] = {"parties": 3, "rounds": 2, "alpha": 1.0, "timeout": 600} | fed
    return FedSettings.from_overrides(flat, name="fed-offsite")


def test_fed_offsite_parties_train_the_global_adapters_and_the_lm_plugs_their_average(tmp_path, tiny_lm_dir):
    """Without Flower: the parties start from the model party's adapters, each moves them with its own
    records, and their FedAvg plugged into the LM changes its scores (round 0: B = 0, the LM unchanged)."""
    from flwr.app import Array, ArrayRecord, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    from silobridge.federation.fed_offsite import OffsiteModel, OffsiteParty, adapters_carrier

    settings = offsite_settings(tiny_lm_dir)
    parties = [OffsiteParty(settings, p, tmp_path) for p in range(2)]
    intro = parties[0].introduce()
    model = OffsiteModel(settings, tmp_path)
    model.meet(intro["task"], intro["public"], intro["eval"])
    start = model.initial_adapters()
    assert start and all(not v.any() for n, v in start.items() if "lora_B" in n)  # the LM unchanged
    base_scores, _ = model.score(start)
    replies = []
    for p in parties:
        p.take_emulator(model.make_emulator())
        w, m = p.train_adapters(1, adapters_carrier(start, settings.strategy.lora))
        assert set(w.tensors) == set(start) and m.values["num-examples"] == len(p.data.private)
        assert any(not np.allclose(w.tensors[n], start[n]) for n in start)
        replies.append(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in w.tensors.items()}),
                                   "metrics": __import__("flwr").app.MetricRecord(m.values)}))
    avg = aggregate_arrayrecords(replies, "num-examples")
    n = [len(p.data.private) for p in parties]
    name = next(iter(start))
    expect_avg = (n[0] * replies[0]["arrays"][name].numpy() + n[1] * replies[1]["arrays"][name].numpy()) / sum(n)
    assert avg[name].numpy() == pytest.approx(expect_avg, abs=1e-6)  # FedAvg weighted by records
    tuned_scores, cal = model.score({k: v.numpy() for k, v in avg.items()})
    assert not np.allclose(tuned_scores.values, base_scores.values)
    u = parties[0].evaluate_lm(tuned_scores, cal)
    assert 0 <= u["accuracy"] <= 1
    with pytest.raises(BoundaryError, match="do not fit the emulator"):
        parties[1].train_adapters(2, adapters_carrier({"nope": np.zeros(3, np.float32)}, settings.strategy.lora))


def test_secure_dp_wrapper_noise_and_epsilon():
    """Flower's DP wrapper with secure noise: the std it adds is z·C/n, unseeded draws differ, and ε falls
    as the noise multiplier rises (Opacus' RDP accountant, sampling rate 1)."""
    from flwr.app import Array, ArrayRecord
    from flwr.serverapp.strategy import FedAvg

    from silobridge.federation.offsite_server import SecureDPFixedClipping, party_epsilon

    zero = ArrayRecord({"w": Array(np.zeros(20000, dtype=np.float32))})
    dp = SecureDPFixedClipping(FedAvg(), noise_multiplier=2.0, clipping_norm=0.3, num_sampled_clients=3)
    a = dp._add_noise_to_aggregated_arrays(zero)["w"].numpy()
    b = dp._add_noise_to_aggregated_arrays(zero)["w"].numpy()
    assert a.std() == pytest.approx(2.0 * 0.3 / 3, rel=0.03) and not np.allclose(a, b)
    seeded = [SecureDPFixedClipping(FedAvg(), 2.0, 0.3, 3, seed=5)._add_noise_to_aggregated_arrays(zero)["w"].numpy()
              for _ in range(2)]
    assert np.array_equal(*seeded)  # reproducible only when seeded explicitly (tests)
    assert party_epsilon(4.0, 2, 1e-3) < party_epsilon(1.0, 2, 1e-3) and party_epsilon(1.0, 0, 1e-3) == 0


def test_fed_offsite_in_the_simulation_engine_with_a_crash_and_resume(tmp_path, tiny_lm_dir, monkeypatch):
    """fed-offsite on Flower's FedAvg: party 2 crashes in round 2, the federation stops after round 1 and
    resumes at round 2 from the kept global adapters; DP (Flower's wrapper) puts ε in the result."""
    from silobridge.federation.apps import FAULT
    from silobridge.federation.engine import FederationError, simulate

    out = tmp_path / "off"
    settings = offsite_settings(tiny_lm_dir, ["strategy.dp_noise=0.5", "strategy.dp_clip=1.0"])
    monkeypatch.setenv(FAULT, "2:2")
    with pytest.raises(FederationError, match="after 2 of 3 rounds.*party 2 crashed"):
        simulate(settings, out, cpus=2)
    monkeypatch.delenv(FAULT)
    result = simulate(settings, out, cpus=2)
    assert result["strategy"] == "fed-offsite" and [r["round"] for r in result["rounds"]] == [0, 1, 2]
    assert all("accuracy" in r["lm"] for r in result["rounds"])
    assert result["rounds"][1]["epsilon"] < result["rounds"][2]["epsilon"] == result["privacy"]["epsilon"]
    assert set(result["rounds"][2]["parties"]) == {"0", "1", "2"}
    comm = result["communication"]
    assert comm["adapter_share_of_lm"] < 1 and comm["ratio_fedavg_lm"] > 1
    assert 0 < comm["emulator_revealed_param_share"] < 1
    assert result["references"]["centralised"]["note"].startswith("privacy-violating")
    model = Ledger.read(out / "model" / "ledger.jsonl")
    assert {e.exposure for e in model if e.sender == "model" and e.kind == "weights"} == {"lm_weights",
                                                                                         "private_model"}
    for pid in range(3):
        ours = Ledger.read(out / f"party-{pid}" / "ledger.jsonl")
        sent = [e for e in ours if e.sender != "model"]
        assert {e.exposure for e in sent if e.kind == "weights"} == {"private_model"}
        assert {e.sha256 for e in ours} <= {e.sha256 for e in model}


# --- lm-fusion --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def other_lm_dir(tmp_path_factory):
    """A second tiny random Llama with another tokenizer (the bundled SmolLM2's BPE, not the first's
    WordPiece): the LMs meet only at the label level."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from silobridge.models.lm import _bundled_gguf

    gguf = _bundled_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    path = tmp_path_factory.mktemp("other-lm")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def fusion_settings(tiny_lm_dir, other_lm_dir, weighting="validation", **fed):
    from silobridge.configs import apply_overrides

    flat = apply_overrides({}, SMALL + [f"lm.path={tiny_lm_dir}", "data.n_private=60", "data.n_val=30",
                                        "strategy.calibration_texts=10", f"strategy.weighting={weighting}"])
    flat["strategy"]["lms"] = [tiny_lm_dir, other_lm_dir]
    flat["federation"] = {"parties": 3, "alpha": 1.0, "timeout": 600} | fed
    return FedSettings.from_overrides(flat, name="lm-fusion")


def test_lm_fusion_weights_the_lms_by_each_partys_validation(tmp_path, tiny_lm_dir, other_lm_dir):
    """A party given one LM right on its validation records and one wrong on them weights the right one
    higher; 'sm' weighting sends no validation text."""
    from silobridge.federation.lm_fusion import FusionParty

    settings = fusion_settings(tiny_lm_dir, other_lm_dir)
    party = FusionParty(settings, 0, tmp_path)
    assert party.introduce()["val"].exposure == "validation_records"
    d = party.data
    k = len(d.task.label_names)
    rng = np.random.default_rng(0)
    good_val = np.log(np.eye(k)[d.val.labels] * 0.8 + 0.1)  # right on every validation record
    noise = np.log(np.eye(k)[(d.val.labels + 1) % k] * 0.8 + 0.1)  # wrong on every one
    pub = [SoftLabels(values=np.log(rng.dirichlet(np.ones(k), size=len(d.public))), log=True) for _ in range(2)]
    quality, evaluation = party.fuse(pub, [SoftLabels(values=good_val, log=True), SoftLabels(values=noise, log=True)],
                                     None)
    q = quality.values
    assert q["weight_lm0"] > q["weight_lm1"] and q["weight_lm0"] + q["weight_lm1"] == pytest.approx(1)
    assert set(evaluation) == {"alone", "teacher:lm0", "teacher:lm1", "teacher:fused"}
    with pytest.raises(BoundaryError, match="public pool"):
        party.fuse([SoftLabels(values=np.zeros((3, k)), log=True)], None, None)
    sm_party = FusionParty(fusion_settings(tiny_lm_dir, other_lm_dir, weighting="sm"), 1, tmp_path)
    assert "val" not in sm_party.introduce()


def test_lm_fusion_in_the_simulation_engine_with_a_party_that_hangs(tmp_path, tiny_lm_dir, other_lm_dir,
                                                                     monkeypatch):
    """Two LMs with different tokenizers label the public pool; three parties fuse, but party 2 hangs: the
    model side waits federation.timeout, then completes the round with the two that answered
    (min_parties=2), the silent party named in the result. The result has each party's rows (alone, each LM
    as teacher, fused), each LM's own utility, and the declared exposures."""
    from silobridge.federation.apps import FAULT
    from silobridge.federation.engine import simulate

    out = tmp_path / "fusion"
    monkeypatch.setenv(FAULT, "2:1:hang=50")  # answers after the round is over
    settings = fusion_settings(tiny_lm_dir, other_lm_dir, timeout=30, min_parties=2)
    result = simulate(settings, out, cpus=3)
    assert result["strategy"] == "lm-fusion" and set(result["rounds"][0]["parties"]) == {"0", "1"}
    assert result["rounds"][0]["failed"]["2"].startswith("no reply within 30")
    assert set(result["sm"]) == {"alone", "teacher:lm0", "teacher:lm1", "teacher:fused"}
    assert all(0 <= result["sm"][n]["macro_f1"]["worst"] <= result["sm"][n]["macro_f1"]["mean"] <= 1
               for n in result["sm"])
    assert set(result["references"]["lm_zero_shot"]) == {tiny_lm_dir, other_lm_dir}
    assert all("accuracy" in u for u in result["references"]["lm_zero_shot"].values())
    assert all(sum(w.values()) == pytest.approx(1, abs=1e-6) for w in result["weights"].values())
    assert result["privacy"]["validation_records_sent"] == sum(p["val"] for p in result["parties"].values()) > 0
    model = Ledger.read(out / "model" / "ledger.jsonl")
    sent = {e.exposure for e in model if e.sender != "model" and e.kind == "text"}
    assert sent <= {None, "evaluation_records", "validation_records"} and "validation_records" in sent
    assert simulate(settings, out, cpus=3)["sm"] == result["sm"]  # finished: read back, nothing run


def test_parties_bring_their_own_files(tmp_path, tiny_lm_dir):
    """federation.party_data: each party reads only its own file; a label the task does not have, or a
    file count that is not the party count, is refused with the fix."""
    import pandas as pd

    from silobridge.bench.runner import load_splits
    from silobridge.federation.fed_distill import FedParty, party_splits

    rows = {0: [("great food, will buy again", "great"), ("stale and bland", "other")] * 10,
            1: [("my dog loves it", "great"), ("arrived broken", "other"), ("ok i guess", "other")] * 8}
    files = []
    for pid, recs in rows.items():
        f = tmp_path / f"party{pid}.csv"
        pd.DataFrame(recs, columns=["text", "label"]).to_csv(f, index=False)
        files.append(str(f))
    settings = fed_settings(tiny_lm_dir, parties=2, party_data=files)
    p1 = FedParty(settings, 1, tmp_path)
    assert len(p1.splits.private) + len(p1.splits.val) == 24 and len(p1.splits.val) >= 1
    assert set(p1.splits.private.texts) | set(p1.splits.val.texts) == {t for t, _ in rows[1]}
    assert [len(s.private) + len(s.val) for s in party_splits(load_splits(settings.run), settings)] == [20, 24]
    bad = tmp_path / "bad.csv"
    pd.DataFrame([("x", "awful"), ("y", "great")], columns=["text", "label"]).to_csv(bad, index=False)
    with pytest.raises(DataError, match="not the task's"):
        FedParty(fed_settings(tiny_lm_dir, parties=2, party_data=[files[0], str(bad)]), 1, tmp_path)
    with pytest.raises(ConfigError, match="federation.party_data"):
        fed_settings(tiny_lm_dir, parties=3, party_data=files)

