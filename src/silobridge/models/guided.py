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
    digits and ``decimals`` decimals, negative too when ``signed``."""

    prefix: str
    suffix: str
    choices: tuple[str, ...] = ()
    digits: int = 7
    decimals: int = 0
    signed: bool = False


class _Vocab:
    """The token ids a number can be written with, read once per tokenizer: tokens made of digits (a
    leading space, or WordPiece's '##', allowed), a lone space, and a minus sign (alone or space-led)."""

    def __init__(self, tok):
        self.digits: dict[int, str] = {}  # token id -> its digits
        self.space: list[int] = []
        self.minus: list[int] = []
        self.by_len: dict[int, list[int]] = {}  # digits only, by length
        self.spaced: dict[int, list[int]] = {}  # ' ' + digits (a number's first token only), by length
        for token, i in tok.get_vocab().items():
            s = tok.convert_tokens_to_string([token])
            s = s[2:] if s.startswith("##") else s
            if re.fullmatch(r" ?\d+", s):
                self.digits[i] = s.strip()
                (self.spaced if s[0] == " " else self.by_len).setdefault(len(s.strip()), []).append(i)
            elif s == " ":
                self.space.append(i)
            elif s in ("-", " -"):
                self.minus.append(i)

    def upto(self, n: int, first: bool = False) -> list[int]:
        tables = (self.by_len, self.spaced) if first else (self.by_len,)
        return [i for table in tables for k, ids in table.items() if k <= n for i in ids]


class _Number:
    """A number '[-]<digits>[.<decimals>]' (the minus only for a signed field): which tokens may come next,
    and where it ends. ``end`` is the token that ends it: the field's own end mark when that is one token
    (then part of the value's tokens; when the mark is '.', a first '.' opens the decimals of a column that
    has them and a second one ends the number), else the first token of what follows (not part of the value)."""

    def __init__(self, vocab: _Vocab, field: Field, end: int, own: bool, mark: str):
        self.v, self.f, self.end, self.own = vocab, field, end, own
        self.point = bool(field.decimals) and own and mark == "."

    def _read(self, written: list[int]) -> tuple[str, str | None, int | None]:
        """(sign and integer digits, decimal digits or None before the point, tokens the value took once
        complete)"""
        whole, frac = "", None
        for k, t in enumerate(written):
            if t in self.v.minus:
                whole = "-"
                continue
            if t == self.end:
                if self.point and frac is None:
                    frac = ""
                    continue
                return whole, frac, k + 1 if self.own else k
            if t in self.v.digits:
                if frac is None:
                    whole += self.v.digits[t]
                else:
                    frac += self.v.digits[t]
        return whole, frac, None

    def allowed(self, written: list[int]) -> list[int]:
        whole, frac, _ = self._read(written)
        if frac is None:
            digits = whole.lstrip("-")
            out = self.v.upto(self.f.digits - len(digits), first=not written) + ([self.end] if digits else [])
            sign = self.v.minus if self.f.signed and not whole else []
            return out + sign + (self.v.space if not written else [])
        return self.v.upto(self.f.decimals - len(frac)) + ([self.end] if frac else [])

    def taken(self, written: list[int]) -> int | None:
        return self._read(written)[2]

    def value(self, written: list[int]) -> str:
        whole, frac, _ = self._read(written)
        if not whole.lstrip("-"):
            return ""  # nothing but a sign: missing
        return whole + (f".{frac}" if frac else "")


class _Choice:
    """One of the choices followed by the field's end mark: which tokens may come next, and where it ends."""

    def __init__(self, tok, field: Field, end_text: str):
        self.seqs = {tuple(tok(" " + c + end_text, add_special_tokens=False)["input_ids"]): c
                     for c in field.choices}

    def allowed(self, written: list[int]) -> list[int]:
        n, w = len(written), tuple(written)
        return sorted({q[n] for q in self.seqs if len(q) > n and q[:n] == w})

    def taken(self, written: list[int]) -> int | None:
        return next((len(q) for q in self.seqs if tuple(written[:len(q)]) == q), None)

    def value(self, written: list[int]) -> str:
        return self.seqs.get(tuple(written), "")


class Frame:
    """A whole record as forced text and constrained values, in order: ``allowed`` walks what is written so
    far and names the tokens that may come next (the frame's own next token, or what the open value allows;
    end-of-text once the record is complete); ``values`` reads a finished record back."""

    def __init__(self, tok, fields: list[Field], eos: int):
        self.eos, vocab = eos, _Vocab(tok)
        frames = [tok(("" if k == 0 else " ") + f.prefix.rstrip(), add_special_tokens=False)["input_ids"]
                  for k, f in enumerate(fields)]
        self.parts: list[tuple[list[int], _Number | _Choice]] = []
        for k, f in enumerate(fields):
            end_text = f.suffix.rstrip()
            if f.choices:
                rule = _Choice(tok, f, end_text)
            else:
                mark = tok(end_text, add_special_tokens=False)["input_ids"] if end_text else []
                own = len(mark) == 1
                nxt = frames[k + 1][0] if k + 1 < len(fields) else eos
                rule = _Number(vocab, f, mark[0] if own else nxt, own, end_text)
            self.parts.append((frames[k], rule))
        self.longest = sum(len(fr) + (max(len(q) for q in r.seqs) if isinstance(r, _Choice)
                                      else r.f.digits + r.f.decimals + 3 + r.f.signed) for fr, r in self.parts) + 1

    def _walk(self, written: list[int]) -> tuple[list[int] | None, list[list[int]]]:
        """(the tokens allowed next, or None when the record is complete; the values' tokens so far)"""
        pos, values = 0, []
        for frame, rule in self.parts:
            got = written[pos:pos + len(frame)]
            if len(got) < len(frame):
                return [frame[len(got)]], values
            pos += len(frame)
            rest = written[pos:]
            used = rule.taken(rest)
            if used is None:
                values.append(rest)
                return rule.allowed(rest) or [self.eos], values
            values.append(rest[:used])
            pos += used
        return None, values

    def allowed(self, written: list[int]) -> list[int]:
        if self.eos in written:
            return [self.eos]
        nxt, _ = self._walk(written)
        return [self.eos] if nxt is None else nxt

    def values(self, written: list[int]) -> list[str]:
        _, got = self._walk([t for t in written if t != self.eos])
        return [rule.value(v) for (_, rule), v in zip(self.parts, got)] + [""] * (len(self.parts) - len(got))


@torch.no_grad()
def write_records(lm: CausalLM, prompts: list[str], fields: list[Field], temperature: float = 0.9,
                  top_p: float = 0.95, batch_size: int = 16, seed: int = 0,
                  desc: str = "writing records") -> list[list[str]]:
    """For each prompt (a chat prompt ending where the reply starts), one record: the frame (each field's
    prefix, its end mark, a space between fields) is forced, each value sampled from the LM under its
    field's constraint, in one decoding pass per batch. Returns the values as written (a category, or a
    number's text), one list per prompt in field order."""
    model, tok = lm.model, lm.tokenizer
    model.eval()
    dev, _ = placement(model)
    eos = next((i for i in (tok.eos_token_id, tok.sep_token_id, tok.pad_token_id) if i is not None), None)
    if eos is None:
        raise ModelError("the LM's tokenizer has no end-of-text, separator or padding token", where="lm.path",
                         fix="use a tokenizer that defines eos_token (guided writing ends each record with it)")
    frame = Frame(tok, fields, eos)
    torch.manual_seed(seed)
    out: list[list[str]] = []
    for s in track(range(0, len(prompts), batch_size), desc, total=-(-len(prompts) // batch_size)):
        enc = tok(prompts[s:s + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
        start = enc["input_ids"].shape[1]
        gen = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], do_sample=True,
                             temperature=temperature, top_p=top_p, max_new_tokens=frame.longest,
                             eos_token_id=eos, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos,
                             prefix_allowed_tokens_fn=lambda b, ids: frame.allowed(ids[start:].tolist()),
                             **({"watermarking_config": lm.watermark} if lm.watermark is not None else {}))
        new = gen[:, start:]
        lm.meter.calls += len(new)
        lm.meter.tokens_in += int(enc["attention_mask"].sum())
        lm.meter.tokens_out += int((new != eos).sum())
        out += [frame.values(ids) for ids in new.tolist()]
    return out
