"""Proxy-tuning a causal LM across the boundary: with every vocabulary entry sent, the steered perplexity
is exactly that of log_softmax(LM logits + alpha x (log p_tuned − log p_untuned)); fewer entries
approximate it; and the strategy runs task domain-lm end to end."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from silobridge.bench.runner import run
from silobridge.models.causal import _encode
from silobridge.models.lm import load_lm
from silobridge.models.proxy import logit_shifts, shifted_perplexity, summarise
from silobridge.settings import TaskKind

TEXTS = ["the soup was warm and the bread was fresh", "a short one", "delivery took a week but the tea is good"]


def reference_ppl(lm, tuned, untuned, texts, alpha):
    nll, n = 0.0, 0
    for s in (x for x in _encode(lm, texts, 128) if len(x) >= 2):
        ids = torch.tensor([s])
        with torch.no_grad():
            z = lm.model(input_ids=ids).logits[0, :-1].float()
            d = torch.log_softmax(tuned.model(input_ids=ids).logits[0, :-1].float(), -1) - \
                torch.log_softmax(untuned.model(input_ids=ids).logits[0, :-1].float(), -1)
        nll += float(torch.nn.functional.cross_entropy(z + alpha * d, torch.tensor(s[1:]), reduction="sum"))
        n += len(s) - 1
    return float(np.exp(nll / n))


def test_every_entry_sent_is_exact_and_fewer_approximate(tiny_lm_dir):
    lm, tuned, untuned = (load_lm(tiny_lm_dir, dtype="float32", device="cpu") for _ in range(3))
    torch.manual_seed(1)
    with torch.no_grad():  # make the "tuned" model differ from the untuned one
        for p in tuned.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    ref = reference_ppl(lm, tuned, untuned, TEXTS, 1.0)
    ids, vals = logit_shifts(tuned, untuned.model, TEXTS, 1.0, vocab)
    exact = summarise([shifted_perplexity(lm, TEXTS, ids, vals.astype(np.float32))])
    # float16 on the wire: close, not bit-equal
    assert exact["deployed"]["perplexity"] == pytest.approx(ref, rel=1e-3)
    alone = summarise([shifted_perplexity(lm, TEXTS, ids, np.zeros_like(vals))])
    assert alone["deployed"]["perplexity"] == pytest.approx(exact["lm alone"]["perplexity"], rel=1e-6)
    ids64, vals64 = logit_shifts(tuned, untuned.model, TEXTS, 1.0, 64)
    approx = summarise([shifted_perplexity(lm, TEXTS, ids64, vals64)])
    assert approx["deployed"]["tokens"] == exact["deployed"]["tokens"] == len(ids)
    off = abs(np.log(approx["deployed"]["perplexity"]) - np.log(ref))
    assert off < abs(np.log(exact["lm alone"]["perplexity"]) - np.log(ref))  # most of the shift survives


def test_proxy_tuning_runs_domain_lm(small_cfg, tmp_path):
    cfg = dataclasses.replace(small_cfg, task=TaskKind.DOMAIN_LM, strategy={"distill_steps": 2, "shift_k": 32,
                                                                    "shift_chunk": 4})
    r = run("proxy-tuning", cfg, tmp_path)
    rows = r["report"]["lm_eval"]
    assert {"deployed", "lm alone", "emulator", "emulator + adapters"} <= set(rows)
    assert r["objectives"]["utility"]["perplexity"] == rows["deployed"]["perplexity"]
    assert r["report"]["shift_entries_sent"] == 32 * rows["deployed"]["tokens"]
    assert r["objectives"]["privacy"]["exposures"]["evaluation_records"]["texts"] == small_cfg.data.n_lm_eval
    assert r["objectives"]["communication"]["bytes_data_to_model"] > 6 * r["report"]["shift_entries_sent"]


def test_an_emulator_without_its_adapters_scores_with_a_shared_prompt_opening(tiny_lm_dir):
    """Regression: label scoring reuses the prompts' common opening through a KV cache built from the
    model's config; the adapters-off view of a LoRA model must offer it (proxy-tuning's untuned emulator)."""
    from silobridge.models.lm import CausalLM, score_labels
    from silobridge.models.lora import LoraSpec, add_lora
    from silobridge.strategies.emulation import AdaptersOff

    lm = load_lm(tiny_lm_dir, dtype="float32", device="cpu")
    off = CausalLM(lm.tokenizer, AdaptersOff(add_lora(lm.model, None, LoraSpec())), "emulator")
    user = "Please read the following short review carefully and say whether it is great: {text}"
    shared = score_labels(off, TEXTS, user, ["yes", "no"], share_prefix=True)
    whole = score_labels(off, TEXTS, user, ["yes", "no"], share_prefix=False)
    assert np.allclose(shared, whole, atol=1e-4)
