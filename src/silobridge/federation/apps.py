"""fed-distill on Flower: the model party is the ServerApp (Message API, ``Grid``), each data party a ClientApp
node with its partition id in its ``node_config``. Every message's content is carriers packed by
:mod:`silobridge.federation.records`, so both sides' gates check and ledger what crosses. The same two apps
run on the simulation engine and on the deployment engine (``silobridge.federation.engine``).

Where a run's settings are: the ``SILOBRIDGE_FED_SETTINGS`` environment variable (each host's own copy) or
else ``run_config['settings']`` (the app's ``pyproject.toml``), naming the run's ``federation.json``."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from silobridge.boundary import Config, Metrics, SoftLabels, expect
from silobridge.errors import BoundaryError, ConfigError, SilobridgeError
from silobridge.federation.config import FedSettings
from silobridge.federation.fed_distill import FedModel, FedParty
from silobridge.federation.records import pack, unpack

ENV = "SILOBRIDGE_FED_SETTINGS"
FAULT = "SILOBRIDGE_FED_FAULT"  # fault injection for tests and drills (see _crash_if_told)
INTRODUCE, DISTILL = "query.introduce", "train.distill"
ROUNDS = "rounds.jsonl"


def load_settings(context: Context) -> tuple[FedSettings, Path]:
    path = os.environ.get(ENV) or context.run_config.get("settings")  # a host's own copy first
    if not path or not Path(str(path)).is_file():
        raise ConfigError(f"no federation settings file ({path!r})", where=f"run_config.settings / ${ENV}",
                          fix="start federations with `silobridge federate`, which writes and passes it")
    doc = json.loads(Path(str(path)).read_text())
    return FedSettings.from_dict(doc["settings"]), Path(doc["out"])


# --- data parties ---------------------------------------------------------------------------------------
client_app = ClientApp()
_parties: dict[tuple[str, int], FedParty] = {}  # a node answers many messages; its silo is built once


def _party(context: Context) -> FedParty:
    settings, out = load_settings(context)
    pid = int(context.node_config.get("partition-id", -1))
    key = (str(out), pid)
    if key not in _parties:
        if settings.name == "fed-offsite":
            from silobridge.federation.fed_offsite import OffsiteParty as Party
        elif settings.name == "lm-fusion":
            from silobridge.federation.lm_fusion import FusionParty as Party
        else:
            Party = FedParty
        _parties[key] = Party(settings, pid, out)
    return _parties[key]


def _reply(msg: Message, party: FedParty, named: dict, op: str) -> Message:
    return Message(content=pack(party.gate, named, "model", op), reply_to=msg)


@client_app.query("introduce")
def introduce(msg: Message, context: Context) -> Message:
    party = _party(context)
    unpack(party.gate, msg.content, "model", INTRODUCE)
    return _reply(msg, party, party.introduce(), INTRODUCE + ".reply")


@client_app.train("distill")
def distill(msg: Message, context: Context) -> Message:
    import torch

    party = _party(context)
    torch.set_num_threads(party.settings.federation.party_threads)
    got = unpack(party.gate, msg.content, "model", DISTILL)
    rnd = int(expect(got["round"], Config).values["round"])
    _crash_if_told(party, rnd)
    t0 = time.perf_counter()
    res = party.train(rnd, got.get("lm"), got.get("ensemble"), got.get("lm_eval"))
    row = {"round": rnd, "seconds": round(time.perf_counter() - t0, 3), "evaluation": res.evaluation,
           "quality": res.quality.values}
    _append(party.dir / ROUNDS, row)  # the party's own record, kept in its silo
    return _reply(msg, party, {"soft": res.soft, "quality": res.quality, "evaluation": _flat(res.evaluation)},
                  DISTILL + ".reply")


def _flat(evaluation: dict[str, dict]) -> Metrics:
    """Utilities by model ({'sm': {'accuracy': ...}}) as one Metrics carrier ('sm.accuracy', ...)."""
    return Metrics(values={f"{who}.{k}": float(v) for who, u in evaluation.items() for k, v in u.items()
                           if v is not None})


def _crash_if_told(party: FedParty, rnd: int) -> None:
    """Fault injection: ``PARTY:ROUND`` crashes that party in that round, ``PARTY:ROUND:hang=S`` makes it
    answer S seconds late (Flower's simulation engine waits for a running ClientApp before it stops)."""
    fault = os.environ.get(FAULT, "")
    if fault == f"{party.pid}:{rnd}":
        raise RuntimeError(f"party {party.pid} crashed in round {rnd} ({FAULT} is set)")
    if fault.startswith(f"{party.pid}:{rnd}:hang="):
        time.sleep(float(fault.rsplit("=", 1)[1]))


# fed-offsite: the emulator once, then Flower's FedAvg rounds ('train'), and the LM's measurement at party 0
@client_app.query("emulator")
def emulator(msg: Message, context: Context) -> Message:
    party = _party(context)
    got = unpack(party.gate, msg.content, "model", "query.emulator")
    return _reply(msg, party, {"info": party.take_emulator(got["emulator"])}, "query.emulator.reply")


@client_app.train()
def train_adapters(msg: Message, context: Context) -> Message:
    import torch

    party = _party(context)
    torch.set_num_threads(party.settings.federation.party_threads)
    got = unpack(party.gate, msg.content, "model", "train")
    cfg = expect(got["config"], Config).values
    rnd = int(cfg["server-round"]) + int(cfg.get("round-offset", 0))  # Flower counts a resumed start from 1
    _crash_if_told(party, rnd)
    t0 = time.perf_counter()
    adapters, metrics = party.train_adapters(rnd, got["adapters"])
    _append(party.dir / ROUNDS, {"round": rnd, "seconds": round(time.perf_counter() - t0, 3),
                                 "quality": metrics.values})
    return _reply(msg, party, {"adapters": adapters, "metrics": metrics}, "train.reply")


@client_app.query("evaluate")
def evaluate_lm(msg: Message, context: Context) -> Message:
    party = _party(context)
    got = unpack(party.gate, msg.content, "model", "query.evaluate")
    u = party.evaluate_lm(got["scores"], got["calibration"])
    return _reply(msg, party, {"utility": Metrics(values={k: float(v) for k, v in u.items() if v is not None})},
                  "query.evaluate.reply")


# lm-fusion: one round, every LM's labels in, the party's weights and utilities out
@client_app.train("fuse")
def fuse(msg: Message, context: Context) -> Message:
    party = _party(context)
    got = unpack(party.gate, msg.content, "model", "train.fuse")
    _crash_if_told(party, 1)

    def each(prefix: str) -> list:
        return [got[f"{prefix}{i}"] for i in range(len(party.settings.strategy.lms)) if f"{prefix}{i}" in got]
    t0 = time.perf_counter()
    quality, evaluation = party.fuse(each("public"), each("val") or None, each("eval") or None)
    row = {"round": 1, "seconds": round(time.perf_counter() - t0, 3), "evaluation": evaluation,
           "quality": quality.values}
    _append(party.dir / ROUNDS, row)
    return _reply(msg, party, {"quality": quality, "evaluation": _flat(evaluation)}, "train.fuse.reply")


# --- the model party ------------------------------------------------------------------------------------
server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    settings, out = load_settings(context)
    if settings.name == "fed-offsite":
        from silobridge.federation.offsite_server import OffsiteServer as Server
    elif settings.name == "lm-fusion":
        from silobridge.federation.fusion_server import FusionServer as Server
    else:
        Server = FedServer
    Server(settings, out).run(grid)


class FedServer:
    """The model party's loop: meet the parties, then one message round per federated round; each round's
    outcome is appended to ``rounds.jsonl`` at once (and the parties' replies kept), so a killed federation
    resumes after its last finished round."""

    Model = FedModel

    def __init__(self, settings: FedSettings, out: Path):
        self.settings, self.out = settings, Path(out)
        self.model = self.Model(settings, out)
        self.nodes: dict[int, int] = {}  # partition id -> node id

    def _send(self, grid: Grid, op: str, contents: dict[int, RecordDict], timeout: float) -> dict[int, Any]:
        """Send each partition its content; {partition: reply content or an error string}."""
        msgs, back = [], {}
        for pid, content in contents.items():
            msgs.append(Message(content=content, dst_node_id=self.nodes[pid], message_type=op))
        by_node = {v: k for k, v in self.nodes.items()}
        for reply in grid.send_and_receive(msgs, timeout=timeout):
            pid = by_node.get(reply.metadata.src_node_id)
            if pid is None:
                continue
            back[pid] = _short(reply.error.reason) if reply.has_error() else reply.content
        for pid in contents:
            back.setdefault(pid, f"no reply within {timeout:.0f} s")
        return back

    def _wait_for_nodes(self, grid: Grid) -> list[int]:
        fed = self.settings.federation
        deadline = time.time() + setup_timeout(fed)
        while True:
            ids = sorted(grid.get_node_ids())
            if len(ids) >= fed.parties:
                return ids
            if time.time() > deadline:
                raise BoundaryError(f"{len(ids)} of {fed.parties} parties connected in {setup_timeout(fed):.0f} s",
                                    where="federation.parties", fix="start every party's node, or lower "
                                                                    "federation.parties")
            time.sleep(1.0)

    def meet(self, grid: Grid) -> None:
        fed, gate = self.settings.federation, self.model.gate
        ids = self._wait_for_nodes(grid)
        hello = Config(values={"strategy": self.settings.name})
        msgs = [Message(content=pack(gate, {"hello": hello}, f"node-{n}", INTRODUCE), dst_node_id=n,
                        message_type=INTRODUCE) for n in ids]
        intro = {}
        for reply in grid.send_and_receive(msgs, timeout=setup_timeout(fed)):
            if reply.has_error():
                why = f"node {reply.metadata.src_node_id} failed to introduce itself: {_short(reply.error.reason)}"
                _append(self.out / ROUNDS.replace(".jsonl", ".failed.jsonl"), {"stage": INTRODUCE, "aborted": why})
                raise BoundaryError(why, where=INTRODUCE, fix="see that party's log")
            got = unpack(gate, reply.content, f"node-{reply.metadata.src_node_id}", INTRODUCE + ".reply")
            pid = int(expect(got["party"], Config).values["partition"])
            if pid in self.nodes:
                raise ConfigError(f"two nodes claim partition {pid}", where="node_config.partition-id",
                                  fix="give every node its own partition-id")
            self.nodes[pid], intro[pid] = reply.metadata.src_node_id, got
        if sorted(self.nodes) != list(range(fed.parties)):
            raise ConfigError(f"partitions {sorted(self.nodes)} answered, expected 0..{fed.parties - 1}",
                              where="node_config.partition-id", fix="one node per partition id")
        self.intro = intro
        first = intro[0]
        self.model.meet(first["task"], first["public"], first.get("eval"))
        self.parties = {pid: expect(got["party"], Config).values for pid, got in intro.items()}
        (self.out / "parties.json").write_text(json.dumps({str(p): v for p, v in sorted(self.parties.items())},
                                                          indent=1, sort_keys=True) + "\n")

    def run(self, grid: Grid) -> None:
        fed = self.settings.federation
        done = finished_rounds(self.out)
        replies = load_replies(self.out, len(done) - 1) if done else {}
        self.meet(grid)
        need = fed.min_parties or fed.parties
        for rnd in range(len(done), fed.rounds + 1):
            t0, gate = time.perf_counter(), self.model.gate
            sent0, got0 = _bytes(self.model, sent=True), _bytes(self.model, sent=False)
            lm, ensemble, lm_eval, info = self.model.teach([replies[p] for p in sorted(replies)] if rnd else [])
            contents = {}
            for pid in self.nodes:
                named = {"round": Config(values={"round": rnd}), "lm": lm}
                if ensemble is not None:
                    named["ensemble"] = ensemble
                if pid == 0 and lm_eval is not None:
                    named["lm_eval"] = lm_eval
                contents[pid] = pack(gate, named, f"party-{pid}", DISTILL)
            answers = self._send(grid, DISTILL, contents, fed.timeout)
            row: dict[str, Any] = {"round": rnd, "parties": {}, "failed": {}, "model": info}
            new = {}
            for pid, ans in sorted(answers.items()):
                if isinstance(ans, str):
                    row["failed"][str(pid)] = ans
                    continue
                try:
                    got = unpack(gate, ans, f"party-{pid}", DISTILL + ".reply")
                    soft, quality = expect(got["soft"], SoftLabels), expect(got["quality"], Metrics)
                except SilobridgeError as e:
                    row["failed"][str(pid)] = str(e)
                    continue
                new[pid] = (soft, quality)
                row["parties"][str(pid)] = {"quality": quality.values,
                                            "evaluation": expect(got["evaluation"], Metrics).values}
            row["seconds"] = round(time.perf_counter() - t0, 3)
            row["bytes_model_to_parties"] = _bytes(self.model, sent=True) - sent0
            row["bytes_parties_to_model"] = _bytes(self.model, sent=False) - got0
            if len(new) < need:
                row["aborted"] = f"{len(new)} of {len(self.nodes)} parties answered, fewer than {need}"
                _append(self.out / ROUNDS.replace(".jsonl", ".failed.jsonl"), row)
                raise BoundaryError(row["aborted"] + f": {row['failed']}", where=f"round {rnd}",
                                    fix="see the failed parties' logs; rerun to resume from the last round")
            replies = new
            save_replies(self.out, rnd, replies)
            _append(self.out / ROUNDS, row)


def setup_timeout(fed) -> float:
    """How long the model party waits for the parties to connect and introduce themselves (or take the
    emulator): a party's first message loads its silo, so at least 10 minutes whatever federation.timeout."""
    return max(fed.timeout, 600.0)


def _short(reason: str) -> str:
    """The gist of a party's error (Flower wraps it in the engine's own traceback)."""
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(reason)).splitlines() if ln.strip()]
    said = [ln.split("Message:", 1)[1].strip() for ln in lines if "Message:" in ln]
    return (said or lines or ["no reason given"])[-1][:500]


