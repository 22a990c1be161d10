"""vLLM as the model party's LM: `lm-zero-shot` and `router` (and `retrieval`) run with
`lm.path=openai:URL#lm` against vLLM's CPU build (its own venv) serving the bundled LM, next to the
same strategies with the LM in process, on the same data and seed. The black box returns the top-20
log-probs of the answer's first token, so its label scores match the in-process ones up to that
approximation and the two engines' arithmetic.

    .venv/bin/python benchmarks/vllm_black_box.py --vllm-python V/bin/python [--dtype bfloat16]
        [--strategies lm-zero-shot,router] [--set data.n_test=300] [--out runs/vllm-black-box]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from openai_load import KEY, wait_ready  # noqa: E402
from scoring_throughput import free_port  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vllm-python", required=True)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--strategies", default="lm-zero-shot,router")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=["data.n_test=300"])
    ap.add_argument("--out", default="runs/vllm-black-box")
    a = ap.parse_args()
    from silobridge.bench.runner import run
    from silobridge.configs import apply_overrides, from_dict
    from silobridge.home import home
    from silobridge.models.lm import DEFAULT_LM, load_lm
    from silobridge.settings import RunConfig

    load_lm(None, dtype="float32", device="cpu")  # converts the bundled LM to a HF directory once
    port = free_port()
    env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_CPU_KVCACHE_SPACE="2", OMP_NUM_THREADS="2")
    proc = subprocess.Popen([a.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model",
                             str(home() / "models" / DEFAULT_LM), "--served-model-name", "lm", "--api-key", KEY,
                             "--dtype", a.dtype, "--max-model-len", "2048", "--host", "127.0.0.1", "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    os.environ["SB_VLLM_KEY"] = KEY
    rows = []
    try:
        wait_ready(url, {"Authorization": f"Bearer {KEY}"}, proc, "vLLM")
        for name in a.strategies.split(","):
            for where, lm in (("in process", [f"lm.dtype={a.dtype}"]),
                              ("vLLM, openai:", [f"lm.path=openai:{url}#lm", "lm.api_key_env=SB_VLLM_KEY"])):
                cfg = from_dict(RunConfig, apply_overrides({}, [f"seed={a.seed}", *a.set, *lm]))
                r = run(name, cfg, Path(a.out) / name / ("local" if where == "in process" else "vllm"))
                u, q = r["objectives"]["utility"], r["objectives"]["lm_queries"]
                rows.append((name, where, u["accuracy"], u["macro_f1"], u["auc"], q["calls"],
                             q.get("labels_outside_top_k", "–"), r["objectives"]["compute"].get("wall_seconds")))
                print(rows[-1], flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(f"\nseed {a.seed}, {' '.join(a.set)}, {a.dtype}\n")
    print("| strategy | LM | acc | macro-F1 | AUC | LM calls | labels outside top 20 | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, where, acc, f1, auc, calls, out, wall in rows:
        print(f"| {name} | {where} | {acc:.3f} | {f1:.3f} | {auc:.3f} | {calls:,} | {out} | {wall:.0f} |")


if __name__ == "__main__":
    main()
