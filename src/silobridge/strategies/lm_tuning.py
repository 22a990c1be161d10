"""The model party's side of SM -> LM strategies: LoRA-tune the LM on labelled texts it receives
(soft labels from an SM, DP synthetic records, or — for the privacy-violating reference — private
records): a label-scoring loss, plus optionally next-token loss on the texts (domain adaptation);
or, for task 'domain-lm', next-token loss alone on unlabelled texts ('tune-lm')."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from silobridge.boundary import Carrier, Metrics, TextBatch, expect
from silobridge.configs import check, option
from silobridge.errors import BoundaryError
from silobridge.models.device import contiguous_head
from silobridge.models.lm import CausalLM
from silobridge.models.lora import LoraSpec, add_lora, train_causal, train_label_scoring
from silobridge.strategies.lm_served import LMServedModel
from silobridge.strategies.prompting import PROMPT_PARAMS, PromptConfig, prompt_for, words_for

TUNE_PARAMS = PROMPT_PARAMS + ("lora_r", "lora_lr", "lora_epochs", "domain_lm")


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


def merge(lm: CausalLM) -> None:
    """Fold the trained adapters into the LM's weights for serving: unmerged LoRA on every layer makes each
    forward ≈ 1.6x slower on a CPU (float32 adapters beside bfloat16 weights). In bfloat16 the merged
    weights are rounded to bfloat16, like the rest of the served LM."""
    lm.model = contiguous_head(lm.model.merge_and_unload())
    lm.model.eval()
    lm.mark_changed()


class TunedLMModel(LMServedModel):
    """Scores like any served LM, and LoRA-tunes it on what the data party sends: 'tune' (labelled
    texts: ``soft`` or ``labels``) and 'tune-lm' (texts, next-token loss; task 'domain-lm')."""

    def ops(self) -> dict:
        return super().ops() | {"tune": self.tune, "tune-lm": self.tune_lm}

    def tune(self, carrier: Carrier) -> Carrier:
        cfg, party = self.config, self.party
        batch = expect(carrier, TextBatch)
        k = len(party.task.label_names)
        if batch.soft is not None:
            targets = np.asarray(batch.soft, dtype=np.float32)
        elif batch.labels is not None:
            labels = np.asarray(batch.labels, dtype=np.int64)
            if labels.size and (labels.min() < 0 or labels.max() >= k):
                raise BoundaryError(f"labels must be class ids in [0, {k})", where="model.tune")
            targets = np.eye(k, dtype=np.float32)[labels]
        else:
            raise BoundaryError("'tune' needs labelled texts (labels or soft)", where="model.tune")
        if targets.shape != (len(batch.items), k) or not batch.items:
            raise BoundaryError(f"labels have shape {targets.shape}, expected ({len(batch.items)}, {k}) with at least "
                                "one text", where="model.tune")
        lm, words = party.lm, words_for(cfg, party.task)
        lm.model = add_lora(lm.model, None, cfg.lora)
        out = {}
        if cfg.domain_lm:
            lm_losses = train_causal(lm.model, lm, batch.items, cfg.lora, desc="LoRA next-token")
            out |= {"lm_loss_first": lm_losses[0], "lm_loss_last": lm_losses[-1]}
        losses = train_label_scoring(lm.model, lm, batch.items, targets, prompt_for(cfg, party.task, words), words,
                                     cfg.lora, cfg.max_text_tokens, desc="LoRA on labels")
        merge(lm)
        return Metrics(values=out | {"loss_first": losses[0], "loss_last": losses[-1], "texts": len(batch.items)})

    def tune_lm(self, carrier: Carrier) -> Carrier:
        batch = expect(carrier, TextBatch)
        if not batch.items:
            raise BoundaryError("'tune-lm' got no texts", where="model.tune-lm", fix="send at least one text")
        lm = self.party.lm
        lm.model = add_lora(lm.model, None, self.config.lora)
        losses = train_causal(lm.model, lm, batch.items, self.config.lora, desc="LoRA next-token")
        merge(lm)
        return Metrics(values={"lm_loss_first": losses[0], "lm_loss_last": losses[-1], "texts": len(batch.items)})
