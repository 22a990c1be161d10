"""The CPU wastes issue 10's profile found, each measured before and after its fix, in one run.

1. the output head on a strided slice (``logits_to_keep=1``) with a frozen weight: torch's slow path;
2. cross-entropy over a transposed view of the logits vs over contiguous rows (forward + backward);
3. a LoRA-tuned LM served with unmerged adapters on every layer vs merged;
4. label scoring with and without the prompts' shared opening held in a KV cache;
5. generation in batches of 8 vs 32.

    .venv/bin/python benchmarks/cpu_waste.py [--threads 2] [--texts 160]

Seconds are the median of 3 repetitions (one warm-up) on the bundled SmolLM2-135M in bfloat16 (float32
where noted), 8 sequences of 120 tokens unless noted.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch


def timed(fn, reps: int = 3) -> float:
    fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def row(what: str, before: float, after: float) -> None:
    print(f"| {what} | {before:.3f} | {after:.3f} | {before / after:.1f}x |", flush=True)


def head(dtype: torch.dtype, grad: bool) -> tuple[float, float]:
    w = torch.randn(49152, 576, dtype=dtype)  # frozen: requires_grad False
    h = torch.randn(8, 120, 576, dtype=dtype, requires_grad=grad)

    def run(x):
        with torch.set_grad_enabled(grad):
            y = torch.nn.functional.linear(x, w)
            if grad:
                y.float().sum().backward()
    return timed(lambda: run(h[:, -1:, :])), timed(lambda: run(h[:, -1:, :].contiguous()))


def cross_entropy() -> tuple[float, float]:
    logits = torch.randn(8, 128, 49152, dtype=torch.bfloat16, requires_grad=True)
    target = torch.randint(0, 49152, (8, 127))

    def transposed():
        torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), target).backward()

    def rows():
        lg = logits[:, :-1].float()
        torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), target.reshape(-1)).backward()
    return timed(transposed), timed(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--texts", type=int, default=160, help="test reviews scored in (4)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from silobridge.data import load_reviews
    from silobridge.models.generate import generate
    from silobridge.models.lm import build_prompt, load_lm, score_labels
    from silobridge.models.lora import LoraSpec, add_lora
    from silobridge.strategies.lm_tuning import merge

    print(f"{args.threads} threads, torch {torch.__version__}\n")
    print("| waste | before s | after s | speed-up |\n|---|---|---|---|")
    for dtype, name in ((torch.bfloat16, "bf16"), (torch.float32, "fp32")):
        for grad in (False, True):
            row(f"head on the last position, frozen weight, {name}, {'forward + backward' if grad else 'no grad'}: "
                "strided slice → contiguous", *head(dtype, grad))
    row("cross-entropy of 8 x 127 tokens, forward + backward: transposed view → contiguous rows", *cross_entropy())

    lm = load_lm(dtype="bfloat16")
    ids = torch.randint(100, 20000, (8, 120))
    tuned = add_lora(copy.deepcopy(lm.model), None, LoraSpec())
    tuned.eval()

    def forward(model):
        with torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=1)
    unmerged = timed(lambda: forward(tuned))
    served = copy.copy(lm)
    served.model = tuned
    merge(served)
    row("LM with LoRA on every layer, one forward: unmerged (float32 adapters) → merged", unmerged,
        timed(lambda: forward(served.model)))

    task, _, test = load_reviews()
    user = task.template.replace("{labels}", "positive or negative")
    texts = test.texts[:args.texts]
    words = ["positive", "negative"]
    row(f"label scoring of {len(texts)} reviews, batch 8: whole prompts → shared opening cached",
        timed(lambda: score_labels(lm, texts, user, words, share_prefix=False), reps=1),
        timed(lambda: score_labels(lm, texts, user, words), reps=1))

    prompts = [build_prompt(lm, f"Write a short {'positive' if i % 2 else 'negative'} product review, number {i}.")
               for i in range(32)]
    row("generating 32 texts of up to 60 tokens: batches of 8 → 32",
        timed(lambda: generate(lm, prompts, 60, batch_size=8), reps=1),
        timed(lambda: generate(lm, prompts, 60, batch_size=32), reps=1))


if __name__ == "__main__":
    main()
