"""The model party: owns the LM. It hosts sessions, one per run of a strategy: each session builds the
strategy's model side from the 'open' carrier alone (strategy name, task metadata, protocol
parameters, seed), and has its own LM copy, random state, meter, phase timings and ledger. Others
reach it only with encoded carriers (:meth:`ModelServer.open` / :meth:`ModelServer.call`), in this
process or through a network transport."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import resource
import threading
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import numpy as np

from silobridge import progress
from silobridge.boundary import Carrier, Config, Ledger, MaxBytes, NoModelWeights, Policy, TextBatch, decode, expect
from silobridge.boundary.gate import Gate
from silobridge.boundary.policy import array_digest
from silobridge.configs import from_dict
from silobridge.data.task import TaskSpec
from silobridge.errors import BoundaryError, ConfigError, ModelError, RemoteError, SilobridgeError
from silobridge.home import home
from silobridge.models.lm import (CausalLM, Meter, build_prompt, load_lm, score_labels, score_with_context,
                                 truncate_texts)
from silobridge.models.remote import TOP_K, OpenAILM, is_remote
from silobridge.parties.batching import ScoreBatcher
from silobridge.privacy.watermark import with_watermark
from silobridge.rng import PartyRNG
from silobridge.settings import LMConfig, PolicyConfig, TaskKind

log = logging.getLogger("silobridge.model")
OPEN, CLOSE, EVALUATE = "open", "close", "evaluate"


class Received:
    """The protocol parameters a model side received: reading any other option of the strategy's
    config is an error (what the model side uses must have crossed, and be in the ledger)."""

    def __init__(self, config: Any, names: tuple[str, ...]):
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_names", frozenset(names))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(type(self._config), name, None)
        if isinstance(attr, property):
            return attr.fget(self)
        if name not in self._names:
            raise BoundaryError(f"the model side read option '{name}', which the data side does not send",
                                where="strategy.model_params", fix=f"add '{name}' to the strategy's model_params")
        return getattr(self._config, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("received parameters are read-only")


def black_box_strategies() -> list[str]:
    """Strategies that need only text and log-probs from the LM (they run against an OpenAI-compatible server)."""
    from silobridge.strategies import all_strategies

    return sorted(n for n, cls in all_strategies().items() if cls.black_box)


class ModelParty:
    """One session's model party, as a strategy's model side sees it: the task, the LM (its own copy,
    loaded on first use), the cache setting and directory, and the meter."""

    name = "model"

    def __init__(self, task: TaskSpec, kind: TaskKind, lm: LMConfig, cache_dir: Path):
        self.task, self.kind = task, kind
        self._lm_config = lm
        self.cache = lm.cache
        self.cache_dir = cache_dir
        self.meter = Meter()
        self._lm: CausalLM | None = None
        self._remote: OpenAILM | None = None
        self.batcher: ScoreBatcher | None = None  # set by the server while a batchable operation runs

    @property
    def black_box(self) -> bool:
        """Whether the LM is reached over an OpenAI-compatible API (text and log-probs, no weights)."""
        return is_remote(self._lm_config.path)

    @property
    def remote(self) -> OpenAILM:
        if self._remote is None:
            self._remote = OpenAILM.connect(self._lm_config.path, self._lm_config.api_key_env)
            self._remote.meter = self.meter
        return self._remote

    def lm_identity(self) -> str:
        """What caches key on: the weights' digest, or for a black-box LM its name and address."""
        return f"remote:{self.remote.name}" if self.black_box else self.lm.digest()

    def score_labels(self, texts: list[str], user_template: str, label_words: list[str], max_text_tokens: int,
                     batch_size: int, desc: str, shots: tuple[tuple[str, str], ...] = ()):
        """The LM's label log-probs for ``texts``: from the score cache (``lm.cache``), else batched with
        other sessions' concurrent requests when the server allows it, else scored here (or, for a
        black-box LM, by its server)."""
        if self.black_box:
            return self.remote.score_labels(texts, user_template, label_words, max_text_tokens, shots)
        if self.batcher is not None and not self.cache:
            return self.batcher.score(self.lm, texts, user_template, label_words, max_text_tokens, batch_size,
                                      desc, shots)
        return score_labels(self.lm, texts, user_template, label_words, max_text_tokens, batch_size, desc,
                            cache_dir=self.cache_dir if self.cache else None, shots=shots)

    def score_with_context(self, texts: list[str], user_template: str, label_words: list[str],
                           shots_each: list[tuple[tuple[str, str], ...]], max_text_tokens: int, batch_size: int,
                           desc: str) -> np.ndarray:
        """:meth:`score_labels` where each text brings its own demonstrations (never cached or co-batched:
        the prompts differ per text)."""
        if self.black_box:
            return self.remote.score_labels(texts, user_template, label_words, max_text_tokens, shots_each=shots_each)
        return score_with_context(self.lm, texts, user_template, label_words, shots_each, max_text_tokens,
                                  batch_size, desc)

    def truncate(self, texts: list[str], max_tokens: int) -> list[str]:
        """Each text cut to ``max_tokens`` of the LM's tokens (the server's, for a black-box LM)."""
        if self.black_box:
            return self.remote.truncate(texts, max_tokens)
        return truncate_texts(self.lm, texts, max_tokens)

    def memo_texts(self, what: str, key: list, compute: Callable[[], list[str]]) -> tuple[list[str], bool]:
        """With ``lm.cache``, texts the LM produced for ``key`` (its weights' digest first) are kept in the
        cache and served again (billed as cached calls), so a rerun that changes only data-side
        settings does not redo them. Returns (texts, cached?)."""
        if not self.cache:
            return compute(), False
        mark = self._lm_config
        wm = [["watermark", mark.watermark_key, mark.watermark_gamma, mark.watermark_bias]] if mark.watermark else []
        digest = hashlib.sha256(json.dumps([self.lm_identity(), *wm, *key]).encode()).hexdigest()[:20]
        path = self.cache_dir / f"{what}-{digest}.json"
        try:
            texts = json.loads(path.read_text())["texts"]
            if isinstance(texts, list) and all(isinstance(t, str) for t in texts):
                self.meter.cached += len(texts)
                return texts, True
            log.warning("ignoring a damaged cache entry %s; computing it again", path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a damaged cache entry %s (%s); computing it again", path, exc)
        texts = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"texts": texts}))
        os.replace(tmp, path)
        return texts, False

    def generate_replies(self, users: list[str], max_new_tokens: int, temperature: float, top_p: float,
                         batch_size: int, seed: int, desc: str) -> list[str]:
        """One sampled reply per user message, the chat template applied (by the server, for a black-box LM)."""
        if self.black_box:
            return self.remote.generate(users, max_new_tokens, temperature, top_p, seed)
        from silobridge.models.generate import generate

        prompts = [build_prompt(self.lm, u) for u in users]
        return generate(self.lm, prompts, max_new_tokens, temperature, top_p, batch_size, seed=seed, desc=desc)

    @property
    def lm(self) -> CausalLM:
        """The LM, loaded on first use (strategies that never ask for it never pay for it)."""
        if self.black_box:
            raise ModelError(f"this needs the LM's weights, and {self._lm_config.path} is a black box (text and "
                             "log-probs only)", where="lm.path",
                             fix=f"use a local LM for this strategy, or one of: {', '.join(black_box_strategies())}")
        if self._lm is None:
            c = self._lm_config
            self._lm = with_watermark(load_lm(c.path, c.threads, c.dtype, c.device), c)
            self._lm.meter = self.meter
        return self._lm

    @property
    def lm_loaded(self) -> bool:
        return self._lm is not None

    def placement(self) -> dict[str, str]:
        """Where and in what precision the LM runs (as resolved from lm.device / lm.dtype)."""
        from silobridge.models.device import resolve

        if self.black_box:
            return {"device": f"remote ({self.remote.name})", "dtype": "unknown"}
        device, dtype = resolve(self._lm_config.dtype, self._lm_config.device)
        return {"device": str(device), "dtype": str(dtype).removeprefix("torch.")}


