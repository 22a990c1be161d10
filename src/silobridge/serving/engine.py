"""The model party's completion engine behind its OpenAI-compatible API: one LM, requests from many
clients coalesced into shared batches, every request metered into a ledger.

Requests that arrive within ``window`` seconds of each other and ask for the same kind of work (same
max_tokens, temperature, top-p, number of alternatives, echo) run as one batch on a worker thread, so
concurrent clients share forward passes instead of queueing one at a time."""
from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

from silobridge.models.completion import Completion, complete, prompt_logprobs
from silobridge.models.lm import CausalLM


@dataclass(frozen=True)
class Work:
    """What one request asks of the LM: prompts as token ids and how to continue them."""

    prompts: tuple[tuple[int, ...], ...]
    max_tokens: int
    temperature: float
    top_p: float
    top_n: int
    echo: bool
    seed: int | None = None

    def batch_key(self) -> tuple:
        """Requests with equal keys can share one batch (a seeded request runs alone: its sampling must
        not depend on companions)."""
        return (self.max_tokens, self.temperature, self.top_p, self.top_n, self.echo,
                self.seed if self.seed is not None else 0, self.seed is None)


@dataclass
class Answer:
    """One prompt's result: the continuation, and (with echo) the prompt's log-probs and alternatives."""

    completion: Completion
    prompt_logprobs: list[float] = field(default_factory=list)
    prompt_top: list[dict[int, float]] = field(default_factory=list)


@dataclass
class EngineStats:
    requests: int = 0
    batches: int = 0
    prompts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class CallLedger:
    """JSONL record of every API call the model party answered: when, which endpoint and model, bytes
    in and out, tokens in and out, a digest of the caller's key (never the key)."""

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.seq = 0

    def record(self, **entry) -> None:
        with self._lock:
            line = json.dumps({"seq": self.seq, "time": time.time(), **entry}, sort_keys=True)
            self.seq += 1
            with self.path.open("a") as fh:
                fh.write(line + "\n")


def key_digest(authorization: str) -> str:
    return hashlib.sha256(authorization.encode()).hexdigest()[:12]


class CompletionEngine:
    """Serves completions from ``load()``'s LM (loaded on first use). ``window``: seconds a batch's
    first request waits for companions; ``max_batch``: prompts per batch."""

    def __init__(self, load, name: str, ledger_path: Path, max_model_len: int = 2048, window: float = 0.01,
                 max_batch: int = 16):
        self._load, self.name, self.max_model_len = load, name, max_model_len
        self.window, self.max_batch = window, max_batch
        self.ledger = CallLedger(ledger_path)
        self.stats = EngineStats()
        self._lm: CausalLM | None = None
        self._lm_lock = threading.Lock()
        self._queue: queue.Queue[tuple[Work, Future]] = queue.Queue()
        self._worker = threading.Thread(target=self._loop, name="completion-engine", daemon=True)
        self._worker.start()

    @property
    def lm(self) -> CausalLM:
        with self._lm_lock:
            if self._lm is None:
                self._lm = self._load()
            return self._lm

    def submit(self, work: Work) -> Future:
        fut: Future = Future()
        self._queue.put((work, fut))
        return fut

    # --- the worker ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        held: list[tuple[Work, Future]] = []  # taken from the queue but not batchable with the last batch
        while True:
            first = held.pop(0) if held else self._queue.get()
            batch, key = [first], first[0].batch_key()
            size = len(first[0].prompts)
            solo = first[0].seed is not None
            rest = []
            for item in held:  # earlier arrivals first
                if not solo and item[0].batch_key() == key and size + len(item[0].prompts) <= self.max_batch:
                    batch.append(item)
                    size += len(item[0].prompts)
                else:
                    rest.append(item)
            held = rest
            deadline = time.monotonic() + self.window
            while size < self.max_batch and not solo:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item[0].batch_key() == key and size + len(item[0].prompts) <= self.max_batch:
                    batch.append(item)
                    size += len(item[0].prompts)
                else:
                    held.append(item)
            self._run(batch)

    def _run(self, batch: list[tuple[Work, Future]]) -> None:
        live = [(w, f) for w, f in batch if f.set_running_or_notify_cancel()]
        if not live:
            return
        w0 = live[0][0]
        prompts = [list(p) for w, _ in live for p in w.prompts]
        try:
            lm = self.lm
            outs = complete(lm, prompts, w0.max_tokens, w0.temperature, w0.top_p, w0.top_n, w0.seed)
            echoed = prompt_logprobs(lm, prompts, w0.top_n) if w0.echo else [([], [])] * len(prompts)
        except Exception as exc:  # every request of the batch fails with it
            for _, f in live:
                f.set_exception(exc)
            return
        self.stats.batches += 1
        at = 0
        for w, f in live:
            n = len(w.prompts)
            f.set_result([Answer(c, lp, top) for c, (lp, top) in zip(outs[at:at + n], echoed[at:at + n])])
            at += n
            self.stats.requests += 1
            self.stats.prompts += n
            self.stats.prompt_tokens += sum(len(p) for p in w.prompts)
            self.stats.completion_tokens += sum(len(c.token_ids) for c in outs[at - n:at])

    def stats_dict(self) -> dict:
        return asdict(self.stats)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
