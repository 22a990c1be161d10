"""A strategy cannot reach the other party's state: the data party holds no object of the model party,
only a Link; everything crossing is a decoded copy; the model side sees only the parameters it was
sent; smuggling weights or records out is refused."""
import dataclasses

import numpy as np
import pytest

from silobridge.bench.runner import load_splits
from silobridge.boundary import Ledger, TextBatch, Weights
from silobridge.configs import to_dict
from silobridge.errors import BoundaryError, PolicyViolation
from silobridge.parties import DataParty, Link, ModelServer
from silobridge.parties.model_party import ModelParty
from silobridge.parties.model_server import Session
from silobridge.strategies import get
from silobridge.transports import InProcessTransport


def parties(cfg, tmp_path, strategy="lm-zero-shot", params=None):
    spec = get(strategy)
    splits = load_splits(cfg)
    server = ModelServer(cfg.lm, cfg.policy, root=tmp_path / "model")
    hello = {"strategy": strategy, "kind": "classify", "task": dataclasses.asdict(splits.task),
             "params": params if params is not None else {}, "seed": 0}
    data = DataParty(splits, cfg.sm, cfg.policy, InProcessTransport(server), Ledger(), hello,
                     declared=spec.exposes, canaries=2)
    return data, server


def opened(data, server) -> Session:
    data.model.call("score", TextBatch(data.public[:2]))  # the session opens on the first call
    return server.sessions[data.model.session]


def test_data_party_holds_no_model_party_object(small_cfg, tmp_path):
    data, server = parties(small_cfg, tmp_path)
    session = opened(data, server)
    assert isinstance(data.model, Link) and not hasattr(data.model, "__dict__")
    forbidden = (ModelServer, ModelParty, Session)
    assert not any(isinstance(v, forbidden) for v in vars(data).values())
    assert not any(isinstance(getattr(data.model, s), forbidden) for s in ("_gate", "session", "closed"))
    assert not any(isinstance(v, DataParty) for v in vars(session).values())
    assert not any(isinstance(v, DataParty) for v in vars(session.party).values())


def test_model_op_cannot_return_its_lm(small_cfg, tmp_path):
    data, server = parties(small_cfg, tmp_path)
    session = opened(data, server)
    lm = session.party.lm
    session.ops["leak"] = lambda c: lm
    session.ops["leak_weights"] = lambda c: Weights(
        tensors={n: p.detach().numpy() for n, p in lm.model.named_parameters()})
    with pytest.raises(BoundaryError, match="not a Carrier"):
        data.model.call("leak", TextBatch(["x"]))
    with pytest.raises(PolicyViolation, match="no-lm-weights"):
        data.model.call("leak_weights", TextBatch(["x"]))


def test_private_records_and_canaries_cannot_leave(small_cfg, tmp_path):
    data, server = parties(small_cfg, tmp_path)
    opened(data, server).ops["echo"] = lambda c: c
    with pytest.raises(PolicyViolation, match="no-private-records"):
        data.model.call("echo", TextBatch([data.private.texts[3]]))
    with pytest.raises(PolicyViolation, match="no-private-records"):  # a declared exposure covers only its texts
        data.model.call("echo", TextBatch([data.private.texts[3]], exposure="inference_records"))
    with pytest.raises(PolicyViolation, match="no-private-records"):  # nor does any exposure cover metadata
        data.model.call("echo", TextBatch(["hi"], purpose=data.private.texts[3]))
    with pytest.raises(PolicyViolation, match="no-canary"):
        data.model.call("echo", TextBatch(["note: " + data.secrets[0]]))
    reply = data.model.call("echo", TextBatch(data.public[:3]))  # public text is fine
    assert reply.texts() == data.public[:3]


def test_unknown_operation_is_a_clear_error(small_cfg, tmp_path):
    data, _ = parties(small_cfg, tmp_path)
    with pytest.raises(BoundaryError, match="offers no operation 'nope'"):
        data.model.call("nope", TextBatch(["x"]))


