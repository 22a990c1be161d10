"""reverse-distill, data side: train the SM on private labels, send its soft labels on public texts
for the model party to tune its LM on; the tuned LM then serves inference."""
from __future__ import annotations

import numpy as np

from silobridge.boundary import Metrics, TextBatch, expect
from silobridge.strategies.base import DataParty
from silobridge.strategies.lm_served import LMServedData


class ReverseDistillData(LMServedData):
    def fit(self, data: DataParty) -> None:
        c = self.config
        # 1. the SM learns from the private labels
        sm = data.new_sm().fit(data.private.texts, data.one_hot(data.private.labels),
                               val=(data.val.texts, data.val.labels))
        # 2. its soft labels on public texts go to the model party, which tunes its LM on them
        texts = data.public[:c.n_transfer]
        p = sm.predict_proba(texts) ** (1.0 / c.temperature)
        p /= p.sum(1, keepdims=True)
        reply = expect(data.model.call("tune", TextBatch(texts, purpose="SM soft labels", soft=p.astype(np.float32))),
                       Metrics)
        super().fit(data)
        self.report = {"lm_tuning": reply.values, "transferred": len(texts)}
