"""Calibration is not transductive: the LM's label bias comes from public texts, so a text's prediction
does not depend on which other texts are classified with it."""
import dataclasses

import numpy as np
import pytest

from silobridge.bench.runner import load_splits
from silobridge.boundary import Ledger
from silobridge.configs import from_dict
from silobridge.parties import DataParty, ModelServer
from silobridge.settings import TaskKind
from silobridge.strategies import get
from silobridge.strategies.prompting import Calibration, calibrate
from silobridge.transports import InProcessTransport


def fitted(cfg, tmp_path, strategy: str, calibration: str):
    spec = get(strategy)
    splits = load_splits(cfg)
    config = from_dict(spec.Config, {"calibration": calibration}, prefix="strategy.")
    hello = {"strategy": strategy, "kind": "classify", "task": dataclasses.asdict(splits.task),
             "params": {k: v for k, v in dataclasses.asdict(config).items() if k in spec.model_params}, "seed": 0}
    server = ModelServer(cfg.lm, cfg.policy, root=tmp_path / "model")
    data = DataParty(splits, cfg.sm, cfg.policy, InProcessTransport(server), Ledger(), hello,
                     declared=spec.exposes)
    side = spec.DataSide(config, TaskKind.CLASSIFY)
    side.fit(data)
    data.admit(splits.test.texts, "inference_records")
    return side, data, splits.test.texts


@pytest.mark.parametrize("calibration", ["mean", "prior"])
def test_a_texts_prediction_does_not_depend_on_its_batch(small_cfg, tmp_path, calibration):
    side, data, texts = fitted(small_cfg, tmp_path, "lm-zero-shot", calibration)
    together = side.predict_proba(data, texts[:12])
    alone = np.vstack([side.predict_proba(data, [t]) for t in texts[:4]])
    np.testing.assert_allclose(alone, together[:4], atol=1e-4)
    # nor on a batch dominated by one text (centring on the batch moved every answer towards the others)
    crowded = side.predict_proba(data, texts[:4] + [texts[4]] * 8)[:4]
    np.testing.assert_allclose(crowded, alone, atol=1e-4)


def test_mean_and_prior_calibration_need_a_bias_from_other_texts():
    logp = np.log(np.array([[0.9, 0.1], [0.8, 0.2]]))
    with pytest.raises(ValueError, match="bias"):
        calibrate(logp, Calibration.MEAN)
    p = calibrate(logp, Calibration.MEAN, bias=np.log([0.5, 0.5]))
    np.testing.assert_allclose(p, [[0.9, 0.1], [0.8, 0.2]])  # a neutral bias changes nothing
    np.testing.assert_allclose(calibrate(logp, Calibration.NONE), [[0.9, 0.1], [0.8, 0.2]])
