"""lm-finetune-private, data side: ship the private records (canaries included) under the declared
'private_records' exposure for the LM to be tuned on; the tuned LM serves inference."""
from __future__ import annotations

from silobridge.boundary import Metrics, TextBatch, expect
from silobridge.strategies.base import DataParty, TaskKind
from silobridge.strategies.lm_served import LMServedData


class LMFinetunePrivateData(LMServedData):
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
