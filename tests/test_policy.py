"""Egress rules, the carrier string inspector, the keyed fingerprint and the auditor, on small
hand-made carriers (no models)."""
import subprocess
import sys

import numpy as np
import pytest

from silobridge.bench.audit import Auditor
from silobridge.boundary import (DP_OUTPUTS, Activations, Config, Ledger, NoCanary, NoModelWeights, NoPrivateModel,
                                 NoPrivateRecords, Outgoing, Policy, PrivacySpend, SoftLabels, TextBatch,
                                 TextFingerprint, Weights, strings)
from silobridge.boundary.gate import Gate
from silobridge.boundary.inspect import metadata, texts
from silobridge.errors import PolicyViolation

TRAIN = "the quick brown fox jumps over the lazy dog while the farmer sleeps soundly at noon"
INFER = "a customer wrote that the coffee arrived stale and the box was crushed on one side"
EVAL = "held out review says the tea tastes of smoke and old leather but still somehow pleasant"
PUBLIC = "an entirely public sentence about the weather in a town nobody has ever visited"
CANARY = "ZK2M-8XBR-4F7Q"


def send(rule, carrier, declared=(), sender="data"):
    """Run one rule on ``carrier`` leaving ``sender`` under a strategy declaring ``declared``."""
    rule.check(Outgoing(carrier, carrier.encode(), sender, "model", frozenset(declared)))


def refused(rule_name, rule, carrier, declared=(), sender="data") -> PolicyViolation:
    with pytest.raises(PolicyViolation) as info:
        send(rule, carrier, declared, sender)
    assert info.value.rule == rule_name and info.value.fix
    return info.value


class Data:
    """What the data party builds: a fingerprint of every protected text, and admission sets."""

    def __init__(self):
        self.protected = TextFingerprint(n=8)
        self.admitted: dict[str, set[str]] = {}
        self.rule = NoPrivateRecords(self.protected, self.admitted)
        self.protected.add([TRAIN])
        self.admit([TRAIN], "private_records")

    def admit(self, texts, exposure):
        self.protected.add(texts)
        self.admitted.setdefault(exposure, set()).update(self.protected.text_digest(t) for t in texts)


# --- fingerprint --------------------------------------------------------------------------------
def test_fingerprint_is_stable_for_a_key_and_differs_across_keys():
    key = bytes(range(16))
    a, b, c = TextFingerprint(n=5, key=key), TextFingerprint(n=5, key=key), TextFingerprint(n=5, key=b"x" * 16)
    for fp in (a, b, c):
        fp.add([TRAIN, "five words make a record"])
    assert a.key == key and a._grams == b._grams and a._short == b._short
    assert a.text_digest(TRAIN) == b.text_digest(TRAIN) != c.text_digest(TRAIN)
    assert not set(a._grams) & set(c._grams)
    assert a.hits("say " + TRAIN) == c.hits("say " + TRAIN) == {0}
    assert a.text_digest(TRAIN) != a.text_digest(TRAIN + " ")  # the exact text, not its words


def test_fingerprint_default_key_is_random():
    a, b = TextFingerprint(), TextFingerprint()
    assert len(a.key) == 16 and a.key != b.key
    assert a.text_digest(TRAIN) != b.text_digest(TRAIN)


def test_fingerprint_digest_is_the_same_in_another_process():
    key = bytes(range(16))
    code = ("from silobridge.boundary.fingerprint import TextFingerprint as T; f = T(n=5, key=bytes(range(16)));"
            f"f.add([{TRAIN!r}]); print(f.text_digest({TRAIN!r}), sorted(f._grams)[0])")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345"}).stdout.split()
    here = TextFingerprint(n=5, key=key)
    here.add([TRAIN])
    assert other == [here.text_digest(TRAIN), str(sorted(here._grams)[0])]


