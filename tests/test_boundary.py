"""Channel, ledger and every policy rule."""
import numpy as np
import pytest
import torch

from silobridge.boundary import (Carrier, Ledger, MaxBytes, NoCanary, NoModelWeights, NoPrivateRecords, Policy,
                                 SoftLabels, TextBatch, TextFingerprint, Weights)
from silobridge.boundary.gate import Gate
from silobridge.errors import BoundaryError, PolicyViolation

PRIVATE = ["the quick brown fox jumps over the lazy dog while the farmer sleeps soundly at noon",
           "my short private note stays here"]


class Channel:
    """Two parties' gates wired back to back, as a transport would: the data party calls, the model
    party answers every op with a fixed reply."""

    def __init__(self, data_rules, model_rules, declared, reply, path):
        self.data = Gate("data", Policy(list(data_rules)), Ledger(path), declared)
        self.model = Gate("model", Policy(list(model_rules)), Ledger(), declared)
        self.reply = reply
        self.seen = []

    def call(self, op, carrier):
        _, payload = self.data.send(carrier, "model", op)
        _, received = self.model.receive(payload, "data", op)
        self.seen.append(received)
        reply = self.reply if self.reply is not None else SoftLabels(values=np.zeros((1, 2), np.float32))
        _, out = self.model.send(reply, "data", op + ".reply")
        return self.data.receive(out, "model", op + ".reply")[1]


def make(data_rules=(), model_rules=(), declared=frozenset(), reply=None, path=None):
    ch = Channel(data_rules, model_rules, declared, reply, path)
    return ch, ch.data.ledger, ch.data, ch


def fingerprint():
    fp = TextFingerprint(n=8)
    fp.add(PRIVATE)
    return fp


def test_ledger_bytes_equal_serialized_sizes(tmp_path):
    ch, ledger, _, _ = make(path=tmp_path / "ledger.jsonl")
    req = TextBatch(["a public sentence", "another"], purpose="pool")
    reply = ch.call("score", req)
    assert [e.bytes for e in ledger.entries] == [req.nbytes, reply.nbytes]
    assert ledger.bytes_between("data", "model") == req.nbytes
    assert ledger.bytes_between("model", "data") == reply.nbytes
    on_disk = Ledger.read(tmp_path / "ledger.jsonl")
    assert [(e.sender, e.receiver, e.op, e.kind, e.bytes) for e in on_disk] == [
        ("data", "model", "score", "text", req.nbytes), ("model", "data", "score.reply", "soft_labels", reply.nbytes)]
    assert on_disk[0].sha256 == req.digest()


def test_receiver_gets_a_copy_not_the_object():
    ch, _, _, model = make()
    arr = np.ones((1, 2), np.float32)
    ch.call("x", SoftLabels(values=arr))
    received = model.seen[0]
    received.values[0, 0] = 42
    assert arr[0, 0] == 1  # nothing shared across the boundary


def test_verbatim_private_record_is_refused():
    ch, ledger, _, model = make([NoPrivateRecords(fingerprint())])
    with pytest.raises(PolicyViolation, match="no-private-records") as info:
        ch.call("score", TextBatch(["intro: " + PRIVATE[1] + "!"]))
    assert "Fix:" in str(info.value)
    assert ledger.entries == [] and model.seen == []  # nothing crossed, nothing recorded


def test_long_overlapping_span_is_refused_but_short_overlap_passes():
    ch, _, _, _ = make([NoPrivateRecords(fingerprint())])
    with pytest.raises(PolicyViolation, match="no-private-records"):
        text = "Fox story: The QUICK brown fox jumps over the lazy dog, while it rains"
        ch.call("s", TextBatch([text]))
    ch.call("s", TextBatch(["the quick brown fox is a common phrase"]))


def test_declared_exposure_passes_undeclared_is_refused():
    batch = TextBatch([PRIVATE[0]], exposure="inference_records")
    fp = fingerprint()
    admitted = {"inference_records": {fp.text_digest(PRIVATE[0])}}  # it arrived as an inference input
    ch, ledger, _, _ = make([NoPrivateRecords(fp, admitted)], declared=frozenset({"inference_records"}))
    ch.call("s", batch)
    assert ledger.entries[0].exposure == "inference_records"
    ch2, _, _, _ = make([NoPrivateRecords(fingerprint())], declared=frozenset())
    with pytest.raises(PolicyViolation, match="no-private-records"):
        ch2.call("s", batch)


def test_canary_is_refused_even_when_exposure_declared():
    ch, _, _, _ = make([NoCanary(["ZK2M-8XBR-4F7Q"])], declared=frozenset({"inference_records"}))
    with pytest.raises(PolicyViolation, match="no-canary"):
        ch.call("s", TextBatch(["my code is ZK2M-8XBR-4F7Q ok"], exposure="inference_records"))


def test_lm_weights_are_refused_unless_declared():
    layer = torch.nn.Linear(32, 32)
    params = lambda: (p.detach().numpy() for p in layer.parameters())  # noqa: E731
    leak = Weights(tensors={"w": layer.weight.detach().numpy().copy()}, origin="adapter")
    ch, _, _, _ = make(model_rules=[NoModelWeights(params)], reply=leak)
    with pytest.raises(PolicyViolation, match="no-lm-weights"):
        ch.call("get", TextBatch(["hi"]))
    labelled = Weights(tensors={"w": np.zeros(4, np.float32)}, origin="lm")
    ch, _, _, _ = make(model_rules=[NoModelWeights(params)], reply=labelled)
    with pytest.raises(PolicyViolation, match="no-lm-weights"):
        ch.call("get", TextBatch(["hi"]))
    declared = Weights(tensors=dict(leak.tensors), origin="emulator", exposure="lm_weights",
                       meta={"revealed_param_share": 0.97})  # the weight matrix is 1024 of 1056 parameters
    ch, ledger, _, _ = make(model_rules=[NoModelWeights(params)], reply=declared, declared=frozenset({"lm_weights"}))
    ch.call("get", TextBatch(["hi"]))
    assert ledger.entries[-1].kind == "weights"
    # other weights (e.g. a fresh adapter) pass
    ch, _, _, _ = make(model_rules=[NoModelWeights(params)],
                       reply=Weights(tensors={"w": np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)}))
    ch.call("get", TextBatch(["hi"]))


def test_oversized_carrier_is_refused():
    ch, _, _, _ = make([MaxBytes(1000)])
    ch.call("s", TextBatch(["x" * 100]))
    with pytest.raises(PolicyViolation, match="max-bytes"):
        ch.call("s", TextBatch(["x" * 2000]))


def test_non_carrier_is_refused():
    ch, _, _, _ = make()
    with pytest.raises(BoundaryError, match="not a Carrier"):
        ch.call("s", {"texts": ["raw dict"]})
    ch, _, _, _ = make(reply=object())
    with pytest.raises(BoundaryError, match="not a Carrier"):
        ch.call("s", TextBatch(["x"]))


def test_fingerprint_finds_records_and_ignores_short_ones():
    fp = TextFingerprint(n=5, min_words=3)
    fp.add(["one two three four five six", "alpha beta gamma", "hi there"])
    assert fp.hits("xx one two three four five yy") == {0}
    assert fp.hits("ALPHA, beta; gamma!") == {1}
    assert fp.hits("hi there") == set()  # below min_words: not identifying
    assert fp.hits("one two three four six") == set()
    assert isinstance(Carrier, type)
