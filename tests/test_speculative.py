"""Speculative decoding: the output is the LM's own greedy output, token for token, over many prompts,
with fewer LM forward passes when the drafter agrees with the LM."""
from __future__ import annotations

import pytest
import torch

from silobridge.models.lm import load_lm
from silobridge.models.speculative import SpecStats, draft, speculate, verify


@pytest.fixture(scope="module")
def lm(tiny_lm_dir):
    return load_lm(tiny_lm_dir, threads=1, dtype="float32", device="cpu")


def greedy(lm, ids, n):
    x = torch.tensor([ids])
    with torch.no_grad():
        out = lm.model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False,
                                pad_token_id=lm.tokenizer.pad_token_id)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("drafter", ["itself", "another model"])
def test_output_is_the_lms_greedy_output(lm, tiny_lm_dir, drafter):
    from transformers import AutoModelForCausalLM

    other = lm.model
    if drafter == "another model":  # the LM with its top layers dropped: often wrong, never changes the output
        other = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
        other.model.layers = other.model.layers[:2]
        other.config.num_hidden_layers = 2
    tok, pad = lm.tokenizer, lm.tokenizer.pad_token_id
    texts = [f"prompt number {i} about {w}" for i, w in enumerate(["cats", "dogs", "food", "rain", "the sea"] * 4)]
    stats = SpecStats()
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        seq = list(ids)

        def verify_fn(drafted):
            n, nxt = verify(lm.model, seq, drafted)
            seq.extend(drafted[:n] + [nxt])
            return n, nxt

        out = speculate(ids, 12, 4, lambda s, k: draft(other, s, k, pad), verify_fn, eos=set(), stats=stats)
        assert out == greedy(lm, ids, 12), text
    assert stats.tokens == 12 * len(texts)
    if drafter == "itself":  # a perfect drafter: every drafted token accepted, k + 1 tokens per LM pass
        assert stats.acceptance_rate == 1.0 and stats.rounds == len(texts) * 3  # 5 + 5 + 2 tokens
    else:
        assert stats.rounds > len(texts) * 3
