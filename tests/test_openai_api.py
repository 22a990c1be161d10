"""The model party's OpenAI-compatible API on the tiny LM: response shapes, greedy output equal to the
LM's own, prompt log-probs equal to a direct forward pass, bad input as 4xx JSON, batching, metering."""
from __future__ import annotations

import json
import threading

import pytest
import torch

KEY = "test-openai-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def api(tiny_lm_dir, tmp_path_factory):
    from fastapi.testclient import TestClient

    from silobridge.models.lm import load_lm
    from silobridge.parties.model_server import ModelServer
    from silobridge.serving.engine import CompletionEngine
    from silobridge.settings import LMConfig, PolicyConfig
    from silobridge.transports.http_server import create_app

    root = tmp_path_factory.mktemp("openai")
    lm_cfg = LMConfig(path=str(tiny_lm_dir), threads=1, dtype="float32")
    server = ModelServer(lm_cfg, PolicyConfig(max_bytes=200_000), root=root)
    engine = CompletionEngine(lambda: load_lm(str(tiny_lm_dir), 1, "float32", "cpu"), "tiny", root / "calls.jsonl",
                              max_model_len=64, window=0.05)
    with TestClient(create_app(server, KEY, engine)) as client:
        yield client, engine


def post(client, path, body, headers=AUTH):
    return client.post(path, content=json.dumps(body), headers=headers)


def test_models_and_key(api):
    client, _ = api
    r = client.get("/v1/models", headers=AUTH)
    assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == ["tiny"]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        bad = post(client, "/v1/completions", {"model": "tiny", "prompt": "hi"}, headers)
        assert bad.status_code == 401 and "API key" in bad.json()["error"]["message"]


def test_greedy_completion_is_the_lms_own_greedy_output(api):
    client, engine = api
    lm = engine.lm
    prompt = "The cat sat on the"
    r = post(client, "/v1/completions", {"model": "tiny", "prompt": prompt, "max_tokens": 6, "temperature": 0,
                                         "logprobs": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    choice = body["choices"][0]
    ids = lm.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        own = lm.model.generate(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], max_new_tokens=6,
                                do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    new = own[0, ids["input_ids"].shape[1]:].tolist()
    assert choice["text"] == lm.tokenizer.decode(new, skip_special_tokens=True)
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(new)
    for tok, logp, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        assert len(top) <= 3 and logp <= 0
        assert tok in top and abs(top[tok] - max(top.values())) < 1e-5  # greedy: the chosen token is the top one
    assert body["usage"]["completion_tokens"] == len(new)
    assert body["usage"]["prompt_tokens"] == ids["input_ids"].shape[1]


def test_echo_with_no_tokens_gives_the_prompts_log_probs(api):
    client, engine = api
    lm = engine.lm
    prompt = "Dogs like to play in the park"
    r = post(client, "/v1/completions", {"model": "tiny", "prompt": [prompt], "max_tokens": 0, "echo": True,
                                         "logprobs": 1})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["text"] == prompt
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(input_ids=ids).logits[0, :-1].float(), -1)
    want = logp.gather(-1, ids[0, 1:, None])[:, 0].tolist()
    got = choice["logprobs"]["token_logprobs"]
    assert got[0] is None and len(got) == ids.shape[1]
    assert got[1:] == pytest.approx(want, abs=1e-4)


TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}")


def test_chat_with_top_logprobs(api):
    client, engine = api
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]}
    r = post(client, "/v1/chat/completions", chat)  # the tiny LM's tokenizer has no chat template
    assert r.status_code == 400 and "chat template" in r.json()["error"]["message"]
    engine.lm.tokenizer.chat_template = TEMPLATE
    r = post(client, "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}],
                                              "max_tokens": 5, "temperature": 0, "logprobs": True,
                                              "top_logprobs": 4})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    for item in choice["logprobs"]["content"]:
        assert len(item["top_logprobs"]) == 4 and item["bytes"] == list(item["token"].encode())


@pytest.mark.parametrize(("body", "status"), [
    ({"model": "nope", "prompt": "hi"}, 404),
    ({"model": "tiny", "prompt": "hi", "max_tokens": -1}, 400),
    ({"model": "tiny", "prompt": "hi", "max_tokens": 1000}, 400),  # over max_model_len
    ({"model": "tiny", "prompt": "word " * 80, "max_tokens": 1}, 400),  # oversized prompt
    ({"model": "tiny", "prompt": "hi", "n": 2}, 400),
    ({"model": "tiny", "prompt": "hi", "stream": True}, 400),
    ({"model": "tiny", "prompt": "hi", "logprobs": 50}, 400),
    ({"model": "tiny", "prompt": [10 ** 9]}, 400),  # a token id outside the vocabulary
    ({"model": "tiny", "prompt": "hi", "max_tokens": 0}, 400),  # nothing to return without echo
    ({"prompt": "hi"}, 400),
])
def test_bad_requests_get_a_json_error(api, body, status):
    client, _ = api
    r = post(client, "/v1/completions", body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["code"] == status


def test_malformed_and_oversized_bodies(api):
    client, _ = api
    r = client.post("/v1/completions", content=b"{not json", headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["message"]
    r = client.post("/v1/chat/completions", content=json.dumps({"model": "tiny", "messages": []}), headers=AUTH)
    assert r.status_code == 400
    r = client.post("/v1/completions", content=b"x" * 300_000, headers=AUTH)
    assert r.status_code == 413


def test_concurrent_requests_share_batches_and_every_call_is_metered(api):
    client, engine = api
    before_batches, before_requests = engine.stats.batches, engine.stats.requests
    lines_before = len(engine.ledger.path.read_text().splitlines())
    statuses = []

    def one(i: int) -> None:
        r = post(client, "/v1/completions", {"model": "tiny", "prompt": f"Request number {i}", "max_tokens": 4,
                                             "temperature": 0})
        statuses.append(r.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    assert engine.stats.requests - before_requests == 8
    assert engine.stats.batches - before_batches < 8  # some requests ran together
    calls = [json.loads(x) for x in engine.ledger.path.read_text().splitlines()[lines_before:]]
    assert len(calls) == 8 and all(c["endpoint"] == "completions" and c["bytes_in"] > 0 and c["bytes_out"] > 0
                                   and c["prompt_tokens"] > 0 and 0 <= c["completion_tokens"] <= 4 for c in calls)
    stats = client.get("/v1/stats", headers=AUTH).json()
    assert stats["completions"]["requests"] == engine.stats.requests