# --- strings ------------------------------------------------------------------------------------
def test_strings_finds_every_string_but_not_numeric_arrays():
    w = Weights(tensors={"layer.0": np.ones(3, np.float32)}, origin="sm",
                meta={"tokenizer": {"vocab.txt": "hello\nworld"}, "kept": [0, 1], "names": ("a", ["b"])},
                exposure="private_model", privacy=PrivacySpend(1.0, 1e-5, "dp-sgd"))
    found = strings(w)
    for s in ["layer.0", "sm", "tokenizer", "vocab.txt", "hello\nworld", "kept", "a", "b", "private_model",
              "dp-sgd"]:
        assert s in found
    assert all(isinstance(s, str) for s in found)
    c = Config(values={"nested": [{"deep key": "deep value"}], "n": 3})
    assert {"nested", "deep key", "deep value"} <= set(strings(c))
    batch = TextBatch(["one", "two"], purpose="pool", soft=np.zeros((2, 2), np.float32))
    assert sorted(strings(batch)) == ["one", "pool", "two"]
    assert texts(batch) == ["one", "two"] and metadata(batch) == ["pool"]
    assert "smuggled" in strings(SoftLabels(values=np.array(["smuggled"]), label_names=["x"]))


def test_metadata_keeps_a_copy_of_an_item_placed_elsewhere():
    batch = TextBatch([TRAIN], purpose=TRAIN)
    assert metadata(batch) == [TRAIN]


# --- no-private-records -------------------------------------------------------------------------
@pytest.mark.parametrize("carrier", [
    TextBatch([PUBLIC], purpose="intro: " + TRAIN, exposure="inference_records"),
    Config(values={"prompt": {"examples": ["x", TRAIN]}}, exposure="inference_records"),
    Config(values={TRAIN: 1}, exposure="inference_records"),
    Weights(tensors={"w": np.zeros(4, np.float32)}, meta={"tokenizer": {"merges.txt": "a b\n" + TRAIN}},
            exposure="inference_records"),
], ids=["purpose", "config-value", "config-key", "weights-meta"])
def test_metadata_smuggling_is_refused_whatever_is_declared(carrier):
    d = Data()
    d.admit([TRAIN], "inference_records")  # even an admitted text may not ride in metadata
    err = refused("no-private-records", d.rule, carrier, {"inference_records", "private_records"})
    assert "metadata" in str(err)


def test_inference_exposure_admits_only_admitted_inference_inputs():
    d = Data()
    d.admit([INFER], "inference_records")
    declared = {"inference_records"}
    send(d.rule, TextBatch([INFER, PUBLIC], exposure="inference_records"), declared)
    err = refused("no-private-records", d.rule, TextBatch([INFER, TRAIN], exposure="inference_records"), declared)
    assert "item 1" in str(err) and "admitted" in str(err)
    # an altered inference input (a training record appended) is not the admitted text
    refused("no-private-records", d.rule, TextBatch([INFER + " " + TRAIN], exposure="inference_records"), declared)
    # undeclared by the strategy, or no exposure on the carrier: refused
    refused("no-private-records", d.rule, TextBatch([INFER], exposure="inference_records"))
    refused("no-private-records", d.rule, TextBatch([INFER]), declared)
    send(d.rule, TextBatch([PUBLIC]))


def test_evaluation_exposure_admits_only_evaluation_texts():
    d = Data()
    d.admit([EVAL], "evaluation_records")
    d.admit([INFER], "inference_records")
    declared = {"evaluation_records", "inference_records"}
    send(d.rule, TextBatch([EVAL], exposure="evaluation_records"), declared)
    refused("no-private-records", d.rule, TextBatch([TRAIN], exposure="evaluation_records"), declared)
    refused("no-private-records", d.rule, TextBatch([INFER], exposure="evaluation_records"), declared)
    refused("no-private-records", d.rule, TextBatch([EVAL], exposure="inference_records"), declared)


def test_private_records_exposure_and_default_admission():
    d = Data()
    send(d.rule, TextBatch([TRAIN], exposure="private_records"), {"private_records"})
    refused("no-private-records", d.rule, TextBatch([TRAIN], exposure="private_records"))
    fp = TextFingerprint(n=8)
    fp.add([TRAIN])
    bare = NoPrivateRecords(fp)  # no admission sets: a declared exposure admits nothing
    refused("no-private-records", bare, TextBatch([TRAIN], exposure="private_records"), {"private_records"})
    send(bare, TextBatch([PUBLIC]))


