"""Leakage attacks on cases with known answers: exposure ranks, a model that memorised its members, a
model that saw none of them."""
import math

import numpy as np
import pytest

from silobridge.bench.leakage import privacy_fields, sm_membership
from silobridge.data.task import LabelledTexts
from silobridge.errors import ConfigError
from silobridge.models.sm import TfidfLR
from silobridge.privacy.attacks import agreement, exposure, lira_offline, mia_report, tpr_at_fpr
from silobridge.settings import AuditConfig


def test_exposure_rank_known_answers():
    refs = np.arange(1, 1024, dtype=float)  # 1,023 references with losses 1..1023: 1,024 candidates
    assert exposure(0.5, refs) == {"exposure": 10.0, "rank": 1, "candidates": 1024, "max_exposure": 10.0}
    mid = exposure(512.5, refs)  # 512 references lower: rank 513
    assert mid["rank"] == 513 and mid["exposure"] == pytest.approx(10 - math.log2(513))
    assert exposure(2000.0, refs)["exposure"] == pytest.approx(0.0)  # the worst candidate: nothing exposed
    # ties go to the canary: rank counts strictly lower losses (a rank of 1 + "lower or equal" would
    # call a model that scores every candidate alike a leak)
    assert exposure(1.0, np.ones(255))["rank"] == 1
    with pytest.raises(ConfigError, match="reference"):
        exposure(1.0, np.array([]))


def test_mia_report_separable_and_random():
    rng = np.random.default_rng(0)
    r = mia_report(rng.normal(5, 1, 500), rng.normal(0, 1, 500), rng=rng)
    assert r["auc"] > 0.99 and r["tpr_at_1pct_fpr"] > 0.8 and r["auc_ci95"][0] <= r["auc"] <= r["auc_ci95"][1]
    r = mia_report(rng.normal(0, 1, 500), rng.normal(0, 1, 500), rng=rng)
    assert r["auc_ci95"][0] < 0.5 < r["auc_ci95"][1] and r["tpr_at_1pct_fpr"] < 0.1
    assert tpr_at_fpr(np.array([3.0, 2.0]), np.array([1.0, 0.0]), 0.0) == 1.0
    with pytest.raises(ConfigError, match="2\\+ members"):
        mia_report(np.array([1.0]), np.array([0.0, 1.0]))


def test_lira_offline_scores_a_confidence_above_the_references():
    refs = np.zeros((4, 3)) + np.array([[-0.1], [0.1], [0.0], [0.0]])
    s = lira_offline(np.array([3.0, 0.0, -3.0]), refs)
    assert s[0] > s[1] > s[2]


def test_agreement():
    assert agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 0.5
    with pytest.raises(ConfigError, match="one shape"):
        agreement(np.array([1, 2]), np.array([1]))


def noisy_records(n: int, rng: np.random.Generator, vocab: int = 3000) -> LabelledTexts:
    """A signal word that gives the label 80 % of the time, and ten random words: a model that memorises
    its members fits their flipped labels too; a reference model learns only the signal."""
    y = rng.integers(0, 2, n)
    shown = np.where(rng.random(n) < 0.8, y, 1 - y)
    return LabelledTexts([("good " if s else "bad ") + " ".join(f"w{w}" for w in rng.integers(0, vocab, 10))
                          for s in shown], y)


def test_membership_of_a_model_that_memorised_and_of_one_that_saw_nothing():
    rng = np.random.default_rng(1)
    members, heldout, other = noisy_records(150, rng), noisy_records(300, rng), noisy_records(150, rng)
    audit = AuditConfig(mia_boot=100)
    new = lambda s: TfidfLR(2, C=100.0, seed=s)  # noqa: E731  (weakly regularised: memorises)
    seen = sm_membership(new(0).fit(members.texts, np.eye(2)[members.labels]), new, members, heldout, 2, audit, 0, 4)
    # (with 4 references trained on 150 records each, LiRA's per-record baseline is noisy here: weaker than
    # the loss threshold on this toy, stronger on the reviews)
    assert seen["attacks"]["loss"]["auc"] > 0.95 and seen["attacks"]["lira_offline"]["auc"] > 0.65
    assert privacy_fields(seen)["mia_tpr_at_1pct_fpr"] > 0.3  # the loss attack: 44 % of members at 1 % FPR
    blind = sm_membership(new(0).fit(other.texts, np.eye(2)[other.labels]), new, members, heldout, 2, audit, 0, 4)
    for a in blind["attacks"].values():
        assert a["auc_ci95"][0] < 0.5 < a["auc_ci95"][1], a
    loss_only = sm_membership(new(0).fit(members.texts, np.eye(2)[members.labels]), new, members, heldout, 2,
                              audit, 0, 0)
    assert list(loss_only["attacks"]) == ["loss"] and loss_only["attacks"]["loss"]["nonmembers"] == 150
    assert privacy_fields(None) == {"canary_exposure": None, "mia_auc": None, "mia_auc_ci95": None,
                                    "mia_tpr_at_1pct_fpr": None, "mia_attack": None}


