"""reverse-distill (SM -> LM, weak-to-strong / backward KD): the data party trains its SM on private
labels and sends the SM's soft labels on public texts; the model party LoRA-tunes its LM to match
them. The tuned LM then serves inference (a declared exposure, as for lm-zero-shot), so its
accuracy next to lm-zero-shot's is the LM before/after."""
from __future__ import annotations

import numpy as np

from silobridge.boundary import Carrier, Metrics, SoftLabels, TextBatch, expect
from silobridge.models.lora import LoraSpec, add_lora, train_label_scoring
from silobridge.strategies.base import DataParty, ModelParty, Strategy, register
from silobridge.strategies.prompting import calibrate, prompt_for, score_op, words_for
from silobridge.strategies.reverse_distill.config import ReverseDistillConfig


@register
class ReverseDistill(Strategy):
    name = "reverse-distill"
    summary = "SM's soft labels on public texts LoRA-tune the LM (weak-to-strong); the LM serves inference"
    Config = ReverseDistillConfig
    exposes = frozenset({"inference_records"})

    def model_ops(self):
        c = self.config
        spec = LoraSpec(r=c.lora_r, alpha=2 * c.lora_r, lr=c.lora_lr, epochs=c.lora_epochs)

        def tune(party: ModelParty, carrier: Carrier) -> Carrier:
            batch = expect(carrier, TextBatch)
            lm, words = party.lm, words_for(c, party.task)
            lm.model = add_lora(lm.model, None, spec)
            lm.mark_changed("reverse-distill")
            losses = train_label_scoring(lm.model, lm, batch.items, batch.soft, prompt_for(c, party.task, words),
                                         words, spec, c.max_text_tokens, desc="LoRA on SM labels")
            return Metrics(values={"loss_first": losses[0], "loss_last": losses[-1]})

        return {"tune": tune, "score": score_op(c)}

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
        self.prior = data.label_prior()
        self.report = {"lm_tuning": reply.values, "transferred": len(texts)}

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        batch = TextBatch(texts, purpose="inference", exposure="inference_records")
        reply = expect(data.model.call("score", batch), SoftLabels)
        return calibrate(reply.values, self.config.calibration, self.prior)

    def language_models(self, data, model):
        return {"deployed": model.lm}
