"""Speculative greedy decoding split across two parties (Leviathan et al., 2023; greedy case): a small
model that shares the LM's tokenizer drafts k tokens; the LM checks them in one forward pass and returns
how many it would have produced itself, plus its own next token. The output is token for token the LM's
own greedy output; the LM runs one forward pass per round instead of one per token.

Pure model code: :func:`draft` runs at the data party, :func:`verify` at the model party, and
:func:`speculate` drives the rounds through any ``verify`` callable (a network call, in practice)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from silobridge.models.device import placement


@torch.no_grad()
def draft(model: torch.nn.Module, ids: list[int], k: int, pad: int) -> list[int]:
    """``k`` greedy tokens of the small model after ``ids``."""
    dev, _ = placement(model)
    x = torch.tensor([ids], device=dev)
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=k, min_new_tokens=k,
                         do_sample=False, pad_token_id=pad)
    return out[0, len(ids):].tolist()


@torch.no_grad()
def verify(model: torch.nn.Module, ids: list[int], drafted: list[int]) -> tuple[int, int]:
    """One forward pass of the LM over ``ids + drafted``: how many drafted tokens are its own greedy
    choices (a prefix), and its greedy token after them."""
    dev, _ = placement(model)
    x = torch.tensor([ids + drafted], device=dev)
    logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0, len(ids) - 1:]
    greedy = logits.argmax(-1).tolist()  # greedy[j]: the LM's choice after ids + drafted[:j]
    n = 0
    while n < len(drafted) and drafted[n] == greedy[n]:
        n += 1
    return n, greedy[n]


@dataclass
class SpecStats:
    rounds: int = 0  # LM forward passes (one verify call each)
    drafted: int = 0
    accepted: int = 0
    tokens: int = 0  # tokens produced (the LM alone would need one forward pass each)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


def speculate(prompt: list[int], max_new: int, k: int, draft_fn: Callable[[list[int], int], list[int]],
              verify_fn: Callable[[list[int]], tuple[int, int]], eos: set[int],
              stats: SpecStats | None = None) -> list[int]:
    """Up to ``max_new`` tokens after ``prompt``: each round drafts min(k, tokens left - 1) tokens and has
    ``verify_fn(drafted)`` (which knows the sequence so far) accept a prefix and add the LM's next token."""
    stats = stats or SpecStats()
    out: list[int] = []
    while len(out) < max_new:
        d = draft_fn(prompt + out, min(k, max_new - len(out) - 1)) if max_new - len(out) > 1 else []
        n, nxt = verify_fn(d)
        stats.rounds += 1
        stats.drafted += len(d)
        stats.accepted += n
        new = d[:n] + [nxt]
        for t in new:
            out.append(t)
            if t in eos:
                stats.tokens += len(out)
                return out
    stats.tokens += len(out)
    return out
