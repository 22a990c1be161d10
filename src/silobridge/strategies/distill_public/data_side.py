"""distill-public, data side: send the public pool, get the LM's label log-probs back, train the SM on
private hard labels plus the (calibrated, tempered, filtered) soft labels."""
from __future__ import annotations

import numpy as np

from silobridge.boundary import SoftLabels, TextBatch, expect
from silobridge.strategies.base import DataParty, DataSide
from silobridge.strategies.prompting import calibrate, request_demos


class DistillPublicData(DataSide):
    def fit(self, data: DataParty) -> None:
        c = self.config
        # 1. ask the LM for label log-probs on the public pool (public texts only cross)
        request_demos(data, c)
        reply = expect(data.model.call("score", TextBatch(data.public, purpose="public pool")), SoftLabels)
        # 2. calibrate locally (the LM's label bias measured on the pool itself: public texts), then
        #    soften/sharpen with the temperature
        p = calibrate(reply.values, c.calibration, data.label_prior(), bias=np.mean(reply.values, 0))
        soft = p ** (1.0 / c.temperature)
        soft /= soft.sum(1, keepdims=True)
        keep = p.max(1) >= c.min_confidence
        # 3. train the SM on private one-hot labels + the kept soft labels
        texts = data.private.texts + [t for t, k in zip(data.public, keep) if k]
        targets = np.vstack([data.one_hot(data.private.labels), soft[keep]])
        weights = np.concatenate([np.ones(len(data.private)), np.full(int(keep.sum()), c.alpha)])
        self.sm = data.new_sm().fit(texts, targets, sample_weight=weights, val=(data.val.texts, data.val.labels))
        self.report = {"public_used": int(keep.sum()),
                       "teacher_label_share": np.bincount(p.argmax(1), minlength=p.shape[1]).tolist()}

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        return self.sm.predict_proba(texts)
