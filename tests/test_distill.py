"""A student distilled on enough public texts tracks its teacher: what the LM knows is not lost on the
way (calibration, confidence filter, soft-label weighting). The teacher stands in for the LM inside the
model party: a TF-IDF classifier fitted on the reviews' 4,000 training labels. Measured agreement with
the teacher as calibrated: 92 % uncalibrated, 88 % with mean calibration (the default), whose shift puts
more texts near the decision boundary."""
import dataclasses

import numpy as np
import pytest

from silobridge.bench.runner import load_splits
from silobridge.boundary import Ledger, SoftLabels, TextBatch
from silobridge.configs import apply_overrides, from_dict
from silobridge.data import load_reviews
from silobridge.models.sm import TfidfLR
from silobridge.parties import DataParty, ModelServer
from silobridge.settings import RunConfig, TaskKind
from silobridge.strategies import get
from silobridge.strategies.prompting import Calibration, calibrate, texts_of
from silobridge.transports import InProcessTransport


@pytest.mark.parametrize("calibration", ["none", "mean"])
def test_a_student_distilled_on_enough_public_texts_tracks_its_teacher(calibration, tiny_lm_dir, tmp_path):
    _, pool, _ = load_reviews()
    teacher = TfidfLR(2).fit(pool.texts, np.eye(2)[pool.labels])
    cfg = from_dict(RunConfig, apply_overrides({}, ["data.n_private=10", "data.n_val=20", "data.n_public=1000",
                                                    "data.n_test=300", "data.canaries=0", "lm.dtype=float32",
                                                    f"lm.path={tiny_lm_dir}"]))
    spec, splits = get("distill-public"), load_splits(cfg)
    hello = {"strategy": spec.name, "kind": "classify", "task": dataclasses.asdict(splits.task), "params": {},
             "seed": 0}
    server = ModelServer(cfg.lm, cfg.policy, root=tmp_path / "model")
    data = DataParty(splits, cfg.sm, cfg.policy, InProcessTransport(server), Ledger(), hello, declared=spec.exposes)
    data.model.call("score", TextBatch(data.public[:1]))  # opens the session
    session = server.sessions[data.model.session]

    def scored_by_teacher(carrier):  # the LM's 'score' operation, answered by the teacher
        p = np.clip(teacher.predict_proba(texts_of(carrier, "score")), 1e-6, 1)
        return SoftLabels(values=np.log(p).astype(np.float32), log=True, label_names=list(splits.task.label_names))
    session.ops["score"] = scored_by_teacher

    scfg = from_dict(spec.Config, {"calibration": calibration}, prefix="strategy.")  # otherwise the defaults
    side = spec.DataSide(scfg, TaskKind.CLASSIFY)
    side.fit(data)
    student = side.predict_proba(data, splits.test.texts).argmax(1)
    # what the data party is taught: the teacher's answers as it calibrates them (bias from the public pool)
    logp = lambda texts: np.log(np.clip(teacher.predict_proba(texts), 1e-6, 1))  # noqa: E731
    taught = calibrate(logp(splits.test.texts), Calibration(calibration), bias=logp(data.public).mean(0)).argmax(1)
    agreement = float((student == taught).mean())
    assert agreement >= 0.85, f"with 10 labels, the student agrees with its teacher on {agreement:.0%} of test texts"
