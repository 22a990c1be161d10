"""router, data side: train the SM on the private labels, set the confidence threshold on the validation
records, then at inference send only the low-confidence queries to the LM."""
from __future__ import annotations

import numpy as np

from silobridge.boundary import SoftLabels, TextBatch, expect
from silobridge.strategies.base import DataParty, DataSide
from silobridge.strategies.prompting import calibrate, label_bias
from silobridge.errors import DataError
from silobridge.strategies.router.curve import (cascade_curve, routellm_measures, threshold_for_calls,
                                                threshold_for_quality)


class RouterData(DataSide):
    def _lm_proba(self, data: DataParty, texts: list[str], exposure: str, purpose: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(data.task.label_names)))
        reply = expect(data.model.call("score", TextBatch(texts, purpose=purpose, exposure=exposure)), SoftLabels)
        return calibrate(reply.values, self.config.calibration, self.prior, self.bias)

    def fit(self, data: DataParty) -> None:
        c = self.config
        self.sm = data.new_sm().fit(data.private.texts, data.one_hot(data.private.labels),
                                    val=(data.val.texts, data.val.labels))
        self.prior, self.bias = data.label_prior(), label_bias(data, c)  # the LM's label bias: public texts
        conf = self.sm.predict_proba(data.val.texts).max(1) if len(data.val) else np.zeros(0)
        self.report = {"target": {}, "validation": {}}
        if c.max_lm_calls_per_100 is not None:  # a cost target: the SM's confidences alone decide
            self.threshold = threshold_for_calls(conf, c.max_lm_calls_per_100 / 100)
            self.report["target"] = {"max_lm_calls_per_100": c.max_lm_calls_per_100}
            return
        if not len(data.val):  # no validation records: nothing to set a quality target on
            raise DataError("router's quality target needs validation records", where="data.n_val",
                            fix="set data.n_val > 0, or set strategy.max_lm_calls_per_100 (a cost target)")
        # a quality target: the LM answers the validation records once (declared), the curve sets the threshold
        data.admit(data.val.texts, "validation_records")
        sm_pred = self.sm.predict_proba(data.val.texts).argmax(1)
        lm_pred = self._lm_proba(data, data.val.texts, "validation_records", "validation").argmax(1)
        curve = cascade_curve(conf, sm_pred, lm_pred, data.val.labels, c.metric)
        self.threshold, target = threshold_for_quality(curve, c.min_quality_share)
        self.report["target"] = {"min_quality_share": c.min_quality_share, "metric": c.metric,
                                 "quality": round(target, 4)}
        self.report["validation"] = {"curve": curve.as_rows(), **routellm_measures(curve),
                                     "n": len(data.val)}

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        p = self.sm.predict_proba(texts)
        routed = np.flatnonzero(p.max(1) < self.threshold)
        if len(routed):  # only these queries leave the silo
            p[routed] = self._lm_proba(data, [texts[i] for i in routed], "inference_records", "inference")
        self.report |= {"threshold": round(float(self.threshold), 6) if np.isfinite(self.threshold)
                        else str(self.threshold), "routed": int(len(routed)), "queries": len(texts),
                        "lm_share": round(len(routed) / max(1, len(texts)), 4)}
        return p

