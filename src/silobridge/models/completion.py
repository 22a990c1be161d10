"""Completions with log-probabilities from a causal LM, as an OpenAI-compatible server returns them:
prompt log-probs (``echo``), sampled or greedy continuations, and the top-n alternatives per token.
Pure model code: no HTTP, no metering (the caller bills)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from silobridge.models.device import placement
from silobridge.models.lm import CausalLM


@dataclass
class Completion:
    """One prompt's answer: generated token ids, each one's log-prob under the model's own distribution
    (before temperature / top-p) and its top-n alternatives; why it ended ('stop' at end of sequence or
    a stop string, 'length' at max_tokens)."""

    token_ids: list[int]
    logprobs: list[float] = field(default_factory=list)
    top: list[dict[int, float]] = field(default_factory=list)
    finish_reason: str = "length"


def _top(logp: torch.Tensor, n: int) -> list[dict[int, float]]:
    if n <= 0:
        return [{} for _ in range(len(logp))]
    v, i = logp.topk(n, -1)
    return [dict(zip(ii.tolist(), vv.tolist())) for vv, ii in zip(v, i)]


@torch.no_grad()
def prompt_logprobs(lm: CausalLM, prompts: list[list[int]], top_n: int = 0,
                    batch_size: int = 8) -> list[tuple[list[float], list[dict[int, float]]]]:
    """For each prompt, log P(token_t | tokens_<t) for t >= 1 (the first token has none) and the top-n
    alternatives at each of those positions."""
    model, tok = lm.model, lm.tokenizer
    dev, _ = placement(model)
    out: list[tuple[list[float], list[dict[int, float]]]] = [([], []) for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for s in range(0, len(order), batch_size):
        rows = order[s:s + batch_size]
        width = max(len(prompts[i]) for i in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(rows):  # right padding: position t predicts token t + 1
            ids[r, :len(prompts[i])] = torch.tensor(prompts[i])
            mask[r, :len(prompts[i])] = 1
        logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1)
        for r, i in enumerate(rows):
            n = len(prompts[i]) - 1
            if n <= 0:
                continue
            nxt = ids[r, 1:n + 1].to(dev)
            lp = logp[r, :n]
            out[i] = (lp.gather(-1, nxt[:, None])[:, 0].tolist(), _top(lp, top_n))
    return out


@torch.no_grad()
def complete(lm: CausalLM, prompts: list[list[int]], max_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
             top_n: int = 0, seed: int | None = None) -> list[Completion]:
    """Continue each prompt (token ids) by up to ``max_tokens`` tokens, all prompts in one left-padded
    batch; greedy when ``temperature`` is 0. Returns each continuation with its log-probs."""
    model, tok = lm.model, lm.tokenizer
    if max_tokens <= 0:
        return [Completion([], finish_reason="length") for _ in prompts]
    dev, _ = placement(model)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(p)
        mask[r, width - len(p):] = 1
    if seed is not None:
        torch.manual_seed(seed)
    sample = temperature > 0
    kw = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if sample else {"do_sample": False}
    if lm.watermark is not None:  # log-probs stay the model's own (unwarped), as before
        kw["watermarking_config"] = lm.watermark
    out = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_tokens,
                         pad_token_id=pad, output_logits=True, return_dict_in_generate=True, **kw)
    new = out.sequences[:, width:].cpu()
    logp = torch.log_softmax(torch.stack(out.logits, 1).float(), -1).cpu()  # (batch, steps, vocab), unwarped
    eos = set(_eos_ids(lm))
    done: list[Completion] = []
    for r in range(len(prompts)):
        seq = new[r].tolist()
        end = next((t + 1 for t, x in enumerate(seq) if x in eos), None)
        keep = seq[:end] if end else seq
        lp = logp[r, :len(keep)]
        chosen = lp.gather(-1, torch.tensor(keep, dtype=torch.long)[:, None])[:, 0].tolist() if keep else []
        done.append(Completion(keep, chosen, _top(lp, top_n), "stop" if end else "length"))
    return done


def _eos_ids(lm: CausalLM) -> list[int]:
    cfg = getattr(lm.model, "generation_config", None)
    ids = getattr(cfg, "eos_token_id", None) if cfg is not None else None
    if ids is None:
        ids = lm.tokenizer.eos_token_id
    return [ids] if isinstance(ids, int) else list(ids or [])


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text up to the first stop string (excluded), and whether one was found."""
    cuts = [text.find(s) for s in stops if s and s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)