def test_dp_outputs_cross_only_declared_and_with_a_finite_epsilon():
    """Text a DP mechanism released may repeat a private span or a canary (its ε covers it; the auditor counts
    it): the gate lets it through only under the declared 'dp_outputs' exposure with a finite ε on the carrier."""
    d, canary = Data(), NoCanary([CANARY])
    spend = PrivacySpend(8.0, 1e-5, "DP-SGD (rdp)")
    declared = {DP_OUTPUTS}
    for rule, text in ((d.rule, TRAIN), (canary, f"my code is {CANARY}")):
        send(rule, TextBatch([PUBLIC, text], privacy=spend, exposure=DP_OUTPUTS), declared)
        refused(rule.name, rule, TextBatch([text], privacy=spend, exposure=DP_OUTPUTS))  # not declared
        refused(rule.name, rule, TextBatch([text], privacy=spend), declared)  # no exposure on the carrier
        refused(rule.name, rule, TextBatch([text], exposure=DP_OUTPUTS), declared)  # no ε
        refused(rule.name, rule, TextBatch([text], privacy=PrivacySpend(float("inf"), 1e-5, "none"),
                                           exposure=DP_OUTPUTS), declared)
    err = refused("no-private-records", d.rule, TextBatch([TRAIN], exposure=DP_OUTPUTS), declared)
    assert "no finite ε" in str(err) and "PrivacySpend" in err.fix
    # metadata is never covered, DP or not
    refused("no-private-records", d.rule, TextBatch([PUBLIC], purpose=TRAIN, privacy=spend, exposure=DP_OUTPUTS),
            declared)


def test_admissions_made_after_the_rule_is_built_count():
    d = Data()
    batch = TextBatch([INFER], exposure="inference_records")
    send(d.rule, batch, {"inference_records"})  # not yet protected: nothing to refuse
    d.protected.add([INFER])
    refused("no-private-records", d.rule, batch, {"inference_records"})
    d.admit([INFER], "inference_records")
    send(d.rule, batch, {"inference_records"})


# --- no-canary ----------------------------------------------------------------------------------
@pytest.mark.parametrize("carrier", [
    TextBatch([PUBLIC], purpose=f"code {CANARY}"),
    Config(values={"note": [f"my code is {CANARY}"]}),
    Weights(tensors={}, meta={"tokenizer": {"added_tokens.json": f'{{"{CANARY}": 3}}'}}),
    Activations(values=np.frombuffer(CANARY.encode() * 4, np.uint8).copy()),
], ids=["purpose", "config", "weights-meta", "array-bytes"])
def test_canary_in_metadata_or_bytes_is_refused(carrier):
    refused("no-canary", NoCanary([CANARY]), carrier, {"inference_records"})


def test_canary_waiver_only_for_declared_private_records():
    rule = NoCanary([CANARY])
    batch = TextBatch([f"my code is {CANARY}"], exposure="private_records")
    send(rule, batch, {"private_records"})
    refused("no-canary", rule, batch)  # the strategy did not declare it
    refused("no-canary", rule, TextBatch([f"my code is {CANARY}"], exposure="inference_records"),
            {"inference_records", "private_records"})


