"""The model party's request batcher: label-scoring requests that arrive together — from sessions of
different clients, over the network — on the same LM weights run as shared forward batches.

A request waits at most ``window`` seconds for companions. The first request of a round leads it: it
waits (releasing the server's compute lock, so the others can register), then scores every waiting
prompt in one pass and hands each request its rows. Each session is billed for its own prompts only.
Scoring is deterministic, so a text's answer does not depend on its companions beyond float rounding."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from silobridge.models.lm import CausalLM, encode_prompts, first_token_ids, renormalise, score_prompts


@dataclass
class _Request:
    enc: list[list[int]]
    token_ids: list[int]
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class _Round:
    lm: CausalLM
    batch_size: int
    requests: list[_Request] = field(default_factory=list)

    @property
    def texts(self) -> int:
        return sum(len(r.enc) for r in self.requests)


@dataclass
class BatchStats:
    """What the batcher did: requests served, forward rounds run, texts scored."""

    requests: int = 0
    rounds: int = 0
    texts: int = 0


class ScoreBatcher:
    """Coalesces concurrent ``score`` calls. ``cond`` must wrap the lock the caller already holds (the
    server's compute lock); ``window``: seconds a round's leader waits for companions (0: none);
    ``max_texts``: a round stops waiting once it holds this many texts."""

    def __init__(self, cond: threading.Condition, window: float = 0.005, max_texts: int = 256):
        self.cond, self.window, self.max_texts = cond, window, max_texts
        self.open_rounds: dict[str, _Round] = {}
        self.stats = BatchStats()

    def score(self, lm: CausalLM, texts: list[str], user_template: str, label_words: list[str],
              max_text_tokens: int, batch_size: int, desc: str, shots: tuple[tuple[str, str], ...] = ()) -> np.ndarray:
        """Like :func:`silobridge.models.lm.score_labels` (uncached); call it holding ``cond``'s lock."""
        req = _Request(encode_prompts(lm, texts, user_template, max_text_tokens, shots),
                       first_token_ids(lm, label_words))
        key = lm.digest()  # same weights, same answers: any session's copy may serve the round
        rnd = self.open_rounds.get(key)
        if rnd is None:  # lead a new round
            rnd = self.open_rounds[key] = _Round(lm, batch_size, [req])
            deadline = time.monotonic() + self.window
            while rnd.texts < self.max_texts and (left := deadline - time.monotonic()) > 0:
                self.cond.wait(left)  # releases the lock: companions register meanwhile
            del self.open_rounds[key]
            self._run(rnd, desc)
            self.cond.notify_all()
        else:  # join the round its leader is gathering
            rnd.requests.append(req)
            self.cond.notify_all()
            while not req.done:
                self.cond.wait()
        if req.error is not None:
            raise req.error
        lm.meter.bill_prompts(req.enc)
        return req.result

    def _run(self, rnd: _Round, desc: str) -> None:
        ids = sorted({t for r in rnd.requests for t in r.token_ids})
        col = {t: j for j, t in enumerate(ids)}
        enc = [e for r in rnd.requests for e in r.enc]
        try:
            logp = score_prompts(rnd.lm.model, enc, ids, rnd.lm.tokenizer.pad_token_id, rnd.batch_size, desc)
            at = 0
            for r in rnd.requests:
                r.result = renormalise(logp[at:at + len(r.enc)][:, [col[t] for t in r.token_ids]])
                at += len(r.enc)
        except Exception as exc:  # every request of the round fails with the same error
            for r in rnd.requests:
                r.error = exc
        for r in rnd.requests:
            r.done = True
        self.stats.requests += len(rnd.requests)
        self.stats.rounds += 1
        self.stats.texts += len(enc)
