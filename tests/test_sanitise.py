"""PII sanitisation as the data party's egress transform (policy.sanitize), and the planted-PII measurement
that scores a sanitiser: what crosses is masked, a masked inference input keeps its admission, a carrier whose
arrays are aligned to its texts is refused rather than misaligned."""
import numpy as np
import pytest

from silobridge.bench.runner import run
from silobridge.boundary.carriers import LogitShift, TextBatch
from silobridge.boundary.fingerprint import TextFingerprint
from silobridge.boundary.gate import Gate
from silobridge.configs import apply_overrides, from_dict, to_dict
from silobridge.errors import ConfigError, PolicyViolation
from silobridge.parties.egress import SanitisingEgress
from silobridge.privacy.pii import TYPES, luhn_complete, plant, recall
from silobridge.privacy.sanitize import Sanitiser
from silobridge.settings import RunConfig


def test_luhn_and_planted_positions_and_recall_scoring():
    assert luhn_complete("7992739871") == "79927398713"  # the textbook example
    hosts = ["The plot was thin. The actors tried.", "Loved it!"]
    texts, planted = plant(hosts, seed=3)
    assert len(planted) == len(hosts) * len(TYPES)
    for p in planted:
        assert texts[p.text][p.start:p.end] == p.value
        if p.kind == "CREDIT_CARD":
            digits = "".join(c for c in p.value if c.isdigit())
            assert luhn_complete(digits[:-1]) == digits
    assert all(v["masked"] == 0 for v in recall(hosts, texts, planted).values())  # nothing masked: recall 0
    masked = list(texts)
    for p in sorted(planted, key=lambda p: -p.start):  # a perfect sanitiser: recall 1
        masked[p.text] = masked[p.text][:p.start] + f"<{p.kind}>" + masked[p.text][p.end:]
    assert all(v["masked"] == 1 for v in recall(hosts, masked, planted).values())


def test_egress_masks_text_items_keeps_admissions_and_refuses_aligned_carriers():
    fp = TextFingerprint(n=10)
    record = "please refund order 17 to my card, write to jane.doe@example.com when it is done thanks"
    fp.add([record])
    admitted = {"inference_records": {fp.text_digest(record)}}
    sanitiser = Sanitiser(min_score=0.4)
    egress = SanitisingEgress(sanitiser, fp, admitted)
    out = egress(TextBatch([record, "no pii here"], purpose="score", exposure="inference_records"))
    assert "jane.doe@example.com" not in out.items[0] and "<EMAIL_ADDRESS>" in out.items[0]
    assert out.items[1] == "no pii here" and out.exposure == "inference_records"
    assert fp.text_digest(out.items[0]) in admitted["inference_records"]  # the masked form inherits admission
    first = sanitiser.report()
    assert first["by_type"]["EMAIL_ADDRESS"] == 1 and first["texts_seen"] == 2 and first["texts_changed"] == 1
    egress(TextBatch([record]))  # sent again: served from the sanitiser's memory, counted once
    assert sanitiser.report()["entities_masked"] == first["entities_masked"]
    with pytest.raises(PolicyViolation, match="policy.sanitize=false"):
        egress(LogitShift(items=[record], token_ids=np.zeros((1, 1), np.int32), values=np.zeros((1, 1), np.float16)))


def _tickets(path):
    rows = []
    for i in range(90):
        who = f"customer{i}@example.com"
        rows.append(f"refund please my card was charged twice for order {i}; write to {who},billing" if i % 2 else
                    f"the app crashes when I open settings on device {i}; mail {who} with the fix,bug")
    path.write_text("message,team\n" + "\n".join(rows))
    return path


def test_lm_zero_shot_with_sanitised_egress(tiny_lm_dir, tmp_path, monkeypatch):
    received: list[str] = []
    receive = Gate.receive

    def spy(self, payload, sender, op):
        entry, carrier = receive(self, payload, sender, op)
        if self.name == "model":
            received.extend(carrier.texts())
        return entry, carrier
    monkeypatch.setattr(Gate, "receive", spy)
    cfg = from_dict(RunConfig, apply_overrides({}, [
        f"data.path={_tickets(tmp_path / 'tickets.csv')}", "data.text_col=message", "data.label_col=team",
        "data.n_private=30", "data.n_val=10", "data.n_public=20", "data.n_test=30", "data.canaries=0",
        "data.n_lm_eval=0", f"lm.path={tiny_lm_dir}", "lm.dtype=float32", "policy.sanitize=true",
        "policy.sanitize_entities=EMAIL_ADDRESS"]))
    r = run("lm-zero-shot", cfg, tmp_path / "out")
    rep, p = r["report"]["sanitisation"], r["objectives"]["privacy"]
    assert len(received) >= 30 and not any("@example.com" in t for t in received)
    assert rep["by_type"] == {"EMAIL_ADDRESS": rep["entities_masked"]} and p["pii_masked"] == rep["entities_masked"]
    assert rep["entities_masked"] >= 30 and rep["entity_types"] == ["EMAIL_ADDRESS"]
    assert r["objectives"]["utility"]["accuracy"] is not None  # every (masked) test text was answered
    assert p["exposures"]["inference_records"]["texts"] == 30
    bad = from_dict(RunConfig, apply_overrides(to_dict(cfg), ["policy.sanitize_entities=E_MAIL,PERSON"]))
    with pytest.raises(ConfigError, match="EMAIL_ADDRESS") as e:
        run("lm-zero-shot", bad, tmp_path / "bad")
    assert e.value.where == "policy.sanitize_entities" and "['E_MAIL']" in str(e.value)
