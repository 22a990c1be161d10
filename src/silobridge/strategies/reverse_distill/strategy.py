"""reverse-distill (SM -> LM, weak-to-strong / backward KD): the data party trains its SM on private
labels and sends the SM's soft labels on public texts; the model party LoRA-tunes its LM to match
them. The tuned LM then serves inference (a declared exposure, as for lm-zero-shot), so its
accuracy next to lm-zero-shot's is the LM before/after."""
from __future__ import annotations

import numpy as np

from silobridge.boundary import Metrics, TextBatch, expect
from silobridge.strategies.base import DataParty, register
from silobridge.strategies.lm_served import LMServed
from silobridge.strategies.lm_tuning import tune_op
from silobridge.strategies.reverse_distill.config import ReverseDistillConfig


@register
class ReverseDistill(LMServed):
    name = "reverse-distill"
    summary = "SM's soft labels on public texts LoRA-tune the LM (weak-to-strong); the LM serves inference"
    Config = ReverseDistillConfig

    def model_ops(self):
        return super().model_ops() | {"tune": tune_op(self.config, "reverse-distill")}

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
