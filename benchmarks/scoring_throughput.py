"""Label-scoring throughput, side by side: silobridge's LM (in process, as the model party scores) in
float32 and bfloat16, and vLLM's CPU build (its own venv, over its OpenAI-compatible HTTP API) in both
dtypes, on the same test reviews, the same prompts (silobridge's, chat template applied) and the same
model (the bundled SmolLM2-135M-Instruct, converted to a HF directory).

    .venv/bin/python benchmarks/scoring_throughput.py [--texts 1000] [--batch-sizes 8,32]
        [--vllm-python /path/to/vllm-venv/bin/python]   # omit to skip vLLM

Throughput = prompt tokens / wall seconds of scoring (tokenisation included; model loading and one
warm-up batch excluded). vLLM is asked for one token with its top-20 log-probs per prompt, all prompts
in one request (it batches them itself); a label word outside the top 20 counts as not found.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import time

import numpy as np
import torch

from silobridge.data import load_reviews
from silobridge.home import home
from silobridge.models.lm import DEFAULT_LM, build_prompt, first_token_ids, load_lm, score_labels
from silobridge.strategies.prompting import PromptConfig, prompt_for, words_for


def prompts_of(lm, texts: list[str], user: str, max_text_tokens: int) -> list[str]:
    tok = lm.tokenizer
    out = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"][:max_text_tokens]
        out.append(build_prompt(lm, user.replace("{text}", tok.decode(ids))))
    return out


def silobridge_rate(texts, user, words, cfg, dtype: str, batch: int) -> tuple[float, np.ndarray]:
    lm = load_lm(None, threads=2, dtype=dtype, device="cpu")
    score_labels(lm, texts[:batch], user, words, cfg.max_text_tokens, batch, "warm-up")
    before = lm.meter.tokens_in
    t0 = time.perf_counter()
    logp = score_labels(lm, texts, user, words, cfg.max_text_tokens, batch, f"scoring {dtype}")
    seconds = time.perf_counter() - t0
    return (lm.meter.tokens_in - before) / seconds, logp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vllm_rate(python: str, model_dir: str, prompts: list[str], words: list[str], dtype: str) -> tuple[float, float]:
    """(prompt tokens/s, share of prompts whose label words were all in the top 20) for vLLM's server."""
    import httpx

    port, key = free_port(), "bench-key"
    env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_CPU_KVCACHE_SPACE="2", OMP_NUM_THREADS="2")
    server = subprocess.Popen([python, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
                               "--served-model-name", "lm", "--api-key", key, "--dtype", dtype,
                               "--max-model-len", "2048", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url, headers = f"http://127.0.0.1:{port}/v1", {"Authorization": f"Bearer {key}"}
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/models", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise SystemExit(f"vLLM ({dtype}) exited with {server.returncode}")
            time.sleep(1)
        body = {"model": "lm", "max_tokens": 1, "logprobs": 20, "temperature": 0}
        httpx.post(url + "/completions", headers=headers, json=body | {"prompt": prompts[:8]}, timeout=600)
        t0 = time.perf_counter()
        r = httpx.post(url + "/completions", headers=headers, json=body | {"prompt": prompts}, timeout=3600)
        seconds = time.perf_counter() - t0
        r.raise_for_status()
        out = r.json()
        found = np.mean([all(any(k.strip() == w for k in (c["logprobs"]["top_logprobs"][0] or {})) for w in words)
                         for c in out["choices"]])
        return out["usage"]["prompt_tokens"] / seconds, float(found)
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--batch-sizes", default="8,32")
    ap.add_argument("--vllm-python", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    task, _, test = load_reviews()
    texts = test.texts[:args.texts]
    cfg = PromptConfig()
    words = words_for(cfg, task)
    user = prompt_for(cfg, task, words)
    rows, answers = [], {}
    for dtype in ("float32", "bfloat16"):
        for b in [int(x) for x in args.batch_sizes.split(",")]:
            rate, logp = silobridge_rate(texts, user, words, cfg, dtype, b)
            answers[(dtype, b)] = logp.argmax(1)
            rows.append((f"silobridge, batch {b}", dtype, rate, ""))
            print(rows[-1], flush=True)
    ref = answers[("float32", int(args.batch_sizes.split(",")[0]))]
    agree = {k: float((v == ref).mean()) for k, v in answers.items()}
    if args.vllm_python:
        lm = load_lm(None, dtype="float32", device="cpu")
        prompts = prompts_of(lm, texts, user, cfg.max_text_tokens)
        first_token_ids(lm, words)  # the label words start with distinct tokens
        for dtype in ("float32", "bfloat16"):
            rate, found = vllm_rate(args.vllm_python, str(home() / "models" / DEFAULT_LM), prompts, words, dtype)
            rows.append(("vLLM CPU, one request", dtype, rate, f"label words in top 20: {found:.0%}"))
            print(rows[-1], flush=True)
    print(f"\n{args.texts} test reviews, {torch.get_num_threads()} threads; prompt tokens per second:")
    print("| engine | dtype | prompt tokens/s | notes |\n|---|---|---|---|")
    for name, dtype, rate, note in rows:
        b = name.rsplit(" ", 1)[-1]
        if name.startswith("silobridge"):
            note = f"top label agrees with float32 batch {args.batch_sizes.split(',')[0]} on " \
                   f"{agree[(dtype, int(b))]:.1%} of texts"
        print(f"| {name} | {dtype} | {rate:,.0f} | {note} |")
    print(json.dumps({"rows": rows}, default=str))


if __name__ == "__main__":
    main()
