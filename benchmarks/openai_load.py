"""A bounded load test of the OpenAI-compatible API: `silobridge serve` and, side by side in the same run,
vLLM's CPU build (its own venv) serving the same bundled LM in the same dtype, under the same load.

    .venv/bin/python benchmarks/openai_load.py [--clients 8] [--requests 50] [--max-tokens 16]
        [--dtype float32] [--vllm-python /path/to/vllm-venv/bin/python]   # omit to skip vLLM

Each of `--clients` threads sends `--requests` completion requests one after another (greedy, up to
`--max-tokens` tokens each, prompts drawn from the bundled reviews' opening words). Reports failed
requests, requests/s, generated tokens/s (from each reply's usage), and latency p50 / p95; then the
service's own counters (batches run)."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from scoring_throughput import free_port  # noqa: E402

KEY = "load-test-key-0123456789abcdef"


def wait_ready(url: str, headers: dict, proc: subprocess.Popen, what: str, tries: int = 900) -> None:
    for _ in range(tries):
        try:
            if httpx.get(url + "/models", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        time.sleep(1)
    proc.kill()
    raise SystemExit(f"{what} did not start")


def load(url: str, model: str, prompts: list[str], clients: int, requests: int, max_tokens: int) -> dict:
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": model, "max_tokens": max_tokens, "temperature": 0}
    httpx.post(url + "/completions", headers=headers, json=body | {"prompt": prompts[0]}, timeout=600)  # warm-up
    latencies, tokens, failures = [], [], []
    lock = threading.Lock()

    def client(c: int) -> None:
        with httpx.Client(timeout=600) as http:
            for i in range(requests):
                t0 = time.perf_counter()
                try:
                    r = http.post(url + "/completions", headers=headers,
                                  json=body | {"prompt": prompts[(c * requests + i) % len(prompts)]})
                    ok = r.status_code == 200
                    n = r.json()["usage"]["completion_tokens"] if ok else 0
                except httpx.HTTPError as exc:
                    ok, n, r = False, 0, exc
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    tokens.append(n)
                    if not ok:
                        failures.append(str(getattr(r, "status_code", r)))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=20)
    return {"requests": len(latencies), "failed": len(failures), "requests_per_s": len(latencies) / wall,
            "tokens_per_s": sum(tokens) / wall, "p50_s": statistics.median(latencies), "p95_s": q[18],
            "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-window-ms", type=float, default=30.0)  # serve's default
    ap.add_argument("--vllm-python", default=None)
    a = ap.parse_args()
    from silobridge.data import load_reviews
    from silobridge.home import home
    from silobridge.models.lm import DEFAULT_LM, load_lm

    load_lm(None, dtype="float32", device="cpu")  # converts the bundled LM to a HF directory once
    prompts = [" ".join(t.split()[:12]) for t in load_reviews()[2].texts[:400]]
    rows = []
    port = free_port()
    env = dict(os.environ, SB_LOAD_KEY=KEY, SILOBRIDGE_PROGRESS="0")
    proc = subprocess.Popen([sys.executable, "-m", "silobridge", "serve", "--port", str(port), "--api-key-env",
                             "SB_LOAD_KEY", "--set", f"lm.dtype={a.dtype}", "--batch-window-ms",
                             str(a.batch_window_ms), "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, {"Authorization": f"Bearer {KEY}"}, proc, "silobridge serve")
        rows.append(("silobridge serve", load(url, "smollm2-135m-instruct", prompts, a.clients, a.requests,
                                              a.max_tokens)))
        stats = httpx.get(url + "/stats", headers={"Authorization": f"Bearer {KEY}"}).json()["completions"]
        print(f"silobridge: {stats['requests']} requests in {stats['batches']} batches", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    if a.vllm_python:
        port = free_port()
        venv = dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_CPU_KVCACHE_SPACE="2", OMP_NUM_THREADS="2")
        proc = subprocess.Popen([a.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model",
                                 str(home() / "models" / DEFAULT_LM), "--served-model-name", "lm", "--api-key", KEY,
                                 "--dtype", a.dtype, "--max-model-len", "2048", "--host", "127.0.0.1",
                                 "--port", str(port)], env=venv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            wait_ready(url, {"Authorization": f"Bearer {KEY}"}, proc, "vLLM")
            rows.append(("vLLM CPU", load(url, "lm", prompts, a.clients, a.requests, a.max_tokens)))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(f"\n{a.clients} clients x {a.requests} requests, up to {a.max_tokens} tokens each, {a.dtype}\n")
    print("| server | requests | failed | requests/s | generated tokens/s | p50 s | p95 s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['requests']} | {r['failed']} | {r['requests_per_s']:.1f} | {r['tokens_per_s']:.0f} | "
              f"{r['p50_s']:.2f} | {r['p95_s']:.2f} |")


if __name__ == "__main__":
    main()