def test_canary_exposure_of_a_model_that_memorised_it_and_of_one_that_did_not(tiny_lm_dir):
    """A tiny LM trained on one canary sentence ranks that secret first among 256 candidates (8 bits, the
    most 255 references can show) and the extrapolation goes beyond; the untrained LM exposes it at chance."""
    import torch

    from silobridge.bench.leakage import canary_exposure
    from silobridge.data.splits import CANARY_PREFIX
    from silobridge.models.causal import continuation_nll
    from silobridge.models.lm import load_lm

    lm = load_lm(tiny_lm_dir, dtype="float32")
    secret, other = "K7QM-2ZXA-PL9D", "B3RT-WX5N-QQ8E"

    def ask(req):
        return {"lms": {"deployed": continuation_nll(lm, req["prefix"], req["candidates"]).tolist()}}

    before = canary_exposure(ask, [secret, other], 255, seed=0)
    assert before["candidates"] == 256 and before["max_measurable"] == 8.0
    assert before["lms"]["deployed"]["mean"] < 4.0
    ids = lm.tokenizer(f"{CANARY_PREFIX} {secret}.", return_tensors="pt")["input_ids"]
    opt = torch.optim.Adam(lm.model.parameters(), lr=1e-2)
    lm.model.train()
    for _ in range(60):
        opt.zero_grad()
        lm.model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
    after = canary_exposure(ask, [secret, other], 255, seed=0)["lms"]["deployed"]
    assert after["rank"][0] == 1 and after["exposure"][0] == 8.0 and after["extrapolated"][0] > 8.0
    assert after["exposure"][1] < after["exposure"][0]  # the secret it never saw stays unexposed (relatively)
    assert privacy_fields(None, {"lms": {"deployed": after}})["canary_exposure"] == 8.0


def test_extraction_agreement_of_the_lm_itself_and_of_another_lm(tiny_lm_dir):
    """The LM compared with itself agrees on every next token; a differently initialised LM of the same
    shape and tokenizer agrees on few."""
    import torch
    from transformers import AutoModelForCausalLM

    from silobridge.bench.leakage import extraction
    from silobridge.models.causal import next_token_top1
    from silobridge.models.lm import CausalLM, load_lm

    lm = load_lm(tiny_lm_dir, dtype="float32")
    texts = ["the film was long and the plot thin", "a quiet, lovely story about two sisters"]

    def ask(req):
        return {"next_tokens": next_token_top1(lm, req["next_tokens"]).tolist()}

    torch.manual_seed(1)
    other = AutoModelForCausalLM.from_config(lm.model.config)
    r = extraction(ask, {"emulator": lm, "stranger": CausalLM(lm.tokenizer, other, "stranger")}, texts)
    assert r["agreement"]["emulator"] == 1.0 and r["agreement"]["stranger"] < 0.5 and r["tokens"] > 10
    assert extraction(lambda req: {"next_tokens": None}, {"emulator": lm}, texts) is None  # a black-box LM


