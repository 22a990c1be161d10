"""Speculative decoding, side by side in one run on the same LM, drafter and prompts: the LM alone (greedy),
silobridge's draft/verify loop (in process: the protocol's computation without the network), and
transformers' own assisted generation (`assistant_model=`) with the same drafter. The drafter is the
default emulator of the bundled LM (17 of 30 layers, middle distilled on public reviews), as the
`speculative` strategy receives it (untuned here; the strategy also tunes it on the private texts).

    .venv/bin/python benchmarks/speculative.py [--prompts 20] [--prompt-tokens 24] [--new 32] [--k 4]
        [--distill-steps 150] [--dtype float32]

Prints tokens/s, LM forward passes, acceptance rate, and whether every output equals the LM's greedy
output token for token. For bytes and calls over the boundary: `silobridge run speculative --task domain-lm`."""
from __future__ import annotations

import argparse
import time

import torch

from silobridge.data import load_reviews
from silobridge.models.causal import EmulatorPlan, build_emulator, distill_emulator, n_layers
from silobridge.models.lm import load_lm
from silobridge.models.speculative import SpecStats, draft, speculate, verify


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--prompt-tokens", type=int, default=24)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--distill-steps", type=int, default=150)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    lm = load_lm(None, threads=2, dtype=a.dtype, device="cpu")
    tok, pad = lm.tokenizer, lm.tokenizer.pad_token_id
    _, pool, test = load_reviews()
    plan = EmulatorPlan(n_layers(lm), 2, 2, 2)
    emu = build_emulator(lm, plan)
    t0 = time.perf_counter()
    if a.distill_steps:
        distill_emulator(lm, emu, pool.texts[:200], a.distill_steps, lr=5e-4, train_layers=plan.middle_positions)
    emu.eval()
    print(f"drafter: {len(plan.kept)} of {plan.lm_layers} layers, distilled {a.distill_steps} steps "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    prompts = [tok(t, add_special_tokens=False)["input_ids"][:a.prompt_tokens] for t in test.texts[:a.prompts]]
    eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()

    def generate(model, ids, **kw):
        x = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=a.new,
                                 do_sample=False, pad_token_id=pad, **kw)
        return out[0, len(ids):].tolist()

    rows, reference = [], []
    t0 = time.perf_counter()
    for ids in prompts:
        reference.append(generate(lm.model, ids))
    seconds = time.perf_counter() - t0
    tokens = sum(len(r) for r in reference)
    rows.append(("LM alone (greedy)", tokens / seconds, tokens, "–", "yes"))

    stats, outs, t0 = SpecStats(), [], time.perf_counter()
    for ids in prompts:
        seq = list(ids)

        def verify_fn(drafted, seq=seq):
            n, nxt = verify(lm.model, seq, drafted)
            seq.extend(drafted[:n] + [nxt])
            return n, nxt

        outs.append(speculate(ids, a.new, a.k, lambda s, k: draft(emu, s, k, pad), verify_fn, eos, stats))
    seconds = time.perf_counter() - t0
    same = all(o == r[:len(o)] and (len(o) == len(r) or o[-1:] and o[-1] in eos) for o, r in zip(outs, reference))
    rows.append((f"silobridge draft/verify, k={a.k}", stats.tokens / seconds, stats.rounds,
                 f"{stats.acceptance_rate:.2f}", "yes" if same else "NO"))

    outs, t0 = [], time.perf_counter()
    for ids in prompts:
        outs.append(generate(lm.model, ids, assistant_model=emu))
    seconds = time.perf_counter() - t0
    rows.append(("transformers assisted generation", sum(len(o) for o in outs) / seconds, "–", "–",
                 "yes" if outs == reference else "NO"))
    print(f"\n{len(prompts)} prompts of {a.prompt_tokens} tokens, {a.new} new tokens each, {a.dtype}, 2 threads\n")
    print("| decoding | tokens/s | LM forward passes | acceptance | output = LM greedy |\n|---|---|---|---|---|")
    for name, rate, passes, acc, ok in rows:
        print(f"| {name} | {rate:.1f} | {passes} | {acc} | {ok} |")


if __name__ == "__main__":
    main()
