"""fed-distill, the algorithm without the engine (FedMD / FedMKT style mutual transfer).

Round 0: each data party trains its SM on its own private split alone (the 'alone' reference) and sends
its SM's class probabilities on the public pool plus its validation macro-F1 (a number). Round r ≥ 1: the
model party aggregates the previous round's soft labels (weighted by that quality), LoRA-tunes its LM on the
aggregate (from the base weights each round, so a round needs nothing of the one before but the parties'
replies), and returns the LM's label log-probs on the public pool together with the aggregate; each party
calibrates the LM's scores itself, mixes them with the aggregate as configured (``Teacher``) and retrains its
SM on its private labels plus the teacher's soft labels on the public pool.

Nothing here knows Flower: :class:`FedParty` is one data silo, :class:`FedModel` the model party; the apps
(:mod:`silobridge.federation.apps`) move their carriers."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from silobridge.bench.metrics import utility
from silobridge.boundary import (Config, Ledger, MaxBytes, Metrics, NoModelWeights, Policy, SoftLabels, TextBatch,
                                 expect)
from silobridge.boundary.gate import Gate
from silobridge.data.task import LabelledTexts, Splits, TaskSpec
from silobridge.errors import BoundaryError, DataError
from silobridge.federation.config import FedSettings, Teacher
from silobridge.federation.partition import partition
from silobridge.parties import DataParty
from silobridge.parties.model_party import ModelParty
from silobridge.rng import PartyRNG
from silobridge.settings import SMKind, TaskKind
from silobridge.strategies.lm_tuning import TunedLMModel
from silobridge.strategies.prompting import calibrate
from silobridge.transports.base import Transport

EVAL_EXPOSURE = "evaluation_records"  # the evaluating party's test texts, sent for the LM's utility


# --- pure math ----------------------------------------------------------------------------------------
def party_weights(mode: str, qualities: list[float], sizes: list[int]) -> np.ndarray:
    """How much each party's soft labels count in the aggregate: its validation quality, its number of
    private records, or the same for all; normalised to sum 1."""
    if mode == "quality":
        w = np.maximum(np.asarray(qualities, dtype=np.float64), 1e-6)
    elif mode == "size":
        w = np.asarray(sizes, dtype=np.float64)
    else:
        w = np.ones(len(qualities))
    return w / w.sum()


def aggregate(probs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted mean of the parties' class distributions on the same texts (rows sum to 1)."""
    shapes = {p.shape for p in probs}
    if len(shapes) != 1:
        raise BoundaryError(f"the parties' soft labels have different shapes {sorted(shapes)}",
                            where="fed-distill.aggregate", fix="every party must label the same public pool")
    agg = np.tensordot(np.asarray(weights, dtype=np.float64), np.stack(probs).astype(np.float64), axes=1)
    return agg / agg.sum(1, keepdims=True)


def teacher_probs(mode: Teacher, lm: np.ndarray | None, ensemble: np.ndarray | None) -> np.ndarray | None:
    """What a party distils: the LM's calibrated probabilities, the parties' aggregate, or their mean."""
    if mode is Teacher.LM or ensemble is None:
        return lm
    if mode is Teacher.ENSEMBLE or lm is None:
        return ensemble
    return (lm + ensemble) / 2


def n_params(sm: Any) -> int:
    """Trainable numbers in an SM (what full-parameter FedAvg of it would move)."""
    if hasattr(sm, "clf"):
        return int(sm.clf.coef_.size + sm.clf.intercept_.size)
    return int(sum(p.numel() for p in sm.model.parameters()))


