"""synthetic: LM-written labelled texts, data-side filters, and the DP class-prototype feedback round."""
import dataclasses
import json
import math

import numpy as np
import pytest

from silobridge.bench.runner import run
from silobridge.configs import from_dict
from silobridge.errors import ConfigError, DataError
from silobridge.privacy import (
    class_term_counts,
    classic_gaussian_sigma,
    dp_class_prototypes,
    gaussian_delta,
    gaussian_sigma,
    public_vocabulary,
    rank_terms,
)
from silobridge.strategies.synthetic import SyntheticConfig
from silobridge.strategies.synthetic.data_side import Filter

# the tiny random LM writes gibberish: loosen the filters so its rows survive
LOOSE = {"per_class": 4, "max_new_tokens": 12, "min_words": 1, "agreement_keep": 1.0, "max_similarity": 1.0,
         "prototype_epsilon": 0.5, "top_terms": 4}


def test_end_to_end_on_tiny_models(small_cfg, tmp_path):
    result = run("synthetic", dataclasses.replace(small_cfg, strategy=LOOSE), tmp_path)
    ledger = [json.loads(x) for x in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    kinds = [(e["sender"], e["op"], e["kind"]) for e in ledger]
    session = [("data", "open", "config"), ("model", "open.reply", "config")]
    close = [("data", "close", "config"), ("model", "close.reply", "config")]
    assert kinds == session + [("data", "generate", "config"), ("model", "generate.reply", "text")] * 2 + close
    assert result["transport"]["ledgers_agree"] is True
    proto = [e for e in ledger if e["kind"] == "config" and e["epsilon"] is not None]
    assert len(proto) == 1 and proto[0]["epsilon"] == 0.5 and proto[0]["delta"] == 1e-5
    p = result["objectives"]["privacy"]
    assert p["epsilon"] == 0.5 and p["canary_hits"] == 0 and p["raw_record_hits"] == 0
    rep = result["report"]
    assert [r["generated"] for r in rep["rounds"]] == [8, 8] and rep["generated"] == 16
    assert 0 < rep["kept"] == sum(r["kept"] for r in rep["rounds"]) == sum(rep["kept_per_class"])
    assert rep["prototype"]["terms"] == 8 and rep["prototype"]["epsilon"] == 0.5
    assert set(rep["val"]) >= {"private_only", "with_synthetic"}
    assert result["objectives"]["lm_queries"]["calls"] == 16


def test_no_usable_rows_names_the_fix(small_cfg, tmp_path):
    cfg = dataclasses.replace(small_cfg, strategy={"per_class": 2, "max_new_tokens": 8, "min_words": 500,
                                                   "max_words": 600, "feedback": False})
    with pytest.raises(DataError, match="no usable synthetic rows") as err:
        run("synthetic", cfg, tmp_path)
    assert "strategy.min_words" in str(err.value) and "strategy.per_class" in str(err.value)
    assert "round 0" in str(err.value)  # it stops before the DP release and the second round
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize("bad", [{"per_class": 0}, {"agreement_keep": 1.5}, {"agreement_keep": 0.0},
                                 {"prototype_epsilon": 0.0}, {"prototype_epsilon": -1.0}, {"prototype_epsilon": "inf"},
                                 {"prototype_delta": 1.0},
                                 {"min_words": 10, "max_words": 5}, {"temperature": 0.0}, {"synthetic_weight": 0.0},
                                 {"top_terms": 0}, {"max_terms_per_record": 0}, {"max_new_tokens": 2},
                                 {"per_class": "many"}, {"no_such_option": 1}])
def test_bad_config_is_refused(bad):
    with pytest.raises(ConfigError):
        from_dict(SyntheticConfig, bad, prefix="strategy.")


def test_bad_config_is_refused_before_any_work(small_cfg, tmp_path):
    with pytest.raises(ConfigError, match="strategy.prototype_epsilon"):
        run("synthetic", dataclasses.replace(small_cfg, strategy={"prototype_epsilon": -1}), tmp_path)
    assert not (tmp_path / "ledger.jsonl").exists()


# --- the DP prototype mechanism ---------------------------------------------------------------------
PUBLIC = ["great tasty coffee", "awful stale coffee", "great tea", "stale bland tea", "tasty snack",
          "bland snack", "delicious great", "awful delicious"] * 2
PRIVATE = (["great tasty delicious coffee zebra"] * 30 + ["awful stale bland tea quokka"] * 30)
LABELS = [0] * 30 + [1] * 30


def test_prototype_terms_come_from_the_public_vocabulary():
    vocab = public_vocabulary(PUBLIC)
    assert "zebra" not in vocab and "great" in vocab and "the" not in vocab
    for eps in (0.05, 1.0):
        proto = dp_class_prototypes(PRIVATE, LABELS, 2, vocab, epsilon=eps, delta=1e-5, top_k=3,
                                    max_terms_per_record=2, seed=1)
        assert all(t in vocab for row in proto.terms for t in row) and all(len(r) == 3 for r in proto.terms)


def test_prototype_noise_grows_as_epsilon_shrinks():
    vocab = public_vocabulary(PUBLIC)
    sig = [dp_class_prototypes(PRIVATE, LABELS, 2, vocab, epsilon=e, delta=1e-5, max_terms_per_record=4,
                               seed=0).sigma for e in (4.0, 1.0, 0.25)]
    assert sig[0] < sig[1] < sig[2]
    assert math.isclose(sig[1], gaussian_sigma(1.0, 1e-5, 2.0))  # L2 sensitivity sqrt(4)
    for eps in (0.1, 0.5, 0.9):  # analytic calibration: exact delta, never above the classic bound
        s = gaussian_sigma(eps, 1e-5)
        assert math.isclose(gaussian_delta(eps, s), 1e-5, rel_tol=1e-6)
        assert s <= classic_gaussian_sigma(eps, 1e-5)


def test_huge_epsilon_returns_the_true_top_terms():
    vocab = public_vocabulary(PUBLIC)
    counts = class_term_counts(PRIVATE, LABELS, 2, vocab, 8, np.random.default_rng(0))
    truth = rank_terms(counts, vocab, 4)
    assert set(truth[0]) == {"great", "tasty", "delicious", "coffee"}
    assert set(truth[1]) == {"awful", "stale", "bland", "tea"}
    for seed in range(3):
        proto = dp_class_prototypes(PRIVATE, LABELS, 2, vocab, epsilon=1e6, delta=1e-5, top_k=4,
                                    max_terms_per_record=8, seed=seed)
        assert [set(t) for t in proto.terms] == [set(t) for t in truth]


@pytest.mark.parametrize("eps", [0.0, -1.0, float("nan"), float("inf")])
def test_prototype_epsilon_must_be_positive(eps):
    with pytest.raises(ConfigError, match="prototype_epsilon"):
        dp_class_prototypes(PRIVATE, LABELS, 2, public_vocabulary(PUBLIC), epsilon=eps, delta=1e-5)


def test_empty_public_vocabulary_is_a_data_error():
    with pytest.raises(DataError, match="n_public"):
        dp_class_prototypes(PRIVATE, LABELS, 2, [], epsilon=1.0, delta=1e-5)


# --- the data party's filter --------------------------------------------------------------------------
class _FixedSM:
    def __init__(self, p):
        self.p = p

    def predict_proba(self, texts):
        return np.tile(self.p, (len(texts), 1))


def test_filter_drops_short_long_disagreeing_and_duplicate_rows():
    cfg = SyntheticConfig(min_words=3, max_words=8, agreement_keep=0.5, max_similarity=0.8)
    flt = Filter(cfg, _FixedSM(np.array([0.7, 0.3])))
    texts = ["Here is a review:\n\"Tasty coffee, would buy again.\"", "tasty coffee WOULD buy again!",
             "too short", "one two three four five six seven eight nine ten", "",
             "Bland tea that I did not like.", "Good snack for the kids and me"]
    kept, ys, dropped = flt(texts, [0, 0, 0, 0, 0, 1, 0])
    # class 0 keeps the better half of its three rows (ties: first come), class 1 its only row
    assert kept == ["Tasty coffee, would buy again.", "Bland tea that I did not like."] and ys == [0, 1]
    assert dropped == {"empty": 1, "length": 2, "agreement": 1, "duplicate": 1}
    _, _, again = flt(["Tasty coffee would buy again"], [0])  # duplicates are caught across rounds
    assert again["duplicate"] == 1


class _TextSM:
    """An SM that finds a text typical of class y when it says 'y' often; heavily biased to class 0."""

    def predict_proba(self, texts):
        p = np.array([[1.0 + 20 * (y == 0) + t.split().count(str(y)) for y in range(5)] for t in texts])
        return p / p.sum(1, keepdims=True)


def test_agreement_keeps_rows_of_every_class_on_a_five_class_task():
    rows = [(f"a row about {y} " + " ".join([str(y)] * r) + f" ending{r}", y) for y in range(5) for r in range(4)]
    kept, ys, dropped = Filter(SyntheticConfig(min_words=1, agreement_keep=0.5, max_similarity=1.0),
                               _TextSM())(*map(list, zip(*rows)))
    assert sorted(set(ys)) == [0, 1, 2, 3, 4] and np.bincount(ys).tolist() == [2] * 5 and dropped["agreement"] == 10
    assert all(t.split().count(str(y)) >= 3 for t, y in zip(kept, ys))  # each class's most typical rows
    # an SM confident in no row of a class still leaves that class its best rows (no absolute cut)
    one = Filter(SyntheticConfig(min_words=1, agreement_keep=0.2, max_similarity=1.0), _FixedSM(np.eye(5)[0]))
    assert sorted(set(one(*map(list, zip(*rows)))[1])) == [0, 1, 2, 3, 4]


def test_generation_requests_use_public_metadata_and_released_terms():
    import random

    from silobridge.data.loaders import REVIEWS
    from silobridge.strategies.synthetic.model_side import requests

    users, labels = requests(REVIEWS, 3, None, 2, random.Random(0))
    assert labels == [0, 0, 0, 1, 1, 1] and "positive Amazon fine-food product review" in users[0]
    users, _ = requests(REVIEWS, 2, [["crisp", "sweet"], ["stale", "bland"]], 2, random.Random(0))
    assert "mentioning some of:" in users[0] and "stale" in users[3] and "bland" in users[3]
