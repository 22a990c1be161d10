"""A black-box LM (`lm.path=openai:URL`): our own service's OpenAI-compatible API as the model party's
LM. lm-zero-shot and synthetic run unchanged against it; label scores equal the in-process LM's when
the label words are among the top-k; strategies that need weights refuse with the list of those that
do not."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import SERVICE_KEY, start_service, stop_service

from silobridge.bench.runner import run
from silobridge.errors import ConfigError
from silobridge.models.remote import label_logprobs

TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}")


@pytest.fixture(scope="module")
def chat_lm_dir(tiny_lm_dir, tmp_path_factory):
    """The tiny LM with a chat template, its head rigged so that the reviews' two label words are the top
    two next tokens of every prompt (a constant residual dimension feeds their logits), in an order that
    still depends on the text."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from silobridge.data.loaders import load_bundled

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    tok.chat_template = TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    words = load_bundled("bundled:reviews")[0].answer_words()
    ids = [tok(w, add_special_tokens=False)["input_ids"][0] for w in words]
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0  # dimension 0 of the residual stream: 1 everywhere
        for layer in model.model.layers:  # and nothing writes to it
            layer.self_attn.o_proj.weight[0] = 0
            layer.mlp.down_proj.weight[0] = 0
        for i in ids:
            model.lm_head.weight[i, 0] += 3.0
    path = tmp_path_factory.mktemp("chat-lm")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def black_box(chat_lm_dir, tmp_path_factory, monkeypatch_module):
    proc, url = start_service(chat_lm_dir, tmp_path_factory.mktemp("black-box"))
    monkeypatch_module.setenv("SB_BLACK_BOX_KEY", SERVICE_KEY)
    yield f"openai:{url}/v1"
    stop_service(proc)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def cfg_for(small_cfg, lm_path: str, **strategy):
    lm = dataclasses.replace(small_cfg.lm, path=lm_path, api_key_env="SB_BLACK_BOX_KEY")
    return dataclasses.replace(small_cfg, lm=lm, strategy=strategy)


@pytest.mark.parametrize(("name", "opts"), [("lm-zero-shot", {}), ("router", {"max_lm_calls_per_100": 50}),
                                           ("retrieval", {"source": "public", "k": 2}), ("distill-public", {})])
def test_against_a_black_box_matches_the_in_process_lm(name, opts, small_cfg, chat_lm_dir, black_box, tmp_path):
    local = run(name, cfg_for(small_cfg, chat_lm_dir, **opts), tmp_path / "local")
    remote = run(name, cfg_for(small_cfg, black_box, **opts), tmp_path / "remote")
    q = remote["objectives"]["lm_queries"]
    assert q["black_box"].startswith("chat-lm") and q["top_k"] == 20 and q["truncation"] == "tokens"
    assert q["labels_outside_top_k"] == 0  # the rigged head: both label words always in the top 20
    assert q["calls"] == local["objectives"]["lm_queries"]["calls"]  # calibration texts + test texts
    lu, ru = local["objectives"]["utility"], remote["objectives"]["utility"]
    assert (ru["accuracy"], ru["macro_f1"]) == (lu["accuracy"], lu["macro_f1"])
    # the server batches prompts differently (float rounding): the rigged LM's near-tied scores may swap a pair
    assert ru["auc"] == pytest.approx(lu["auc"], abs=0.01)
    assert "lm_eval" not in remote["report"]  # a black box's perplexity is not measured
    assert remote["objectives"]["communication"]["bytes_data_to_model"] > 0


def test_synthetic_runs_against_a_black_box(small_cfg, black_box, tmp_path):
    r = run("synthetic", cfg_for(small_cfg, black_box, per_class=3, max_new_tokens=12, min_words=1,
                                 agreement_keep=1.0, noise_seed=0), tmp_path)
    assert r["report"]["generated"] == 12 and r["objectives"]["lm_queries"]["calls"] == 12
    assert r["objectives"]["lm_queries"]["tokens_out"] > 0


def test_strategies_that_need_weights_refuse_a_black_box(small_cfg, black_box, tmp_path):
    with pytest.raises(ConfigError, match="lm-zero-shot") as info:
        run("reverse-distill", cfg_for(small_cfg, black_box), tmp_path)
    assert "black box" in str(info.value)


def test_label_words_from_top_alternatives():
    top = {"positive": -0.5, " neg": -1.0, "the": -3.0}
    (pos, hit_p), (neg, hit_n), (other, hit_o) = label_logprobs(top, ["Positive", "negative", "neutral"])
    assert (pos, hit_p) == (-0.5, True) and (neg, hit_n) == (-1.0, True)  # a token that starts the word
    assert (other, hit_o) == (-3.0, False)  # absent: the smallest log-prob returned, flagged
    assert np.isfinite([pos, neg, other]).all()
