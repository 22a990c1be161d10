"""Base for strategies whose deployed predictor is the model party's LM: each inference input is
sent to the LM (the declared exposure 'inference_records'), scored by label words, and calibrated
locally by the data party. Subclasses add their own operations and ``fit``."""
from __future__ import annotations

from typing import Any

import numpy as np

from silobridge.boundary import SoftLabels, TextBatch, expect
from silobridge.strategies.base import DataParty, ModelParty, Strategy
from silobridge.strategies.prompting import calibrate, prompt_ops, request_demos


class LMServed(Strategy):
    exposes = frozenset({"inference_records"})

    def model_ops(self):
        return prompt_ops(self.config)

    def fit(self, data: DataParty) -> None:
        request_demos(data, self.config)  # few-shot only: public texts for the demonstrations
        self.prior = data.label_prior()  # for calibration; computed locally

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        # 1. ship the inference inputs to the LM (a declared exposure), 2. calibrate locally
        batch = TextBatch(texts, purpose="inference", exposure="inference_records")
        reply = expect(data.model.call("score", batch), SoftLabels)
        return calibrate(reply.values, self.config.calibration, self.prior)

    def language_models(self, data: DataParty, model: ModelParty) -> dict[str, Any]:
        return {"deployed": model.lm}
