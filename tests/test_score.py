"""The multi-objective score, Pareto fronts and the planner, on hand-made results with known answers."""
from __future__ import annotations

import math

import pytest

from silobridge.bench.plan import Constraints, plan, why_excluded
from silobridge.bench.score import fronts, normalise, parse_weights, rows_of
from silobridge.errors import ConfigError


def result(strategy, acc, bytes_=0, calls=0, eps=None, data_s=1.0, seed=0, exposures=None, hits=0, declared=0,
           share=0.0, canary=0):
    return {"strategy": strategy, "seed": seed, "task_kind": "classify", "splits": {"test": 1000},
            "config": {"sm": {"kind": "tfidf"}, "strategy": {}, "data": {"n_private": 400}},
            "objectives": {
                "utility": {"accuracy": acc, "macro_f1": acc, "auc": acc},
                "communication": {"bytes_data_to_model": bytes_ // 2, "bytes_model_to_data": bytes_ - bytes_ // 2},
                "lm_queries": {"calls": calls, "tokens_in": 0, "tokens_out": 0, "cached": 0},
                "compute": {"data_party_seconds": data_s, "model_party_seconds": 0.0, "wall_seconds": data_s},
                "privacy": {"epsilon": eps, "canary_hits": canary, "raw_record_hits": hits,
                            "declared_exposures": declared, "exposures": exposures or {}},
                "model_leakage": {"lm_param_share_declared": share, "lm_param_share_exact": 0.0}}}


RUNS = [result("sm-only", 0.70, seed=0), result("sm-only", 0.72, seed=1),
        result("distill-public", 0.80, bytes_=10**6, calls=1000),
        result("synthetic", 0.76, bytes_=10**5, calls=200, eps=2.0),
        result("lm-zero-shot", 0.75, bytes_=10**6, calls=1200, hits=1000, declared=1000,
               exposures={"inference_records": {"texts": 1000}}),
        result("lm-finetune-private", 0.90, bytes_=10**7, calls=1000, hits=1400, declared=1400, canary=5,
               exposures={"private_records": {"texts": 400}, "inference_records": {"texts": 1000}}),
        result("emulator", 0.74, bytes_=10**8, calls=0, share=0.5)]


def by_name(rows):
    return {r.name: r for r in rows}


def test_score_is_the_documented_formula():
    rows = rows_of(RUNS)
    norm = normalise(rows, parse_weights("utility=1,bytes=0.1,lm_calls=0.2,epsilon=0.5,data_seconds=0"))
    r = by_name(rows)
    assert r["sm-only"].mean["utility"] == pytest.approx(0.71)
    assert r["sm-only"].sd["utility"] == pytest.approx(0.01414, 1e-3)
    assert (norm.utility_low, norm.utility_high) == (pytest.approx(0.71), 0.90)
    d = r["distill-public"]
    # worked example: utility (0.80 - 0.71) / (0.90 - 0.71); bytes log(1+1e6)/log(1+1e8); calls log(1001)/log(1201)
    expect = (0.09 / 0.19) - 0.1 * math.log1p(1e6) / math.log1p(1e8) - 0.2 * math.log1p(1000) / math.log1p(1200)
    assert d.score == pytest.approx(expect) and d.norm["epsilon"] == 0.0
    assert r["synthetic"].norm["epsilon"] == pytest.approx(0.9)  # the only finite ε: the top of its scale
    assert r["lm-finetune-private"].norm["epsilon"] == 1.0 and math.isinf(r["lm-finetune-private"].mean["epsilon"])
    assert r["lm-zero-shot"].mean["epsilon"] == 0.0  # queries cross, declared; no training record does


def test_a_declared_exposure_under_dp_counts_by_its_epsilon():
    """Adapters trained on private records cross declared ('private_model'): without DP the records' ε is
    unbounded; when every such carrier carries a DP spend (dp-offsite-tuning), the run's ε is what counts."""
    from silobridge.bench.score import epsilon_of

    plain = result("offsite-tuning", 0.6, exposures={"private_model": {"carriers": 1, "texts": 0}})
    dp = result("dp-offsite-tuning", 0.6, eps=8.0,
                exposures={"private_model": {"carriers": 1, "texts": 0, "dp_carriers": 1}})
    part = result("dp-offsite-tuning", 0.6, eps=8.0,
                  exposures={"private_model": {"carriers": 2, "texts": 0, "dp_carriers": 1}})
    assert math.isinf(epsilon_of(plain)) and epsilon_of(dp) == 8.0 and math.isinf(epsilon_of(part))


def test_fronts_name_the_dominated():
    f = fronts(rows_of(RUNS))
    assert f["bytes"][0] == "lm-finetune-private" and "sm-only" in f["bytes"]
    assert "emulator" in f["lm_calls"]  # no LM call at all, and better than sm-only
    assert f["dominated everywhere"] == ["lm-zero-shot"]  # distill-public: better, cheaper, no ε


def test_weights_are_checked():
    with pytest.raises(ConfigError, match="unknown objective 'speed'"):
        parse_weights("speed=1")
    with pytest.raises(ConfigError, match="not a number"):
        parse_weights("bytes=lots")


def test_plan_ranks_the_eligible_and_says_why_the_others_are_out():
    p = plan(RUNS, Constraints(max_epsilon=2.5, no_lm_weights=True, max_lm_calls_per_1k=1100))
    assert [r.name for r in p.ranked][0] == "distill-public"
    why = {r.name: reason for r, reason in p.excluded}
    assert why["lm-finetune-private"].startswith("ε unbounded")
    assert "50% of the LM's weights" in why["emulator"]
    assert why["lm-zero-shot"] == "1,200 LM calls per 1k queries > 1100"
    assert p.command(["--data", "my.csv"]) == "silobridge run distill-public --data my.csv"
    strict = plan(RUNS, Constraints(local_inference=True, max_bytes=2 * 10**5))
    assert {r.name for r in strict.ranked} == {"sm-only", "synthetic"}


def test_no_private_records_counts_measured_leaks():
    leaky = result("reverse-distill", 0.8, hits=1200, declared=1000)  # 200 records crossed undeclared
    (row,) = rows_of([leaky])
    assert why_excluded(row, Constraints(no_private_records=True)).startswith("private records")


def test_story_says_what_gained_crossed_and_cost():
    from silobridge.bench.story import story

    runs = [r | {"objectives": r["objectives"] | {"compute": r["objectives"]["compute"] | {"wall_seconds": 5.0}}}
            for r in RUNS[1:4]]
    gained, crossed, cost = story(runs)
    assert gained == "Test accuracy: sm-only (the data party alone) 0.720; distill-public 0.800 (+0.080), " \
                     "synthetic 0.760 (+0.040)."
    assert "distill-public sent 500.0 kB and received 500.0 kB (0 private-record and 0 canary hits)" in crossed
    assert "ε = 2.00" in crossed and cost.startswith("Cost: distill-public 1,000 LM calls and 5 s")
    assert story(RUNS[2:4]) == []  # no baseline, no story
