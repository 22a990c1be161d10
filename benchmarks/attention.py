"""Which attention implementation is faster for one forward of the bundled LM on this CPU, per dtype and
prompt length, with left padding (a mask and position ids, as label scoring runs it) and without: eager,
SDPA, and silobridge's by-length choice (`models/attention.py`: eager up to 256 keys, SDPA beyond; what
`lm.dtype=bfloat16` loads on a CPU).

    .venv/bin/python benchmarks/attention.py [--widths 100,140,480] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import torch

from silobridge.models.attention import register
from silobridge.models.lm import load_lm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="100,140,480")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for dtype in ("float32", "bfloat16"):
        lm = load_lm(None, dtype=dtype, device="cpu")
        for attn in ("sdpa", "eager", register()):
            lm.model.set_attn_implementation(attn)
            for width in (int(w) for w in a.widths.split(",")):
                n = 8
                ids = torch.randint(100, 40000, (n, width), generator=torch.Generator().manual_seed(0))
                mask = torch.ones_like(ids)
                mask[: n // 2, :width // 10] = 0
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                for label, kw in (("no mask", {"input_ids": ids}),
                                  ("mask", {"input_ids": ids, "attention_mask": mask, "position_ids": pos})):
                    with torch.no_grad():
                        lm.model(**kw, logits_to_keep=1)
                        t = time.perf_counter()
                        for _ in range(3):
                            lm.model(**kw, logits_to_keep=1)
                    dt = (time.perf_counter() - t) / 3
                    print(f"{dtype:9} {attn:21} {n:3} x {width:3} {label:8} {n * width / dt:7,.0f} tokens/s",
                          flush=True)


if __name__ == "__main__":
    main()