class Session:
    def __init__(self, server: "ModelServer", sid: str, values: dict[str, Any]):
        from silobridge.strategies import get
        from silobridge.strategies.base import check_kind

        try:
            spec = get(str(values["strategy"]))
            kind = TaskKind(values["kind"])
            task = TaskSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in values["task"].items()})
            seed = int(values.get("seed", 0))
            params = dict(values.get("params") or {})
        except SilobridgeError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise BoundaryError(f"bad 'open' request: {exc}", where="model.open",
                                fix="send {'strategy', 'kind', 'task', 'params', 'seed'}") from None
        check_kind(spec, kind)
        if is_remote(server.lm_config.path) and (not spec.black_box or not kind.labelled):
            raise ConfigError(f"'{spec.name}' ({kind.value}) needs the LM's weights, and the model party's LM "
                              f"{server.lm_config.path} is a black box (text and log-probs only)", where="lm.path",
                              fix=f"run it with a local LM, or run one of: {', '.join(black_box_strategies())} "
                                  "(task classify)")
        unknown = set(params) - set(spec.model_params)
        if unknown:
            raise BoundaryError(f"parameters {sorted(unknown)} are not part of '{spec.name}''s protocol",
                                where="model.open", fix=f"send only: {', '.join(spec.model_params) or 'none'}")
        config = Received(from_dict(spec.Config, params, prefix="strategy."), spec.model_params)
        self.sid, self.spec = sid, spec
        self.party = ModelParty(task, kind, server.lm_config, server.home / "cache")
        self.rng = PartyRNG(seed)
        self.phases: dict[str, float] = {}
        self.busy = 0.0
        self.exact_sent: dict[str, int] = {}  # LM parameters that left bit-exactly: name -> size
        self.lm_size = 0  # the LM's parameter count when they left (before any tuning changes it)
        ledger = Ledger(server.home / "sessions" / sid / "ledger.jsonl")
        self.gate = Gate("model", server.policy_for(self.party), ledger, declared=spec.exposes)
        self.gate.observers.append(self._watch)
        self.lock = threading.Lock()
        self.last: tuple[int, bytes] | None = None  # (request seq, reply) for retried calls
        with self.rng.scope(), progress.phases(self.phases):
            self.side = spec.ModelSide(config, self.party)
            self.ops = self.side.ops()

    def _watch(self, entry, carrier: Carrier, payload: bytes) -> None:
        if entry.sender != "model" or not self.party.lm_loaded:
            return
        # what left this silo: bit-exact copies of the LM's tensors, compared with the LM as it is now
        # (a strategy may tune the LM later; the share revealed is of the owner's weights)
        sent = {array_digest(a) for a in carrier.arrays().values() if a.dtype.kind == "f" and a.size >= 256}
        if sent:
            self.lm_size = 0
            for name, p in self.party.lm.model.named_parameters():
                a = p.detach().float().cpu().numpy()
                self.lm_size += a.size
                if array_digest(a) in sent:
                    self.exact_sent[name] = a.size

    def handle(self, op: str, carrier: Carrier) -> Carrier:
        if op == EVALUATE:
            return self._evaluate(carrier)
        if op not in self.ops:
            raise BoundaryError(f"the model party offers no operation '{op}'", where="channel",
                                fix=f"the running strategy offers: {sorted(self.ops) or 'none'}")
        return self.ops[op](carrier)

    def _evaluate(self, carrier: Carrier) -> Carrier:
        """Perplexity of the LMs this side deploys on texts the data party sent for evaluation."""
        from silobridge.models.causal import evaluate_lms

        batch = expect(carrier, TextBatch)
        if batch.exposure != "evaluation_records":
            raise BoundaryError("evaluation texts must be sent under the 'evaluation_records' exposure",
                                where="model.evaluate", fix="send TextBatch(..., exposure='evaluation_records')")
        return Config(values=evaluate_lms(self.side.language_models(), batch.items))

    def report(self) -> dict[str, Any]:
        """What the model party reports at the end of a session: its bill, time and what it revealed."""
        m = self.party.meter
        exact = sum(self.exact_sent.values())
        total = self.lm_size
        if not total and self.party.lm_loaded:
            total = sum(p.numel() for p in self.party.lm.model.parameters())
        queries = {"calls": m.calls + m.cached, "tokens_in": m.tokens_in, "tokens_out": m.tokens_out,
                   "cached": m.cached}
        if self.party.black_box and self.party._remote is not None:  # label scores from the top-k only
            r = self.party._remote
            queries |= {"black_box": r.name, "top_k": TOP_K, "labels_outside_top_k": r.outside_top_k,
                        "truncation": r.truncation}
        return {"lm_queries": queries,
                "busy_seconds": round(self.busy, 3), "phase_seconds": progress.phase_seconds(self.phases),
                "lm_param_share_exact": exact / total if total else 0.0,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                **self.party.placement()}