def test_label_extraction_of_a_copy_and_of_a_contrarian():
    """An SM that answers as the LM does agrees on every text, one that answers the other label on none; a
    black-box LM is not measured."""
    from silobridge.bench.leakage import label_extraction

    texts = [f"text {i}" for i in range(10)]
    lm_labels = [i % 2 for i in range(10)]

    class SM:
        def __init__(self, flip):
            self.flip = flip

        def predict_proba(self, xs):
            return np.eye(2)[[(int(x.split()[1]) + self.flip) % 2 for x in xs]]

    def ask(req):
        return {"labels": [lm_labels[int(t.split()[1])] for t in req["labels"]]}

    copy, contrarian = label_extraction(ask, SM(0), texts), label_extraction(ask, SM(1), texts)
    assert copy["agreement"] == 1.0 and contrarian["agreement"] == 0.0 and copy["lm_label_share"] == [0.5, 0.5]
    assert copy["lm_calibrated_on"] == 0 and copy["agreement_uncalibrated"] == 1.0
    assert label_extraction(lambda req: {"labels": None}, SM(0), texts) is None

    def biased(req):  # an LM that says 0 to everything, whose answers with its bias removed are the copy's
        assert len(req["calibration"]) == 3
        return {"labels": [0] * len(req["labels"]), "calibrated": [lm_labels[int(t.split()[1])] for t in req["labels"]]}

    r = label_extraction(biased, SM(0), texts, ["public a", "public b", "public c"])
    assert r["agreement"] == 1.0 and r["agreement_uncalibrated"] == 0.5 and r["lm_calibrated_on"] == 3
    assert r["lm_uncalibrated_label_share"] == [1.0, 0.0] and r["lm_label_share"] == [0.5, 0.5]


def test_the_audit_hook_removes_the_lms_label_bias_on_public_texts(small_cfg, tmp_path):
    """The model party's answer to a label audit with calibration texts: its argmax after subtracting its mean
    label log-probs on those texts, and the raw argmax beside it; both as long as the texts."""
    from silobridge.bench.runner import load_splits
    from silobridge.models.lm import load_lm, score_labels
    from silobridge.parties.audit_hook import answer
    from silobridge.strategies.prompting import PromptConfig, prompt_for, words_for

    splits = load_splits(small_cfg)
    lm = load_lm(small_cfg.lm.path, dtype="float32", device="cpu")

    class Party:
        black_box, task = False, splits.task

    class Side:
        config = PromptConfig()

        def language_models(self):
            return {}

    Party.lm = lm
    texts, calib = splits.test.texts[:6], splits.public[:8]
    got = answer(Side(), Party(), {"labels": texts, "calibration": calib})
    words = words_for(PromptConfig(), splits.task)
    logp = score_labels(lm, texts + calib, prompt_for(PromptConfig(), splits.task, words), words)
    assert got["labels"] == logp[:6].argmax(1).tolist()
    assert got["calibrated"] == (logp[:6] - logp[6:].mean(0)).argmax(1).tolist()
    assert "calibrated" not in answer(Side(), Party(), {"labels": texts})


def test_the_audit_is_not_billed_as_lm_queries(small_cfg, tmp_path):
    """distill-public with and without the label-extraction audit: the same LM bill (measurement is not a
    query), and the audit's figure only in the audited run."""
    import dataclasses

    from silobridge.bench.runner import run

    on = run("distill-public", small_cfg, tmp_path / "on")
    off = run("distill-public", dataclasses.replace(
        small_cfg, audit=dataclasses.replace(small_cfg.audit, extraction=False)), tmp_path / "off")
    assert on["objectives"]["lm_queries"] == off["objectives"]["lm_queries"]
    assert 0 <= on["objectives"]["model_leakage"]["extraction_label_agreement"] <= 1
    assert off["objectives"]["model_leakage"]["extraction_label_agreement"] is None


def test_canaries_planted_with_repeats():
    """Each secret goes into ``repeats`` distinct records; one insertion plants exactly as before; too many
    insertions for the records is a clear error."""
    from silobridge.data.splits import CANARY_PREFIX, plant_canaries
    from silobridge.errors import DataError

    records = LabelledTexts([f"record {i}" for i in range(40)], np.zeros(40, dtype=int))
    once, secrets = plant_canaries(records, 3, seed=0)
    again, same = plant_canaries(records, 3, seed=0, repeats=1)
    assert once.texts == again.texts and secrets == same
    many, secrets = plant_canaries(records, 3, seed=0, repeats=4)
    for s in secrets:
        assert sum(f"{CANARY_PREFIX} {s}." in t for t in many.texts) == 4
    assert sum(CANARY_PREFIX in t for t in many.texts) == 12  # distinct records
    with pytest.raises(DataError, match="canary_repeats"):
        plant_canaries(records, 5, seed=0, repeats=9)
