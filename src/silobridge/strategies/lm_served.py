"""Strategies whose deployed predictor is the model party's LM: each inference input is sent to the
LM (the declared exposure 'inference_records'), scored by label words, and calibrated locally by the
data party. Subclasses add their own operations and ``fit``."""
from __future__ import annotations

import numpy as np

from silobridge.boundary import SoftLabels, TextBatch, expect
from silobridge.strategies.base import DataParty, DataSide
from silobridge.strategies.prompting import PromptModelSide, calibrate, label_bias, request_demos


class LMServedData(DataSide):
    def fit(self, data: DataParty) -> None:
        request_demos(data, self.config)  # few-shot only: public texts for the demonstrations
        self.prior = data.label_prior()  # for calibration; computed locally
        # the final LM's label bias, on public texts (task 'domain-lm' classifies nothing)
        self.bias = label_bias(data, self.config) if self.kind.labelled else None

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        # 1. ship the inference inputs to the LM (a declared exposure), 2. calibrate locally
        batch = TextBatch(texts, purpose="inference", exposure="inference_records")
        reply = expect(data.model.call("score", batch), SoftLabels)
        return calibrate(reply.values, self.config.calibration, self.prior, self.bias)


class LMServedModel(PromptModelSide):
    """The LM scores inference inputs; it is also the deployed causal LM for evaluation."""

    def language_models(self):
        # a black-box LM's perplexity is not measured (it would need its prompt log-probs over every text)
        return {} if self.party.black_box else {"deployed": self.party.lm}
