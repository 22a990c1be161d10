"""lm-fusion's model side on Flower: one round. Meet the parties (each sends its validation texts when the
weighting asks for them, a declared exposure), have every LM score the public pool, each party's
validation texts and party 0's test texts, send each party its LMs' labels (``train.fuse``) and log what
comes back."""
from __future__ import annotations

import time
from typing import Any

from flwr.serverapp import Grid

from silobridge.boundary import Config, Metrics, TextBatch, expect
from silobridge.errors import BoundaryError, SilobridgeError
from silobridge.federation.apps import ROUNDS, FedServer, _append, _bytes, finished_rounds
from silobridge.federation.lm_fusion import FusionModel
from silobridge.federation.records import pack, unpack

FUSE = "train.fuse"


class FusionServer(FedServer):
    Model = FusionModel

    def run(self, grid: Grid) -> None:
        if finished_rounds(self.out):
            return  # one round, already logged
        fed = self.settings.federation
        self.meet(grid)
        t0, sent0, got0 = time.perf_counter(), _bytes(self.model, sent=True), _bytes(self.model, sent=False)
        public = self.model.score(self.model.public, "public pool")
        evals = self.model.score(self.model.eval_texts, "evaluation") if self.model.eval_texts else []
        contents = {}
        for pid in self.nodes:
            named: dict[str, Any] = {"round": Config(values={"round": 1})}
            named |= {f"public{i}": s for i, s in enumerate(public)}
            val = self.intro[pid].get("val")
            if val is not None:
                named |= {f"val{i}": s for i, s in enumerate(self.model.score(expect(val, TextBatch).items,
                                                                              "validation"))}
            if pid == 0:
                named |= {f"eval{i}": s for i, s in enumerate(evals)}
            contents[pid] = pack(self.model.gate, named, f"party-{pid}", FUSE)
        answers = self._send(grid, FUSE, contents, fed.timeout)
        row: dict[str, Any] = {"round": 1, "parties": {}, "failed": {}, "model": self.model.info()}
        for pid, ans in sorted(answers.items()):
            if isinstance(ans, str):
                row["failed"][str(pid)] = ans
                continue
            try:
                got = unpack(self.model.gate, ans, f"party-{pid}", FUSE + ".reply")
                row["parties"][str(pid)] = {"quality": expect(got["quality"], Metrics).values,
                                            "evaluation": expect(got["evaluation"], Metrics).values}
            except (SilobridgeError, KeyError) as e:
                row["failed"][str(pid)] = str(e)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        row["bytes_model_to_parties"] = _bytes(self.model, sent=True) - sent0
        row["bytes_parties_to_model"] = _bytes(self.model, sent=False) - got0
        need = fed.min_parties or fed.parties
        if len(row["parties"]) < need:
            row["aborted"] = f"{len(row['parties'])} of {len(self.nodes)} parties answered, fewer than {need}"
            _append(self.out / ROUNDS.replace(".jsonl", ".failed.jsonl"), row)
            raise BoundaryError(row["aborted"] + f": {row['failed']}", where="round 1",
                                fix="see the failed parties' logs; rerun to run the round again")
        _append(self.out / ROUNDS, row)