class ModelServer:
    """The model party's service: its LM config, egress policy and directory (ledgers, cache); the
    sessions it hosts. Operations run one at a time (they share the process's threads and the
    generators each session swaps in), except batchable ones (label scoring), which wait up to
    ``batch_window`` seconds for concurrent requests on the same weights and run with them."""

    def __init__(self, lm: LMConfig, policy: PolicyConfig, root: Path | None = None, batch_window: float = 0.005):
        self.lm_config, self.policy_config = lm, policy
        self.home = Path(root) if root else home() / "model-party"
        self.max_bytes = policy.max_bytes
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.batcher = ScoreBatcher(threading.Condition(self._lock), batch_window)

    def policy_for(self, party: ModelParty) -> Policy:
        # a black-box LM's weights are not here to leak (its own server guards them)
        weights = NoModelWeights(lambda: () if party.black_box else party.lm.parameters())
        return Policy([MaxBytes(self.max_bytes), weights])

    def _check_size(self, payload: bytes, where: str) -> None:
        if len(payload) > self.max_bytes:
            raise BoundaryError(f"{len(payload):,} bytes exceeds the model party's limit of {self.max_bytes:,}",
                                where=where, fix="send smaller batches (policy.max_bytes of the model party)")

    def open(self, payload: bytes) -> bytes:
        """Start a session from an encoded Config carrier; the reply names the session."""
        self._check_size(payload, "model.open")
        request = expect(decode(payload), Config)
        sid = uuid.uuid4().hex
        with self._lock:
            session = Session(self, sid, request.values)
            session.gate.receive(payload, "data", OPEN)
            self.sessions[sid] = session
            with session.rng.scope(), progress.phases(session.phases):
                _, reply = session.gate.send(Config(values={"session": sid, "ops": sorted(session.ops)}), "data",
                                             OPEN + ".reply")
        session.last = (0, reply)
        return reply

    def session(self, sid: str) -> Session:
        if sid not in self.sessions:
            raise BoundaryError(f"no open session '{sid}'", where="model.session",
                                fix="open a session first (it ends with 'close')")
        return self.sessions[sid]

    def call(self, sid: str, seq: int, op: str, payload: bytes) -> bytes:
        """Run operation ``op`` of session ``sid`` on an encoded carrier; returns the encoded reply.
        ``seq`` is the request's place in the ledger: a retry of the last request gets the same reply."""
        self._check_size(payload, f"model.{op}")
        s = self.session(sid)
        with s.lock:
            if s.last is not None and seq == s.last[0]:
                return s.last[1]
            expected = len(s.gate.ledger.entries)
            if seq != expected:
                raise BoundaryError(f"request {seq} is out of order (the session expects {expected})",
                                    where=f"model.{op}", fix="send a session's calls one at a time, in order")
            batchable = op in s.side.batchable_ops
            # a batchable operation may release the lock while it waits for companions, so it must not
            # hold the session's random state (another session's could be swapped in meanwhile)
            with self._lock, (nullcontext() if batchable else s.rng.scope()), progress.phases(s.phases):
                t0 = time.perf_counter()
                _, carrier = s.gate.receive(payload, "data", op)
                s.party.batcher = self.batcher if batchable else None
                try:
                    reply = Config(values={"closed": True}) if op == CLOSE else s.handle(op, carrier)
                except SilobridgeError:
                    raise
                except Exception as exc:  # a crash inside an operation: a typed error, logged here
                    log.exception("operation %s of session %s failed", op, sid)
                    raise RemoteError(f"operation '{op}' failed: {type(exc).__name__}: {exc}", where=f"model.{op}",
                                      fix="see the model party's log; check the strategy's options") from exc
                finally:
                    s.party.batcher = None
                    s.busy += time.perf_counter() - t0
                _, out = s.gate.send(reply, "data", op + ".reply")
            s.last = (seq, out)
            if op == CLOSE:  # the session's own account of itself, kept beside its ledger
                self._report_path(sid).write_text(json.dumps(s.report(), sort_keys=True))
                del self.sessions[sid]
        return out

    def audit(self, sid: str, request: dict[str, Any]) -> dict[str, Any]:
        """The auditor's measurement on an open session (not protocol: no carrier, no ledger entry, not
        billed); see :mod:`silobridge.parties.audit_hook`."""
        from silobridge.parties.audit_hook import answer

        s = self.session(sid)
        with s.lock, self._lock, s.rng.scope():
            return answer(s.side, s.party, request)

    def stats(self) -> dict[str, Any]:
        """Counters of the service: open sessions; scoring requests, forward rounds and texts batched."""
        return {"sessions": len(self.sessions), "batching": dataclasses.asdict(self.batcher.stats)}

    def _report_path(self, sid: str) -> Path:
        if not sid.isalnum():
            raise BoundaryError(f"bad session id '{sid}'", where="model.session")
        return self.home / "sessions" / sid / "report.json"

    def report(self, sid: str) -> dict[str, Any]:
        """A closed session's report (the model party's bill, time, peak memory and the share of its LM's
        parameters that left bit-exactly). Measurement, not protocol: it is not a carrier."""
        path = self._report_path(sid)
        if not path.is_file():
            raise BoundaryError(f"no report for session '{sid}' (is it closed?)", where="model.report",
                                fix="close the session first")
        return json.loads(path.read_text())

    def ledger(self, sid: str) -> list[dict]:
        path = self.home / "sessions" / sid / "ledger.jsonl"
        if not sid.isalnum() or not path.is_file():
            raise BoundaryError(f"no ledger for session '{sid}'", where="model.ledger")
        return [json.loads(line) for line in path.read_text().splitlines() if line]


def entry_key(e: dict) -> tuple:
    """What both parties' ledgers must agree on, entry by entry."""
    return tuple(e[k] for k in ("seq", "sender", "receiver", "op", "kind", "bytes", "sha256"))


__all__ = ["ModelServer", "ModelParty", "Received", "Session", "entry_key"]
