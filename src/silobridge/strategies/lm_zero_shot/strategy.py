"""lm-zero-shot: a privacy-violating reference point. Every inference input is shipped to the LM,
which scores the label words; the exposure is declared and counted, never hidden."""
from __future__ import annotations

import numpy as np

from silobridge.boundary import SoftLabels, TextBatch, expect
from silobridge.strategies.base import DataParty, Strategy, register
from silobridge.strategies.lm_zero_shot.config import LMZeroShotConfig
from silobridge.strategies.prompting import calibrate, score_op


@register
class LMZeroShot(Strategy):
    name = "lm-zero-shot"
    summary = "LM labels each test text by label-word likelihood (ships test records to the LM: declared)"
    Config = LMZeroShotConfig
    exposes = frozenset({"inference_records"})

    def model_ops(self):
        return {"score": score_op(self.config)}

    def fit(self, data: DataParty) -> None:
        self.prior = data.label_prior()  # used by calibration; computed locally

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        # 1. ship the inference inputs to the LM (a declared exposure), 2. calibrate locally
        batch = TextBatch(texts, purpose="inference", exposure="inference_records")
        reply = expect(data.model.call("score", batch), SoftLabels)
        return calibrate(reply.values, self.config.calibration, self.prior)

    def language_models(self, data, model):
        return {"deployed": model.lm}  # the LM alone: the reference for perplexity
