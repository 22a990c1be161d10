"""Which attention implementation is faster for one forward of the bundled LM on this CPU, per dtype,
with left padding (a mask and position ids, as label scoring runs it) and without:

    .venv/bin/python benchmarks/attention.py
"""
from __future__ import annotations

import time

import torch

from silobridge.models.lm import load_lm


def main() -> None:
    torch.set_num_threads(2)
    print(f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for dtype in ("float32", "bfloat16"):
        for attn in ("sdpa", "eager"):
            lm = load_lm(None, dtype=dtype, device="cpu")
            lm.model.config._attn_implementation = attn
            for n, width in ((8, 100), (32, 140)):
                ids = torch.randint(100, 40000, (n, width), generator=torch.Generator().manual_seed(0))
                mask = torch.ones_like(ids)
                mask[: n // 2, :10] = 0
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                for label, kw in (("no mask", {"input_ids": ids}),
                                  ("mask", {"input_ids": ids, "attention_mask": mask, "position_ids": pos})):
                    with torch.no_grad():
                        lm.model(**kw, logits_to_keep=1)
                        t = time.perf_counter()
                        for _ in range(3):
                            lm.model(**kw, logits_to_keep=1)
                    dt = (time.perf_counter() - t) / 3
                    print(f"{dtype:9} {attn:6} {n:3} x {width:3} {label:8} {n * width / dt:7,.0f} tokens/s", flush=True)


if __name__ == "__main__":
    main()
