"""lm-finetune-private: the privacy-violating upper bound. The data party ships its private labelled
records (canaries included) to the model party, which LoRA-tunes its LM on them directly; the LM then
serves inference. Both exposures are declared, counted and reported."""
from __future__ import annotations

from dataclasses import dataclass

from silobridge.boundary import Metrics, TextBatch, expect
from silobridge.configs import option
from silobridge.strategies.base import DataParty, TaskKind, register
from silobridge.strategies.lm_served import LMServed
from silobridge.strategies.lm_tuning import LMTuneConfig, lm_tune_op, tune_op


@dataclass
class LMFinetunePrivateConfig(LMTuneConfig):
    domain_lm: bool = option(True, "also train next-token prediction on the private texts (domain adaptation)")


@register
class LMFinetunePrivate(LMServed):
    name = "lm-finetune-private"
    summary = "reference upper bound: private records are sent to the LM and tuned on directly (declared)"
    Config = LMFinetunePrivateConfig
    exposes = frozenset({"inference_records", "private_records"})
    kinds = frozenset(TaskKind)

    def model_ops(self):
        return super().model_ops() | {"tune": tune_op(self.config, "private-finetune"),
                                      "tune-lm": lm_tune_op(self.config, "private-finetune")}

    def fit(self, data: DataParty) -> None:
        if self.kind is TaskKind.DOMAIN_LM:  # the raw private texts, next-token loss only
            batch = TextBatch(data.private.texts, purpose="private texts", exposure="private_records")
            reply = expect(data.model.call("tune-lm", batch), Metrics)
        else:
            batch = TextBatch(data.private.texts, purpose="private records", labels=data.private.labels.tolist(),
                              exposure="private_records")
            reply = expect(data.model.call("tune", batch), Metrics)
        super().fit(data)
        self.report = {"lm_tuning": reply.values}