def holdout(labels: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``labels`` for (training, validation): ``frac`` of each class for validation, but never a
    class's last record (the SM must see every class the party holds); at least one validation record."""
    val: list[int] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        val.extend(idx[:min(int(len(idx) * frac), len(idx) - 1)].tolist())
    if not val:
        counts = np.bincount(labels)
        c = int(counts.argmax())
        if counts[c] < 2:
            raise DataError(f"a party holds {len(labels)} labelled records, too few to keep one for validation",
                            where="federation.parties", fix="raise data.n_private or use fewer parties")
        val = [int(np.flatnonzero(labels == c)[0])]
    val_idx = np.sort(np.array(val, dtype=np.int64))
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


def own_split(splits: Splits, settings: FedSettings, pid: int) -> Splits:
    """Party ``pid``'s splits from its own file (``federation.party_data[pid]``): its labelled records, the
    same share kept for validation as the task's; the public pool and the test set are the task's."""
    from silobridge.data.loaders import load_table

    d, path = settings.run.data, settings.federation.party_data[pid]
    task, own = load_table(path, d.text_col, d.label_col)
    names = splits.task.label_names
    unknown = sorted(set(task.label_names) - set(names))
    if unknown:
        raise DataError(f"labels {unknown[:5]} are not the task's ({', '.join(names)})", where=str(path),
                        fix="use the task's label names in the party's label column")
    index = {n: i for i, n in enumerate(names)}
    labels = np.array([index[task.label_names[y]] for y in own.labels], dtype=np.int64)
    records = LabelledTexts(own.texts, labels)
    frac = d.n_val / max(d.n_private + d.n_val, 1)
    tr, va = holdout(labels, frac, np.random.default_rng(settings.run.seed * 1000 + pid))
    return replace(splits, private=records.subset(tr), val=records.subset(va))


def party_splits(splits: Splits, settings: FedSettings) -> list[Splits]:
    """Every party's splits: the labelled records (private + validation) partitioned non-IID over the
    parties, each keeping the same share for validation; the public pool and the test set are shared.
    With ``federation.party_data`` each party's records come from its own file instead."""
    fed, seed = settings.federation, settings.run.seed
    if fed.party_data:
        return [own_split(splits, settings, pid) for pid in range(fed.parties)]
    pool = LabelledTexts(splits.private.texts + splits.val.texts,
                         np.concatenate([splits.private.labels, splits.val.labels]))
    k = len(splits.task.label_names)
    parts, _ = partition(pool.labels, k, fed.parties, alpha=fed.alpha, seed=seed, min_records=4,
                         quantity_alpha=fed.quantity_alpha)
    frac = len(splits.val) / max(len(pool), 1)
    rng = np.random.default_rng(seed + 7)
    out = []
    for part in parts:
        tr, va = holdout(pool.labels[part], frac, rng)
        out.append(replace(splits, private=pool.subset(part[tr]), val=pool.subset(part[va])))
    return out


def model_cache() -> Path:
    """The model party's cache across runs (used with ``lm.cache``), as its HTTP service keeps it."""
    from silobridge.home import home

    return home() / "model-party" / "cache"


# --- a data party ---------------------------------------------------------------------------------------
class Unlinked(Transport):
    """A federated data party has no direct link: everything it sends crosses as a Flower message."""

    kind = "flower"

    def _refuse(self, *_: Any) -> Any:
        raise BoundaryError("a federated data party has no direct link to the model party",
                            where="federation", fix="send carriers through the federation's messages")

    open = call = ledger = report = audit = _refuse


@dataclass
class RoundResult:
    soft: SoftLabels  # the SM's class probabilities on the public pool (to the model party)
    quality: Metrics  # validation macro-F1 and record counts (to the model party)
    evaluation: dict[str, Any]  # test utility of the SM (and of the LM, at the evaluating party)


class FedParty:
    """One data silo of the federation: its own partition, canaries, SM, egress policy and ledger."""

    exposures = frozenset({EVAL_EXPOSURE})  # what this party's strategy declares it sends by design

    def __init__(self, settings: FedSettings, pid: int, out: Path):
        from silobridge.bench.runner import load_splits

        fed, cfg = settings.federation, settings.run
        if not 0 <= pid < fed.parties:
            raise DataError(f"partition-id {pid} is outside 0..{fed.parties - 1}", where="node_config.partition-id",
                            fix=f"start exactly federation.parties = {fed.parties} nodes, ids 0..{fed.parties - 1}")
        self.settings, self.pid, self.dir = settings, pid, Path(out) / f"party-{pid}"
        splits = load_splits(cfg)
        self.splits = own_split(splits, settings, pid) if fed.party_data else party_splits(splits, settings)[pid]
        sm = cfg.sm if not fed.sms else replace(cfg.sm, kind=SMKind(fed.sms[pid % len(fed.sms)]))
        ledger = Ledger(self.dir / "ledger.jsonl", append=True)
        # each party plants its own canaries: data.canaries, at most a quarter of its records (small parties)
        self.canaries = min(cfg.data.canaries, len(self.splits.private) // 4)
        self.data = DataParty(self.splits, sm, cfg.policy, Unlinked(), ledger, {},
                              declared=self.exposures, canaries=self.canaries,
                              seed=cfg.seed * 1000 + pid)
        self.evaluates = pid == 0  # the party that measures the LM's utility (it sends the test texts)
        if self.evaluates:
            self.data.admit(self.splits.test.texts, EVAL_EXPOSURE)

    @property
    def gate(self) -> Gate:
        return self.data.gate

    def introduce(self) -> dict[str, Any]:
        """What the model party needs from this party: its partition id and, from the evaluating party,
        the public task metadata, the public pool and the test texts (a declared exposure)."""
        d = self.data
        info = {"partition": self.pid, "sm": d._sm_config.kind.value, "private": len(d.private), "val": len(d.val),
                "canaries": self.canaries}
        out: dict[str, Any] = {"party": Config(values=info)}
        if self.evaluates:
            out["task"] = Config(values={"task": asdict(d.task), "kind": TaskKind.CLASSIFY.value})
            out["public"] = TextBatch(d.public, purpose="public pool")
            out["eval"] = TextBatch(self.splits.test.texts, purpose="evaluation", exposure=EVAL_EXPOSURE)
        return out

    def train(self, rnd: int, lm: SoftLabels | None, ensemble: SoftLabels | None,
              lm_eval: SoftLabels | None) -> RoundResult:
        """One round: distil the teacher (if any) with the private labels into a fresh SM; report."""
        c, d = self.settings.strategy, self.data
        k = len(d.task.label_names)
        lm_p = None
        bias = None
        if lm is not None:
            bias = np.asarray(lm.values, dtype=np.float64).mean(0)  # the LM's label bias on public texts
            lm_p = calibrate(lm.values, c.calibration, d.label_prior(), bias)
        ens = None if ensemble is None else np.asarray(ensemble.values, dtype=np.float64)
        teacher = teacher_probs(c.teacher, lm_p, ens) if rnd > 0 else None  # round 0: each party alone
        with d.working():
            texts, targets = d.private.texts, d.one_hot(d.private.labels)
            weights = np.ones(len(texts))
            if teacher is not None and c.soft_weight > 0:
                if teacher.shape != (len(d.public), k):
                    raise BoundaryError(f"teacher labels of shape {teacher.shape}, expected ({len(d.public)}, {k})",
                                        where=f"party-{self.pid}.train", fix="both sides must use the same pool")
                texts = texts + d.public
                targets = np.vstack([targets, teacher])
                weights = np.concatenate([weights, np.full(len(d.public), c.soft_weight)])
            sm = d.new_sm().fit(texts, targets, sample_weight=weights, val=(d.val.texts, d.val.labels))
            pub = sm.predict_proba(d.public).astype(np.float32)
            val_u = utility(d.val.labels, sm.predict_proba(d.val.texts), k)
            test = self.splits.test
            evaluation: dict[str, Any] = {"sm": utility(test.labels, sm.predict_proba(test.texts), k)}
        if lm_eval is not None and self.evaluates:
            evaluation["lm"] = utility(test.labels, calibrate(lm_eval.values, c.calibration, d.label_prior(), bias), k)
        quality = Metrics(values={"macro_f1": val_u["macro_f1"], "accuracy": val_u["accuracy"],
                                  "private": float(len(d.private)), "round": float(rnd),
                                  "sm_params": float(n_params(sm))})
        return RoundResult(SoftLabels(values=pub, log=False, label_names=list(d.task.label_names)), quality,
                           evaluation)


# --- the model party ------------------------------------------------------------------------------------
class FedModel:
    """The model party: aggregates the parties' soft labels, LoRA-tunes its LM on the aggregate (starting
    from the base weights every round) and scores the public pool and the evaluation texts."""

    declared: frozenset[str] = frozenset()  # exposures of what the model party sends by design

    def __init__(self, settings: FedSettings, out: Path):
        self.settings = settings
        self.dir = Path(out) / "model"
        self.ledger = Ledger(self.dir / "ledger.jsonl", append=True)
        self.party: ModelParty | None = None
        # what leaves the model party: bounded in size, never the LM's weights (of whichever round's LM)
        weights = NoModelWeights(lambda: self.party.lm.parameters() if self.party and self.party.lm_loaded else ())
        self.gate = Gate("model", Policy([MaxBytes(settings.run.policy.max_bytes), weights]), self.ledger,
                         declared=self.declared)
        self.task: TaskSpec | None = None
        self.public: list[str] = []
        self.eval_texts: list[str] = []
        self.rng = PartyRNG(settings.run.seed)
        self._base: dict | None = None
        self._billed = (0, 0, 0)  # the LM's base weights, restored before each round's tuning

    def meet(self, task: Config, public: TextBatch, evaluation: TextBatch | None) -> None:
        self.task = TaskSpec(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in expect(task, Config).values["task"].items()})
        self.public = list(expect(public, TextBatch).items)
        self.eval_texts = [] if evaluation is None else list(expect(evaluation, TextBatch).items)
        self.fresh()

    def fresh(self) -> None:
        """The base LM again: a round's tuning starts from it. Loaded once; later rounds restore its base
        weights in place (reloading it every round kept each copy's memory in the process)."""
        if self.task is None:
            raise BoundaryError("the model party has not received the task yet", where="model.fresh",
                                fix="call meet() with the evaluating party's introduction first")
        if self.party is None:
            self.party = ModelParty(self.task, TaskKind.CLASSIFY, self.settings.run.lm, model_cache())
        lm = self.party.lm
        if self._base is None:
            self._base = {k: v.detach().clone() for k, v in lm.model.state_dict().items()}
        else:
            lm.model.load_state_dict(self._base, strict=True)
            lm.model.eval()
            lm.mark_changed()

    def teach(self, replies: list[tuple[SoftLabels, Metrics]]) -> tuple[SoftLabels | None, SoftLabels | None,
                                                                         SoftLabels | None, dict[str, Any]]:
        """From the parties' previous replies (empty at round 0): the LM's log-probs on the public pool and
        on the evaluation texts, the parties' aggregate, and what was done (weights, tuning losses)."""
        c = self.settings.strategy
        info: dict[str, Any] = {}
        ensemble = None
        self.fresh()
        side = TunedLMModel(c, self.party)
        with self.rng.scope():
            if replies:
                probs = [np.asarray(s.values, dtype=np.float64) for s, _ in replies]
                w = party_weights(c.weighting, [m.values["macro_f1"] for _, m in replies],
                                  [int(m.values["private"]) for _, m in replies])
                agg = aggregate(probs, w)
                ensemble = SoftLabels(values=agg.astype(np.float32), log=False, label_names=list(self.task.label_names))
                info["weights"] = [round(float(x), 4) for x in w]
                if c.tune_lm:
                    n = min(c.n_transfer, len(self.public))
                    batch = TextBatch(self.public[:n], purpose="aggregate soft labels", soft=agg[:n].astype(np.float32))
                    info["lm_tuning"] = expect(side.tune(batch), Metrics).values
            # the LM's scores on the public pool: the teacher, and its label bias for calibration
            lm = expect(side.score(TextBatch(self.public, purpose="public pool")), SoftLabels)
            lm_eval = (expect(side.score(TextBatch(self.eval_texts, purpose="evaluation")), SoftLabels)
                       if self.eval_texts else None)
        m, before = self.party.meter, self._billed
        self._billed = (m.calls, m.tokens_in, m.tokens_out)
        info["sizes"] = {"lm_params": int(sum(p.numel() for p in self.party.lm.model.parameters()))}
        info["lm_queries"] = {"calls": m.calls - before[0], "tokens_in": m.tokens_in - before[1],
                              "tokens_out": m.tokens_out - before[2]}  # this round's
        return lm, ensemble, lm_eval, info
