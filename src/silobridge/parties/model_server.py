"""The model party's service: it hosts sessions, one per run of a strategy. Each session builds the
strategy's model side from the 'open' carrier alone (strategy name, task metadata, protocol parameters,
seed) and has its own :class:`~silobridge.parties.model_party.ModelParty` (LM copy, meter), random state,
phase timings and ledger. Others reach it only with encoded carriers (:meth:`ModelServer.open` /
:meth:`ModelServer.call`), in this process or through a network transport."""
from __future__ import annotations

import dataclasses
import json
import logging
import resource
import threading
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from silobridge import progress
from silobridge.boundary import Carrier, Config, Ledger, MaxBytes, NoModelWeights, Policy, TextBatch, decode, expect
from silobridge.boundary.gate import Gate
from silobridge.boundary.policy import array_digest
from silobridge.configs import from_dict
from silobridge.data.task import TaskSpec
from silobridge.errors import BoundaryError, ConfigError, RemoteError, SilobridgeError
from silobridge.home import home
from silobridge.models.remote import TOP_K, is_remote
from silobridge.parties.batching import ScoreBatcher
from silobridge.parties.model_party import CLOSE, EVALUATE, OPEN, ModelParty, Received, black_box_strategies
from silobridge.rng import PartyRNG
from silobridge.settings import LMConfig, PolicyConfig, TaskKind

log = logging.getLogger("silobridge.model")


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


__all__ = ["ModelServer", "Session", "entry_key"]
