"""Shared fixtures: tiny random models saved as real HF directories, and a small run config."""
from __future__ import annotations

import os

import pytest

os.environ["SILOBRIDGE_PROGRESS"] = "0"
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _home(tmp_path_factory):
    os.environ["SILOBRIDGE_HOME"] = str(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="session")
def tokenizer_dir():
    from silobridge.models.sm import minilm_path

    return minilm_path()


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, tokenizer_dir):
    """A 5-layer random Llama (with a real tokenizer) saved with save_pretrained: enough layers for
    the default emulator plan (2 bottom + every 4th middle + 2 top)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=5,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-lm")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_sm_dir(tmp_path_factory, tokenizer_dir):
    """A 2-layer random BERT encoder (with a real tokenizer) saved with save_pretrained."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=2, max_position_embeddings=128)
    path = tmp_path_factory.mktemp("tiny-sm")
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


SMALL = ["data.n_private=40", "data.n_val=20", "data.n_public=40", "data.n_test=50", "data.canaries=3",
         "data.n_lm_eval=10"]


@pytest.fixture
def small_cfg(tiny_lm_dir):
    """A run config on the bundled reviews with small splits and the tiny LM."""
    from silobridge.configs import apply_overrides, from_dict
    from silobridge.settings import RunConfig

    return from_dict(RunConfig, apply_overrides({}, SMALL + [f"lm.path={tiny_lm_dir}"]))