# --- no-lm-weights ------------------------------------------------------------------------------
class LM:
    """Random arrays standing in for an LM's parameters (2,048 elements), read lazily."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.params = [rng.normal(size=s).astype(np.float32) for s in [(16, 16), (32, 16), (16, 32), (256,), (512,)]]
        self.reads = 0

    def parameters(self):
        self.reads += 1
        return iter(self.params)


def lm_weights(arrays, share=None, origin="emulator", exposure="lm_weights"):
    meta = {} if share is None else {"revealed_param_share": share}
    return Weights(tensors={f"t{i}": a.copy() for i, a in enumerate(arrays)}, origin=origin, meta=meta,
                   exposure=exposure)


def test_lm_weights_waiver_up_to_the_declared_share():
    lm = LM()
    rule = NoModelWeights(lm.parameters)
    decl = {"lm_weights"}
    two = [lm.params[0], lm.params[1]]  # 256 + 512 of 2,048 elements
    assert rule.exact_share(lm_weights(two)) == pytest.approx(768 / 2048)
    send(rule, lm_weights(two, share=768 / 2048), decl, sender="model")
    send(rule, lm_weights(two, share=0.5), decl, sender="model")
    err = refused("no-lm-weights", rule, lm_weights(two, share=0.25), decl, sender="model")
    assert "revealed_param_share" in str(err)
    refused("no-lm-weights", rule, lm_weights(two), decl, sender="model")  # declares no share: 0
    send(rule, lm_weights(lm.params, share=1.0, origin="lm"), decl, sender="model")
    assert lm.reads == 1  # the LM's digests are computed once


def test_lm_weights_need_the_carriers_own_declaration():
    lm = LM()
    rule = NoModelWeights(lm.parameters)
    leak = lm_weights([lm.params[2]], share=1.0, origin="adapter", exposure=None)
    refused("no-lm-weights", rule, leak, {"lm_weights"}, sender="model")  # strategy declared, carrier did not
    refused("no-lm-weights", rule, lm_weights([lm.params[2]], share=1.0), set(), sender="model")
    refused("no-lm-weights", rule, lm_weights([np.zeros(4, np.float32)], origin="lm", exposure=None),
            {"lm_weights"}, sender="model")
    refused("no-lm-weights", rule, lm_weights([np.zeros(4, np.float32)], origin="lm"), set(), sender="model")
    # a non-Weights carrier declares no share: any exact LM tensor is refused
    refused("no-lm-weights", rule, Activations(values=lm.params[0].copy(), exposure="lm_weights"),
            {"lm_weights"}, sender="model")


def test_other_weights_pass_without_reading_the_lm():
    lm = LM()
    rule = NoModelWeights(lm.parameters)
    send(rule, SoftLabels(values=np.zeros((2, 2), np.float32)), sender="model")
    send(rule, Weights(tensors={"b": np.ones(16, np.float32)}), sender="model")  # too small to compare
    assert lm.reads == 0
    fresh = np.random.default_rng(1).normal(size=(32, 32)).astype(np.float32)
    send(rule, Weights(tensors={"w": fresh}), sender="model")


# --- no-private-model ---------------------------------------------------------------------------
def test_private_model_must_be_declared_by_carrier_and_strategy():
    rule = NoPrivateModel()
    sm = {"w": np.ones((4, 4), np.float32)}
    send(rule, Weights(tensors=sm, origin="sm", exposure="private_model"), {"private_model"})
    for carrier, declared in [(Weights(tensors=sm, origin="adapter"), {"private_model"}),
                              (Weights(tensors=sm, origin="sm", exposure="private_model"), set()),
                              (Weights(tensors=sm, exposure="inference_records"), {"inference_records"})]:
        err = refused("no-private-model", rule, carrier, declared)
        assert "declare 'private_model' in the strategy's exposes and set exposure='private_model'" in str(err)
    send(rule, TextBatch([PUBLIC]))
    send(rule, SoftLabels(values=np.zeros((2, 2), np.float32)))


# --- auditor ------------------------------------------------------------------------------------
def gate_with_auditor(auditor, name="data", declared=frozenset()):
    gate = Gate(name, Policy([]), Ledger(), declared)
    gate.observers.append(auditor)
    return gate


def test_auditor_counts_canaries_and_records_in_metadata():
    auditor = Auditor([CANARY, "QQQQ-0000-ZZZZ"], [TRAIN, EVAL], ngram=8)
    data = gate_with_auditor(auditor)
    data.send(Weights(tensors={}, meta={"tokenizer": {"vocab.txt": f"a\nb\n{CANARY}"}}), "model", "w")
    assert auditor.canary_hits == 1
    data.send(Config(values={"notes": ["x", TRAIN]}), "model", "c")
    assert auditor.records_seen == {0} and auditor.records_declared == set()
    data.send(TextBatch([PUBLIC], purpose=EVAL, exposure="inference_records"), "model", "t")
    assert auditor.records_seen == {0, 1} and auditor.records_declared == set()  # metadata is never declared
    data.send(TextBatch([EVAL], exposure="evaluation_records"), "model", "e")
    assert auditor.records_declared == {1}
    assert dict(auditor.exposures["inference_records"]) == {"carriers": 1, "texts": 1,
                                                           "bytes": data.ledger.entries[2].bytes}
    counts = auditor.exposure_counts()  # the records each exposure's texts reproduced (metadata not counted)
    assert counts["inference_records"]["records"] == 0 and counts["evaluation_records"]["records"] == 1


def test_auditor_reports_the_model_partys_shares():
    auditor = Auditor([], [], ngram=8)
    model = gate_with_auditor(auditor, name="model")
    model.send(Weights(tensors={}, meta={"revealed_param_share": 0.3}, exposure="lm_weights"), "data", "w")
    model.send(Weights(tensors={}, meta={"revealed_param_share": 0.1}, exposure="lm_weights"), "data", "w")
    assert auditor.model_leakage(0.25) == {"lm_param_share_exact": 0.25, "lm_param_share_declared": 0.3}


def test_auditor_fingerprint_takes_a_key():
    key = bytes(16)
    assert Auditor([], [TRAIN], ngram=8, key=key).fingerprint.key == key
