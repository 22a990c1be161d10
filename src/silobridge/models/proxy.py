"""Proxy-tuning of a causal LM across two parties (Liu et al., 2024): the next-token logits of the LM are
shifted by alpha x (tuned − untuned small model's log-probs). The small models sit in the data silo, the
LM at the model party, so the shift crosses: per position, the ``k`` vocabulary entries whose shift is
largest (after removing the position's median, which softmax ignores) — exact when ``k`` is the whole
vocabulary (tested), ``k`` x 6 bytes per token otherwise."""
from __future__ import annotations

import numpy as np
import torch

from silobridge.models.causal import _encode, _pad
from silobridge.models.device import placement
from silobridge.models.lm import CausalLM
from silobridge.progress import track


def sequences(lm: CausalLM, texts: list[str], max_len: int) -> list[list[int]]:
    """The token sequences both parties score (their tokenizers are the same), in the texts' order."""
    return [s for s in _encode(lm, texts, max_len) if len(s) >= 2]


def positions(seqs: list[list[int]]) -> int:
    return sum(len(s) - 1 for s in seqs)


@torch.no_grad()
def logit_shifts(tuned: CausalLM, untuned: torch.nn.Module, texts: list[str], alpha: float, k: int,
                 max_len: int = 128, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, shifts), each (positions, k): the largest entries of alpha x (log p_tuned − log p_untuned)
    at every next-token position of ``texts``, the position's median removed."""
    seqs = sequences(tuned, texts, max_len)
    vocab = tuned.model.get_output_embeddings().weight.shape[0]
    k = min(k, vocab)
    ids_out = np.zeros((positions(seqs), k), np.int32)
    val_out = np.zeros((positions(seqs), k), np.float16)
    row = 0
    dev, _ = placement(tuned.model)
    for start in track(range(0, len(seqs), batch_size), "proxy shifts", total=-(-len(seqs) // batch_size)):
        batch = seqs[start:start + batch_size]
        ids, mask = _pad(batch, tuned.tokenizer.pad_token_id or 0)
        ids, mask = ids.to(dev), mask.to(dev)
        a = torch.log_softmax(tuned.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
        b = torch.log_softmax(untuned(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
        for r, s in enumerate(batch):
            d = alpha * (a[r, :len(s) - 1] - b[r, :len(s) - 1])
            d = d - d.median(-1, keepdim=True).values
            top = d.abs().topk(k, dim=-1).indices
            ids_out[row:row + len(s) - 1] = top.cpu().numpy()
            val_out[row:row + len(s) - 1] = d.gather(-1, top).cpu().numpy().astype(np.float16)
            row += len(s) - 1
    return ids_out, val_out


@torch.no_grad()
def shifted_perplexity(lm: CausalLM, texts: list[str], token_ids: np.ndarray, shifts: np.ndarray,
                       max_len: int = 128, batch_size: int = 8) -> dict[str, dict[str, float]]:
    """Summed NLL, correct next tokens and token count of the LM with the shifts added to its logits
    ('deployed') and of the LM alone ('lm alone'), on the same tokens (:func:`summarise` turns chunks of
    them into perplexity)."""
    seqs = sequences(lm, texts, max_len)
    dev, _ = placement(lm.model)
    sums = {"deployed": [0.0, 0], "lm alone": [0.0, 0]}
    count, row = 0, 0
    for start in track(range(0, len(seqs), batch_size), "proxy perplexity", total=-(-len(seqs) // batch_size)):
        batch = seqs[start:start + batch_size]
        ids, mask = _pad(batch, lm.tokenizer.pad_token_id or 0)
        logits = lm.model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits[:, :-1].float()
        for r, s in enumerate(batch):
            n = len(s) - 1
            z = logits[r, :n]
            target = torch.tensor(s[1:], device=z.device)
            steered = z.scatter_add(-1, torch.from_numpy(token_ids[row:row + n].astype(np.int64)).to(z.device),
                                    torch.from_numpy(shifts[row:row + n].astype(np.float32)).to(z.device))
            for name, logit in (("deployed", steered), ("lm alone", z)):
                sums[name][0] += float(torch.nn.functional.cross_entropy(logit, target, reduction="sum"))
                sums[name][1] += int((logit.argmax(-1) == target).sum())
            count += n
            row += n
    return {name: {"nll_sum": nll, "correct": ok, "tokens": count} for name, (nll, ok) in sums.items()}


def summarise(parts: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Perplexity and next-token accuracy from the sums of :func:`shifted_perplexity` over chunks."""
    out = {}
    for name in parts[0] if parts else []:
        nll = sum(p[name]["nll_sum"] for p in parts)
        ok = sum(p[name]["correct"] for p in parts)
        n = sum(p[name]["tokens"] for p in parts)
        out[name] = {"perplexity": float(np.exp(nll / max(n, 1))), "next_token_accuracy": ok / max(n, 1), "tokens": n}
    return out
