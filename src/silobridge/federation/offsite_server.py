"""fed-offsite's model party on Flower: the rounds are Flower's own ``FedAvg`` strategy (optionally inside
Flower's ``DifferentialPrivacyServerSideFixedClipping`` wrapper), talking to the parties through a Grid that
puts the boundary in between (:class:`BoundaryGrid`): what the strategy sends and receives as Flower records
crosses as carriers, checked by the gates and recorded in the ledgers. The model party adds the emulator
before the first round and, after each round, plugs the global adapters into its LM and has the evaluating
party measure it (Flower's ``evaluate_fn`` hook)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg
from flwr.supercore.differential_privacy import compute_stdv

from silobridge.boundary import Config, Metrics, Weights, expect
from silobridge.errors import BoundaryError, SilobridgeError
from silobridge.federation.apps import ROUNDS, FedServer, _append, _bytes, _short, finished_rounds, setup_timeout
from silobridge.federation.fed_offsite import OffsiteModel, adapters_carrier
from silobridge.federation.records import pack, unpack
from silobridge.privacy.dp import achieved_epsilon
from silobridge.privacy.noise import gaussian, numpy_rng

EMULATOR, EVALUATE = "query.emulator", "query.evaluate"


class BoundaryGrid:
    """The Grid a Flower strategy sees. Outgoing: the strategy's ``arrays``/``config`` records become a
    Weights and a Config carrier, sent through the model party's gate. Replies: the party's carriers are
    identity-checked and ledgered, then handed to the strategy as the ``arrays``/``metrics`` records it
    aggregates. Failed replies are kept (by partition) for the round's record."""

    def __init__(self, grid: Grid, model: OffsiteModel, nodes: dict[int, int]):
        self.grid, self.model, self.nodes = grid, model, nodes
        self.by_node = {n: p for p, n in nodes.items()}
        self.answers: dict[int, Any] = {}  # the last round's: partition -> Metrics or an error string

    def get_node_ids(self) -> list[int]:
        return sorted(self.nodes.values())

    def send_and_receive(self, messages, *, timeout: float | None = None) -> list[Message]:
        messages = list(messages)
        if not messages:  # e.g. the federated evaluation FedAvg is configured without
            return []
        gate, spec = self.model.gate, self.model.settings.strategy.lora
        out, order = [], []
        for m in messages:
            pid = self.by_node[m.metadata.dst_node_id]
            arrays = {k: np.asarray(v.numpy()) for k, v in m.content.array_records["arrays"].items()}
            order = list(arrays)  # the strategy pairs replies' arrays with its own by position
            config = {k: v for k, v in m.content.config_records["config"].items()}
            named = {"adapters": adapters_carrier(arrays, spec), "config": Config(values=config)}
            out.append(Message(content=pack(gate, named, f"party-{pid}", m.metadata.message_type),
                               dst_node_id=m.metadata.dst_node_id, message_type=m.metadata.message_type))
        self.answers = {}
        replies = list(self.grid.send_and_receive(out, timeout=timeout))
        kept = []
        for r in replies:
            pid = self.by_node.get(r.metadata.src_node_id)
            if pid is None:
                continue
            if r.has_error():
                self.answers[pid] = _short(r.error.reason)
                continue
            try:
                got = unpack(gate, r.content, f"party-{pid}", "train.reply")
                w, metrics = expect(got["adapters"], Weights), expect(got["metrics"], Metrics)
                if set(w.tensors) != set(order):
                    raise BoundaryError("the returned adapters are not the ones sent", where=f"party-{pid}.train",
                                        fix="both sides must use the same emulator and LoRA settings")
            except SilobridgeError as e:
                self.answers[pid] = str(e)
                continue
            r.content = RecordDict({"arrays": ArrayRecord({k: Array(np.asarray(w.tensors[k], dtype=np.float32))
                                                           for k in order}),
                                    "metrics": MetricRecord({k: float(v) for k, v in metrics.values.items()})})
            self.answers[pid] = metrics
            kept.append(r)
        for m in out:
            self.answers.setdefault(self.by_node[m.metadata.dst_node_id], f"no reply within {timeout} s")
        return kept


