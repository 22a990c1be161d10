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


# float32: the same numbers on every CPU (bfloat16 has tests of its own, test_device.py)
SMALL = ["data.n_private=40", "data.n_val=20", "data.n_public=40", "data.n_test=50", "data.canaries=3",
         "data.n_lm_eval=10", "lm.dtype=float32"]


@pytest.fixture
def small_cfg(tiny_lm_dir):
    """A run config on the bundled reviews with small splits and the tiny LM."""
    from silobridge.configs import apply_overrides, from_dict
    from silobridge.settings import RunConfig

    return from_dict(RunConfig, apply_overrides({}, SMALL + [f"lm.path={tiny_lm_dir}"]))


SERVICE_KEY = "test-service-key-0123456789"


def start_service(tiny_lm_dir, root, *imports: str):
    """`silobridge serve` in a subprocess (its own process: nothing of the test's is reachable from it),
    on a free port of 127.0.0.1; returns (process, url). ``imports``: test modules it imports first
    (strategies registered only there)."""
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tests = str(Path(__file__).parent)
    boot = (f"import sys; sys.path.insert(0, {tests!r}); " + "".join(f"import {m}; " for m in imports)
            + "from silobridge.cli.main import main; main()")
    env = dict(os.environ, SB_TEST_KEY=SERVICE_KEY, SILOBRIDGE_HOME=str(root), SILOBRIDGE_PROGRESS="0")
    proc = subprocess.Popen([sys.executable, "-c", boot, "serve", "--lm", tiny_lm_dir, "--port", str(port),
                             "--api-key-env", "SB_TEST_KEY", "--home", str(root / "model-party"),
                             "--set", "lm.dtype=float32",
                             "--log-level", "warning"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited: {proc.stdout.read().decode(errors='replace')[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the service did not answer /health within 60 s")


def stop_service(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except Exception:
        proc.kill()


@pytest.fixture(scope="session")
def model_service(tiny_lm_dir, tmp_path_factory):
    """One model-party service for the session's cross-process runs: a Remote to pass to ``run``."""
    from silobridge.bench.runner import Remote

    proc, url = start_service(tiny_lm_dir, tmp_path_factory.mktemp("service"))
    yield Remote(url, SERVICE_KEY)
    stop_service(proc)


def write_tiny_table(path, n: int = 300, seed: int = 0):
    """A tiny generated table (task 'tabular'): numeric, categorical and partly missing features, and a
    label that depends on them; written as CSV to ``path``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = np.round(rng.lognormal(10, 0.6, n), 2)
    home = rng.choice(["rent", "own", "parents"], n)
    score = np.where(rng.random(n) < 0.15, np.nan, np.round(rng.normal(600, 80, n)))
    logit = (np.log(income) - 10) * 2 + (home == "own") * 1.0 - (age < 25) * 1.0 + rng.normal(0, 0.7, n)
    df = pd.DataFrame({"age": age, "income": income, "home": home, "score": score,
                       "label": np.where(logit > 0, "yes", "no")})
    df.to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory):
    return write_tiny_table(tmp_path_factory.mktemp("table") / "loans.csv")


@pytest.fixture
def table_cfg(tiny_lm_dir, tiny_table):
    """``small_cfg`` on the tiny generated table (task tabular, the boosting SM)."""
    from silobridge.configs import apply_overrides, from_dict
    from silobridge.settings import RunConfig

    return from_dict(RunConfig, apply_overrides({}, SMALL + [f"lm.path={tiny_lm_dir}", "task=tabular",
                                                             "audit.exposure_references=100",
                                                             f"data.path={tiny_table}", "data.label_col=label"]))
