"""Guided (constrained) writing of structured records with a causal LM: the record's frame is fixed and
the LM writes only the values, field by field, sampled from its own distribution restricted to what the
field may hold (a known category, or a number), as constrained decoders (Outlines, vLLM's guided
decoding) do. A small LM that cannot keep a format by itself still writes records that always parse;
what it knows shows in which values it picks. Pure model code: no I/O, no strategy."""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from silobridge.errors import ModelError
from silobridge.models.device import placement
from silobridge.models.lm import CausalLM
from silobridge.progress import track


@dataclass(frozen=True)
class Field:
    """One field of the record: the text written before its value (e.g. "Home is"), the text that ends it
    (e.g. "."), and what the value may be: one of ``choices``, or a number of at most ``digits`` integer
    digits and ``decimals`` decimals."""

    prefix: str
    suffix: str
    choices: tuple[str, ...] = ()
    digits: int = 7
    decimals: int = 0


class _Vocab:
    """The token ids a number can be written with, read once per tokenizer: tokens made of digits (a
    leading space, or WordPiece's '##', allowed), and a lone space."""

    def __init__(self, tok):
        self.digits: dict[int, str] = {}  # token id -> its digits
        self.space: list[int] = []
        for token, i in tok.get_vocab().items():
            s = tok.convert_tokens_to_string([token])
            s = s[2:] if s.startswith("##") else s
            if re.fullmatch(r" ?\d+", s):
                self.digits[i] = s.strip()
            elif s == " ":
                self.space.append(i)
        self.by_len: dict[int, list[int]] = {}
        for i, d in self.digits.items():
            self.by_len.setdefault(len(d), []).append(i)

    def upto(self, n: int) -> list[int]:
        return [i for k, ids in self.by_len.items() if k <= n for i in ids]


class _Number:
    """Which tokens may come next in '<digits>[.<decimals>]<end>' given the tokens written so far. ``end``
    is the field's end mark when it is one token (else the LM ends the number with its end-of-text token);
    when the mark is '.', a first '.' opens the decimals of a column that has them and a second one ends
    the number."""

    def __init__(self, vocab: _Vocab, field: Field, end: int | None, mark: str, eos: int):
        self.v, self.f, self.eos = vocab, field, eos
        self.end = end if end is not None else eos
        self.point = bool(field.decimals) and end is not None and mark == "."

    def _read(self, written: list[int]) -> tuple[str, str | None, bool]:
        """(integer digits, decimal digits or None before the point, finished?)"""
        whole, frac = "", None
        for t in written:
            if t == self.eos:
                return whole, frac, True
            if t == self.end:
                if self.point and frac is None:
                    frac = ""
                    continue
                return whole, frac, True
            if t in self.v.digits:
                if frac is None:
                    whole += self.v.digits[t]
                else:
                    frac += self.v.digits[t]
        return whole, frac, False

    def allowed(self, written: list[int]) -> list[int]:
        whole, frac, done = self._read(written)
        if done:
            return [self.eos]
        if frac is None:
            out = self.v.upto(self.f.digits - len(whole)) + ([self.end] if whole else [])
            return out + (self.v.space if not written else [])
        return self.v.upto(self.f.decimals - len(frac)) + ([self.end] if frac else [])

    def value(self, written: list[int]) -> str:
        whole, frac, _ = self._read(written)
        return whole + (f".{frac}" if frac else "")


class _Choice:
    """Which tokens may come next so that the value is one of the choices followed by the end mark."""

    def __init__(self, tok, field: Field, end_text: str, eos: int):
        self.seqs = {tuple(tok(" " + c + end_text, add_special_tokens=False)["input_ids"]): c
                     for c in field.choices}
        self.eos = eos

    def allowed(self, written: list[int]) -> list[int]:
        w = tuple(t for t in written if t != self.eos)
        if w in self.seqs:
            return [self.eos]
        n = len(w)
        nxt = {s[n] for s in self.seqs if len(s) > n and s[:n] == w}
        return sorted(nxt) or [self.eos]

    def value(self, written: list[int]) -> str:
        return self.seqs.get(tuple(t for t in written if t != self.eos), "")


@torch.no_grad()
def write_records(lm: CausalLM, prompts: list[str], fields: list[Field], temperature: float = 0.9,
                  top_p: float = 0.95, batch_size: int = 16, seed: int = 0,
                  desc: str = "writing records") -> list[list[str]]:
    """For each prompt (a chat prompt ending where the reply starts), one record written field by field:
    the frame (prefixes, suffixes, the space between fields) is the caller's, each value is sampled from
    the LM under the field's constraint. Returns the values as written (a category, or a number's text),
    one list per prompt in field order."""
    model, tok = lm.model, lm.tokenizer
    model.eval()
    dev, _ = placement(model)
    eos = next((i for i in (tok.eos_token_id, tok.sep_token_id, tok.pad_token_id) if i is not None), None)
    if eos is None:
        raise ModelError("the LM's tokenizer has no end-of-text, separator or padding token", where="lm.path",
                         fix="use a tokenizer that defines eos_token (guided writing ends each value with it)")
    vocab = _Vocab(tok)

    torch.manual_seed(seed)
    values: list[list[str]] = [[] for _ in prompts]
    texts = list(prompts)
    steps = [(s, f) for s in range(0, len(prompts), batch_size) for f in range(len(fields))]
    for s, f in track(steps, desc, total=len(steps)):
        field = fields[f]
        end_text = field.suffix.rstrip()
        end = tok(end_text, add_special_tokens=False)["input_ids"] if end_text else []
        rule = (_Choice(tok, field, end_text, eos) if field.choices
                else _Number(vocab, field, end[0] if len(end) == 1 else None, end_text, eos))
        batch = [texts[i] + (" " if values[i] else "") + field.prefix.rstrip() for i in range(s, min(s + batch_size,
                                                                                                  len(texts)))]
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
        start = enc["input_ids"].shape[1]
        longest = (max(len(q) for q in rule.seqs) if field.choices
                   else field.digits + field.decimals + 3)
        gen = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], do_sample=True,
                             temperature=temperature, top_p=top_p, max_new_tokens=longest + 1,
                             eos_token_id=eos, pad_token_id=tok.pad_token_id,
                             prefix_allowed_tokens_fn=lambda b, ids: rule.allowed(ids[start:].tolist()),
                             **({"watermarking_config": lm.watermark} if lm.watermark is not None else {}))
        new = gen[:, start:]
        lm.meter.calls += len(batch) if f == 0 else 0
        lm.meter.tokens_in += int(enc["attention_mask"].sum())
        lm.meter.tokens_out += int(((new != tok.pad_token_id) & (new != eos)).sum())
        for j, ids in enumerate(new.tolist()):
            i = s + j
            value = rule.value(ids)
            values[i].append(value)
            texts[i] = batch[j] + " " + value + field.suffix.rstrip()
    return values