class SecureDPFixedClipping(DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side fixed-clipping DP wrapper with its noise drawn from a secure, unseeded generator
    (Flower draws it from numpy's global, seedable state), as silobridge's other DP noise (Opacus' secure
    mode's way: four draws summed and halved)."""

    def __init__(self, strategy, noise_multiplier: float, clipping_norm: float, num_sampled_clients: int,
                 seed: int | None = None):
        super().__init__(strategy, noise_multiplier, clipping_norm, num_sampled_clients)
        self.rng = numpy_rng(seed)

    def _add_noise_to_aggregated_arrays(self, aggregated_arrays: ArrayRecord) -> ArrayRecord:
        std = compute_stdv(self.noise_multiplier, self.clipping_norm, self.num_sampled_clients)
        return ArrayRecord({k: Array((v + gaussian(self.rng, std, v.shape)).astype(v.dtype))
                            for k, v in zip(aggregated_arrays.keys(), aggregated_arrays.to_numpy_ndarrays())})


def party_epsilon(noise: float, rounds: int, delta: float) -> float:
    """Party-level ε after ``rounds`` releases of the clipped, noised average of every party's update (the
    Gaussian mechanism with sampling rate 1, as DP-FedAvg accounts it; Opacus' RDP accountant)."""
    return achieved_epsilon(1.0, rounds, noise, delta) if rounds else 0.0


class OffsiteServer(FedServer):
    """fed-offsite's loop: meet the parties, send the emulator, then Flower's FedAvg for the rounds; each
    round's global adapters are kept (``model/adapters-R.npz``) and its row appended to ``rounds.jsonl``, so a
    killed federation resumes from the last finished round."""

    Model = OffsiteModel

    def run(self, grid: Grid) -> None:
        fed, c = self.settings.federation, self.settings.strategy
        done = finished_rounds(self.out)
        self.meet(grid)
        w = self.model.make_emulator()
        t0, sent0 = time.perf_counter(), _bytes(self.model, sent=True)
        answers = self._send(grid, EMULATOR, {p: pack(self.model.gate, {"emulator": w}, f"party-{p}", EMULATOR)
                                              for p in self.nodes}, setup_timeout(fed))
        bad = {p: a for p, a in answers.items() if isinstance(a, str)}
        for p, a in answers.items():
            if not isinstance(a, str):
                try:
                    expect(unpack(self.model.gate, a, f"party-{p}", EMULATOR + ".reply")["info"], Metrics)
                except (SilobridgeError, KeyError) as e:
                    bad[p] = str(e)
        if bad:
            self._abort({"stage": EMULATOR, "failed": {str(p): a for p, a in bad.items()}},
                        f"{len(bad)} part{'y' if len(bad) == 1 else 'ies'} could not take the emulator")
        self.emulator_row = {"seconds": round(time.perf_counter() - t0, 3),
                             "bytes": _bytes(self.model, sent=True) - sent0,
                             "revealed_param_share": w.meta["revealed_param_share"]}
        start = load_adapters(self.out, len(done) - 1) if done else self.model.initial_adapters()
        self.offset = max(len(done) - 1, 0)  # Flower counts this start's rounds from 1
        self.bgrid = BoundaryGrid(grid, self.model, self.nodes)
        self.t_round, self.sent0, self.got0 = time.perf_counter(), *self._counts()
        if not done:
            self.evaluate(0, ArrayRecord({k: Array(v) for k, v in start.items()}))
        remaining = fed.rounds - self.offset
        if remaining <= 0:
            return
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=fed.parties,
                          min_available_nodes=fed.parties)
        if c.dp_noise > 0:
            strategy = SecureDPFixedClipping(strategy, c.dp_noise, c.dp_clip, fed.parties, seed=c.dp_seed)
        strategy.start(self.bgrid, ArrayRecord({k: Array(v) for k, v in start.items()}), num_rounds=remaining,
                       timeout=fed.timeout, train_config=ConfigRecord({"round-offset": self.offset}),
                       evaluate_fn=lambda r, arrays: self.evaluate(r, arrays) if r else None)

    def _counts(self) -> tuple[int, int]:
        return _bytes(self.model, sent=True), _bytes(self.model, sent=False)

    def _abort(self, row: dict, why: str) -> None:
        row["aborted"] = why
        _append(self.out / ROUNDS.replace(".jsonl", ".failed.jsonl"), row)
        raise BoundaryError(why + f": {row.get('failed', {})}", where=f"round {row.get('round', row.get('stage'))}",
                            fix="see the failed parties' logs; rerun to resume from the last round")

    def evaluate(self, r: int, arrays: ArrayRecord) -> MetricRecord:
        """After Flower's round ``r`` (0: the initial adapters, i.e. the LM zero-shot): check enough parties
        took part, keep the global adapters, have party 0 measure the LM with them plugged in, log the round."""
        fed, c = self.settings.federation, self.settings.strategy
        rnd = r + self.offset
        answers = self.bgrid.answers if r else {}
        row: dict[str, Any] = {"round": rnd, "parties": {}, "failed": {}, "model": {}}
        for pid, a in sorted(answers.items()):
            if isinstance(a, str):
                row["failed"][str(pid)] = a
            else:
                row["parties"][str(pid)] = {"quality": a.values, "evaluation": {}}
        need = fed.min_parties or fed.parties
        if r and len(row["parties"]) < need:
            self._abort(row | {"seconds": round(time.perf_counter() - self.t_round, 3)},
                        f"{len(row['parties'])} of {len(self.nodes)} parties answered, fewer than {need}")
        adapters = {k: np.asarray(v) for k, v in zip(arrays.keys(), arrays.to_numpy_ndarrays())}
        scores, cal = self.model.score(adapters)
        gate = self.model.gate
        reply = self._send(self.bgrid.grid, EVALUATE,
                           {0: pack(gate, {"scores": scores, "calibration": cal}, "party-0", EVALUATE)},
                           fed.timeout)[0]
        if isinstance(reply, str):
            self._abort(row | {"failed": {"0": reply}}, "the evaluating party could not measure the LM")
        lm = expect(unpack(gate, reply, "party-0", EVALUATE + ".reply")["utility"], Metrics).values
        row["lm"] = lm
        row["model"] = {"sizes": {"lm_params": int(sum(p.numel() for p in self.model.party.lm.model.parameters())),
                                  "adapter_params": int(sum(a.size for a in adapters.values()))},
                        "emulator": self.emulator_row}
        if c.dp_noise > 0:
            row["model"]["dp"] = {"noise_multiplier": c.dp_noise, "clip": c.dp_clip, "delta": c.dp_delta,
                                  "epsilon": party_epsilon(c.dp_noise, rnd, c.dp_delta)}
        sent, got = self._counts()
        row["bytes_model_to_parties"], row["bytes_parties_to_model"] = sent - self.sent0, got - self.got0
        row["seconds"] = round(time.perf_counter() - self.t_round, 3)
        save_adapters(self.out, rnd, adapters)
        _append(self.out / ROUNDS, row)
        self.t_round, self.sent0, self.got0 = time.perf_counter(), *self._counts()
        return MetricRecord({k: float(v) for k, v in lm.items() if isinstance(v, (int, float))})


def save_adapters(out: Path, rnd: int, adapters: dict[str, np.ndarray]) -> None:
    path = Path(out) / "model" / f"adapters-{rnd}.npz"
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.array(json.dumps(sorted(adapters))), **{f"a{i}": adapters[n] for i, n in
                                                                  enumerate(sorted(adapters))})
    os.replace(tmp, path)


def load_adapters(out: Path, rnd: int) -> dict[str, np.ndarray]:
    with np.load(Path(out) / "model" / f"adapters-{rnd}.npz") as z:
        return {n: z[f"a{i}"] for i, n in enumerate(json.loads(str(z["names"])))}


__all__ = ["OffsiteServer", "BoundaryGrid", "SecureDPFixedClipping", "party_epsilon"]