def _bytes(model: FedModel, sent: bool) -> int:
    """Bytes the model party's ledger holds as sent by it (``sent``) or as received."""
    return sum(e.bytes for e in model.ledger.entries if (e.sender == "model") == sent)


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")


def finished_rounds(out: Path) -> list[dict]:
    p = Path(out) / ROUNDS
    return [json.loads(x) for x in p.read_text().splitlines() if x] if p.exists() else []


def save_replies(out: Path, rnd: int, replies: dict[int, tuple[SoftLabels, Metrics]]) -> None:
    """A round's replies, which the next round aggregates (written before the round is logged)."""
    path = Path(out) / "model" / f"replies-{rnd}.npz"
    arrays = {f"soft_{p}": np.asarray(s.values) for p, (s, _) in replies.items()}
    meta = json.dumps({str(p): {"quality": q.values, "labels": s.label_names} for p, (s, q) in replies.items()})
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, meta=np.array(meta), **arrays)
    os.replace(tmp, path)


def load_replies(out: Path, rnd: int) -> dict[int, tuple[SoftLabels, Metrics]]:
    with np.load(Path(out) / "model" / f"replies-{rnd}.npz") as z:
        meta = json.loads(str(z["meta"]))
        return {int(p): (SoftLabels(values=z[f"soft_{p}"], log=False, label_names=m["labels"]),
                         Metrics(values=m["quality"])) for p, m in meta.items()}


__all__ = ["client_app", "server_app", "FedServer", "ENV"]