def test_model_side_reads_only_the_parameters_it_was_sent(small_cfg, tmp_path):
    data, server = parties(small_cfg, tmp_path, params={"max_text_tokens": 16})
    side = opened(data, server).side
    assert side.config.max_text_tokens == 16
    with pytest.raises(BoundaryError, match="does not send"):
        side.config.calibration  # a data-side option: never crosses  # noqa: B018
    with pytest.raises(BoundaryError, match="not part of 'lm-zero-shot''s protocol"):
        parties(small_cfg, tmp_path, params={"calibration": "none"})[0].model.call("score", TextBatch(["x"]))


def test_every_protocol_parameter_is_an_option_of_the_config():
    from silobridge.strategies import all_strategies

    for name, spec in all_strategies().items():
        options = set(to_dict(spec.Config()))
        assert set(spec.model_params) <= options, name


def test_splits_are_disjoint(small_cfg):
    s = load_splits(small_cfg)
    sets = [set(s.private.texts), set(s.val.texts), set(s.public), set(s.test.texts)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not sets[i] & sets[j]
    assert len(np.unique(s.private.labels)) == 2


def test_model_side_in_another_process_reaches_no_data_party_state(small_cfg, tiny_lm_dir, tmp_path):
    """The spy's model side counts data-party objects and canary-bearing strings in its process: some in
    this process (it can see), none when it runs in the service's process over HTTP."""
    import os

    import spy_strategy  # noqa: F401  (registers 'test-spy' here too)
    from conftest import SERVICE_KEY, start_service, stop_service

    from silobridge.bench.runner import Remote, run

    local = run("test-spy", small_cfg, tmp_path / "local")["report"]
    assert local["pid"] == os.getpid() and local["data_party_objects"] > 0 and local["canary_strings"] > 0
    proc, url = start_service(tiny_lm_dir, tmp_path / "service", "spy_strategy")
    try:
        remote = run("test-spy", small_cfg, tmp_path / "http", remote=Remote(url, SERVICE_KEY))["report"]
    finally:
        stop_service(proc)
    assert remote["pid"] == proc.pid != os.getpid()
    assert remote["data_party_objects"] == 0 and remote["canary_strings"] == 0


def test_errors_in_the_model_party_come_back_typed_over_http(small_cfg, tmp_path, model_service):
    """The same typed error (class, where, fix) whether the model party is here or in another process."""
    from silobridge.transports.http_client import HttpTransport

    splits = load_splits(small_cfg)
    hello = {"strategy": "lm-zero-shot", "kind": "classify", "task": dataclasses.asdict(splits.task),
             "params": {}, "seed": 0}
    errors = []
    for transport in (InProcessTransport(ModelServer(small_cfg.lm, small_cfg.policy, root=tmp_path / "m")),
                      HttpTransport(model_service.url, model_service.api_key)):
        data = DataParty(splits, small_cfg.sm, small_cfg.policy, transport, Ledger(), hello, canaries=2)
        with pytest.raises(BoundaryError) as info:
            data.model.call("nope", TextBatch(["x"]))
        errors.append((type(info.value), info.value.what, info.value.where, info.value.fix))
        bad = dict(hello, params={"max_text_tokens": 2})  # refused by the strategy's own config check
        data = DataParty(splits, small_cfg.sm, small_cfg.policy, transport, Ledger(), bad, canaries=2)
        with pytest.raises(Exception) as info:
            data.model.call("score", TextBatch(["x"]))
        errors.append((type(info.value), info.value.what, info.value.where, info.value.fix))
        transport.close()
    assert errors[:2] == errors[2:]
    assert "offers no operation 'nope'" in errors[0][1] and errors[1][2] == "strategy.max_text_tokens"


def test_tokenizer_file_names_cannot_escape(tmp_path, monkeypatch):
    """An emulator carrier naming a tokenizer file '../x' is refused before anything is written."""
    from silobridge.strategies.emulation import rebuild

    monkeypatch.chdir(tmp_path)
    for name in ("../evil.json", "/tmp/evil.json", "sub/evil.json", ".hidden", ""):
        w = Weights(tensors={}, origin="emulator", exposure="lm_weights",
                    meta={"config": {"model_type": "llama"}, "tokenizer": {name: "x"}})
        with pytest.raises(BoundaryError, match="tokenizer file name"):
            rebuild(w)
    assert not (tmp_path.parent / "evil.json").exists() and list(tmp_path.iterdir()) == []
