"""retrieval: the neighbour vote, PII sanitisation of private neighbours before they cross, and the
public source that sends no private record."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from silobridge.bench.runner import run
from silobridge.configs import apply_overrides, from_dict
from silobridge.settings import RunConfig
from silobridge.strategies.retrieval.data_side import neighbour_vote
from silobridge.strategies.retrieval.model_side import RetrievalModel

pytest.importorskip("presidio_analyzer")


def test_neighbour_vote_weights_by_similarity_and_measures_agreement():
    labels = np.array([[1, 1, 1], [0, 1, 1], [2, 0, 1]])
    sims = np.array([[0.9, 0.8, 0.7], [0.9, 0.2, 0.2], [0.5, 0.5, 0.5]])
    p, agree = neighbour_vote(labels, sims, 3)
    assert np.allclose(p.sum(1), 1) and agree.tolist() == pytest.approx([1, 2 / 3, 1 / 3])
    assert p[0].argmax() == 1 and p[1].argmax() == 0  # one close neighbour outweighs two far ones
    assert p[2, 0] == pytest.approx(p[2, 1]) == pytest.approx(p[2, 2])


def test_sanitiser_masks_pii_offline():
    from silobridge.privacy.sanitize import sanitise

    out = sanitise(["Write to jane.doe@example.com or call 212-555-0199 and ask for John Smith.", "no pii here"])
    assert "jane.doe@example.com" not in out.texts[0] and "212-555-0199" not in out.texts[0]
    assert "John Smith" not in out.texts[0] and "<EMAIL_ADDRESS>" in out.texts[0]
    assert {"EMAIL_ADDRESS", "PERSON"} <= set(out.entities)
    assert out.texts[1] == "no pii here" and out.changed == 1 and out.masked >= 3


def _pii_csv(path):
    rows = []
    for i in range(120):
        who = f"user{i}@example.com"
        rows.append(f"refund please my card was charged twice for order {i}; write to {who} or 212-555-{i:04d},billing"
                    if i % 2 else
                    f"the app crashes when I open settings on device {i}; mail {who} with the fix,bug")
    path.write_text("message,team\n" + "\n".join(rows))
    return path


def test_private_neighbours_cross_only_sanitised(tiny_lm_dir, tmp_path, monkeypatch):
    received: list[str] = []
    add = RetrievalModel.add_examples
    monkeypatch.setattr(RetrievalModel, "add_examples", lambda self, c: (received.extend(c.items), add(self, c))[1])
    cfg = from_dict(RunConfig, apply_overrides({}, [
        f"data.path={_pii_csv(tmp_path / 'tickets.csv')}", "data.text_col=message", "data.label_col=team",
        "data.n_private=40", "data.n_val=10", "data.n_public=30", "data.n_test=30", "data.canaries=0",
        "data.n_lm_eval=0", f"lm.path={tiny_lm_dir}", "lm.dtype=float32",
        "strategy.local_agreement=1.0", "strategy.k=3", "strategy.calibration_texts=10"]))
    r = run("retrieval", cfg, tmp_path / "out")
    rep, o = r["report"], r["objectives"]
    assert received and not any("@example.com" in t for t in received)  # every address was masked
    assert not any("212-555-" in t for t in received)  # phone numbers too (Presidio scores them 0.4 here)
    assert rep["pii_entities_masked"] >= len(received) and rep["pii_by_type"]["EMAIL_ADDRESS"] >= len(received)
    assert rep["examples_sent"] == len(received) and rep["answered_locally"] + rep["routed"] == 30
    assert o["privacy"]["exposures"]["retrieved_records"]["texts"] == len(received)
    assert o["lm_queries"]["calls"] == 10 + rep["routed"]  # calibration texts, then the routed queries


def test_public_source_sends_no_private_record(small_cfg, tmp_path):
    cfg = dataclasses.replace(small_cfg, strategy={"source": "public", "local_agreement": 1.0,
                                                   "calibration": "none"})
    r = run("retrieval", cfg, tmp_path / "pub")
    rep, p = r["report"], r["objectives"]["privacy"]
    assert rep["source"] == "public" and "pii_entities_masked" not in rep
    assert not p["exposures"].get("retrieved_records") and p["raw_record_hits"] == 0
    assert r["objectives"]["lm_queries"]["calls"] == rep["routed"]
