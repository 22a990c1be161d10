"""A strategy cannot reach the other party's state: the data party holds no reference to the model
party, only a Remote; everything crossing is a decoded copy; smuggling weights out is refused."""
import numpy as np
import pytest

from silobridge.bench.runner import load_splits
from silobridge.boundary import InProcessChannel, Ledger, Remote, TextBatch, Weights
from silobridge.errors import BoundaryError, PolicyViolation
from silobridge.parties import DataParty, ModelParty


def parties(cfg):
    splits = load_splits(cfg)
    ch = InProcessChannel(Ledger())
    model = ModelParty(splits.task, cfg.lm, cfg.policy)
    data = DataParty(splits, cfg.sm, cfg.policy, ch, canaries=2)
    ch.connect(model)
    ch.connect(data)
    return data, model


def test_data_party_holds_no_model_party(small_cfg):
    data, model = parties(small_cfg)
    assert not any(isinstance(v, ModelParty) for v in vars(data).values())
    assert isinstance(data.model, Remote)
    assert Remote.__slots__ == ("_call",) and not hasattr(data.model, "__dict__")
    assert not any(isinstance(v, DataParty) for v in vars(model).values())


def test_model_op_cannot_return_its_lm(small_cfg):
    data, model = parties(small_cfg)
    model.ops = {"leak": lambda party, c: party.lm,
                 "leak_weights": lambda party, c: Weights(
                     tensors={n: p.detach().numpy() for n, p in party.lm.model.named_parameters()})}
    with pytest.raises(BoundaryError, match="not a Carrier"):
        data.model.call("leak", TextBatch(["x"]))
    with pytest.raises(PolicyViolation, match="no-lm-weights"):
        data.model.call("leak_weights", TextBatch(["x"]))


def test_private_records_and_canaries_cannot_leave(small_cfg):
    data, model = parties(small_cfg)
    model.ops = {"echo": lambda party, c: c}
    with pytest.raises(PolicyViolation, match="no-private-records"):
        data.model.call("echo", TextBatch([data.private.texts[3]]))
    planted = next(t for t in data.private.texts if data.secrets[0] in t)
    with pytest.raises(PolicyViolation, match="no-canary"):
        data.model.call("echo", TextBatch(["note: " + data.secrets[0]]))
    assert planted
    reply = data.model.call("echo", TextBatch(data.public[:3]))  # public text is fine
    assert reply.texts() == data.public[:3]


def test_unknown_operation_is_a_clear_error(small_cfg):
    data, _ = parties(small_cfg)
    with pytest.raises(BoundaryError, match="offers no operation 'nope'"):
        data.model.call("nope", TextBatch(["x"]))


def test_splits_are_disjoint(small_cfg):
    s = load_splits(small_cfg)
    sets = [set(s.private.texts), set(s.val.texts), set(s.public), set(s.test.texts)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not sets[i] & sets[j]
    assert len(np.unique(s.private.labels)) == 2
