"""The model party's side of SM -> LM strategies: LoRA-tune the LM on labelled texts it receives
(soft labels from an SM, DP synthetic records, or — for the privacy-violating reference — private
records): a label-scoring loss, plus optionally next-token loss on the texts (domain adaptation);
or, for task 'domain-lm', next-token loss alone on unlabelled texts (``lm_tune_op``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from silobridge.boundary import Carrier, Metrics, TextBatch, expect
from silobridge.configs import check, option
from silobridge.errors import BoundaryError
from silobridge.models.lora import LoraSpec, add_lora, train_causal, train_label_scoring
from silobridge.parties import ModelParty
from silobridge.strategies.prompting import PromptConfig, prompt_for, words_for


@dataclass
class LMTuneConfig(PromptConfig):
    lora_r: int = option(8, "LoRA rank of the LM's adapters")
    lora_lr: float = option(5e-4, "LoRA learning rate")
    lora_epochs: int = option(1, "passes over the received texts")
    domain_lm: bool = option(False, "also train next-token prediction on the received texts (domain adaptation)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lora_r >= 1, "strategy.lora_r", self.lora_r, ">= 1")
        check(self.lora_lr > 0, "strategy.lora_lr", self.lora_lr, "> 0")
        check(self.lora_epochs >= 1, "strategy.lora_epochs", self.lora_epochs, ">= 1")

    @property
    def lora(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=2 * self.lora_r, lr=self.lora_lr, epochs=self.lora_epochs)


def tune_op(cfg: LMTuneConfig, tag: str):
    """Model-party operation: labelled texts (``soft`` or ``labels``) -> the LM is LoRA-tuned on them."""

    def op(party: ModelParty, carrier: Carrier) -> Carrier:
        batch = expect(carrier, TextBatch)
        k = len(party.task.label_names)
        if batch.soft is not None:
            targets = np.asarray(batch.soft, dtype=np.float32)
        elif batch.labels is not None:
            targets = np.eye(k, dtype=np.float32)[np.asarray(batch.labels, dtype=np.int64)]
        else:
            raise BoundaryError("'tune' needs labelled texts (labels or soft)", where="model.tune")
        if targets.shape != (len(batch.items), k):
            raise BoundaryError(f"labels have shape {targets.shape}, expected ({len(batch.items)}, {k})",
                                where="model.tune")
        lm, words = party.lm, words_for(cfg, party.task)
        lm.model = add_lora(lm.model, None, cfg.lora)
        lm.mark_changed(tag)
        out = {}
        if cfg.domain_lm:
            lm_losses = train_causal(lm.model, lm, batch.items, cfg.lora, desc="LoRA next-token")
            out |= {"lm_loss_first": lm_losses[0], "lm_loss_last": lm_losses[-1]}
        losses = train_label_scoring(lm.model, lm, batch.items, targets, prompt_for(cfg, party.task, words), words,
                                     cfg.lora, cfg.max_text_tokens, desc="LoRA on labels")
        return Metrics(values=out | {"loss_first": losses[0], "loss_last": losses[-1], "texts": len(batch.items)})

    return op


def lm_tune_op(cfg: LMTuneConfig, tag: str):
    """Model-party operation (task 'domain-lm'): texts -> the LM is LoRA-tuned on next-token prediction."""

    def op(party: ModelParty, carrier: Carrier) -> Carrier:
        batch = expect(carrier, TextBatch)
        if not batch.items:
            raise BoundaryError("'tune-lm' got no texts", where="model.tune-lm", fix="send at least one text")
        lm = party.lm
        lm.model = add_lora(lm.model, None, cfg.lora)
        lm.mark_changed(tag)
        losses = train_causal(lm.model, lm, batch.items, cfg.lora, desc="LoRA next-token")
        return Metrics(values={"lm_loss_first": losses[0], "lm_loss_last": losses[-1], "texts": len(batch.items)})

    return op
