"""router: the cascade's curve and RouteLLM's measures on a case with known answers, and the targets."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from silobridge.bench.runner import run
from silobridge.strategies.router.curve import (cascade_curve, routellm_measures, threshold_for_calls,
                                                threshold_for_quality)

# 4 queries; the SM is right on its two most confident ones, the LM on all but the last
CONF = np.array([0.9, 0.6, 0.8, 0.55])
LABELS = np.array([0, 1, 1, 0])
SM = np.array([0, 0, 1, 1])
LM = np.array([0, 1, 1, 1])


def test_curve_and_measures_on_a_known_case():
    c = cascade_curve(CONF, SM, LM, LABELS)
    # routing order by confidence: 0.55 (LM wrong, SM wrong), 0.6 (LM right), 0.8, 0.9 (both right)
    assert c.lm_share.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert c.quality.tolist() == [0.5, 0.5, 0.75, 0.75, 0.75]
    m = routellm_measures(c)
    assert (m["sm_quality"], m["lm_quality"]) == (0.5, 0.75)
    assert m["cpt_50"] == 0.5 and m["cpt_80"] == 0.5  # PGR jumps from 0 to 1 at half the queries routed
    assert m["apgr"] == pytest.approx(0.25 * 0.5 + 0.5 * 1.0)  # trapezoid: 0,0 then 0->1 then 1,1,1
    assert m["cascade_beats_both"] is False and m["lm_calls_saved_at_95pct"] == 0.5
    t, target = threshold_for_quality(c, 1.0)
    assert target == 0.75 and ((CONF < t).sum() == 2)


def test_calls_target_routes_at_most_that_share():
    conf = np.random.default_rng(0).random(200)
    for share in (0, 0.1, 0.33, 1.0):
        assert (conf < threshold_for_calls(conf, share)).mean() <= share + 1e-9


def test_measures_are_undefined_when_the_lm_is_worse():
    c = cascade_curve(CONF, LM, SM, LABELS)  # roles swapped: the cheap model is the better one
    m = routellm_measures(c)
    assert m["apgr"] is None and m["cpt_50"] is None


def test_router_end_to_end_on_both_targets(small_cfg, tmp_path):
    q = run("router", dataclasses.replace(small_cfg, strategy={"min_quality_share": 0.9}), tmp_path / "q")
    rep = q["report"]
    assert rep["validation"]["curve"][0]["lm_share"] == 0 and rep["validation"]["curve"][-1]["lm_share"] == 1
    assert q["objectives"]["privacy"]["exposures"].get("validation_records")  # declared and counted
    calls = run("router", dataclasses.replace(small_cfg, strategy={"max_lm_calls_per_100": 20}), tmp_path / "c")
    calibration = min(200, small_cfg.data.n_public)  # the LM's label bias, on public texts
    assert calls["objectives"]["lm_queries"]["calls"] == calibration + calls["report"]["routed"]
    assert not calls["objectives"]["privacy"]["exposures"].get("validation_records")  # a cost target sends none
    assert 0 <= calls["report"]["lm_share"] <= 1
