"""LM label scoring shared by strategies: the prompt config, the model-party operation that scores
texts, and data-side calibration of the returned label log-probabilities."""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from silobridge.boundary import Carrier, SoftLabels, TextBatch
from silobridge.configs import check, option
from silobridge.data.task import TaskSpec
from silobridge.errors import BoundaryError
from silobridge.models.lm import score_labels
from silobridge.parties import ModelParty


class Calibration(enum.Enum):
    NONE = "none"  # use the LM's label probabilities as they are
    MEAN = "mean"  # remove the LM's label bias: centre each class's log-prob over the scored batch
    PRIOR = "prior"  # centre, then add the log class prior of the data party's private labels


@dataclass
class PromptConfig:
    template: str = option("", "user message sent to the LM with {text}, {labels}, {description} "
                                   "placeholders; empty = the task's template")
    label_words: tuple[str, ...] = option((), "answer word per class, in label order; empty = the task's "
                                              "verbalizer (else its label names)")
    calibration: Calibration = option(Calibration.PRIOR, "data-side calibration: none, mean or prior")
    max_text_tokens: int = option(96, "each text is cut to this many LM tokens (bounds LM cost)")
    batch_size: int = option(8, "LM batch size")

    def __post_init__(self) -> None:
        check(not self.template or "{text}" in self.template, "strategy.template", self.template,
              "empty or a string containing {text}")
        check(self.max_text_tokens >= 8, "strategy.max_text_tokens", self.max_text_tokens, ">= 8")
        check(self.batch_size >= 1, "strategy.batch_size", self.batch_size, ">= 1")


def words_for(cfg: PromptConfig, task: TaskSpec) -> list[str]:
    words = list(cfg.label_words or task.answer_words())
    check(len(words) == len(task.label_names), "strategy.label_words", cfg.label_words,
          f"one word per class ({len(task.label_names)})")
    return words


def prompt_for(cfg: PromptConfig, task: TaskSpec, words: list[str]) -> str:
    """The user message with {labels} and {description} filled in ({text} stays)."""
    return (cfg.template or task.template).replace("{labels}", " or ".join(words)).replace(
        "{description}", task.description)


def score_op(cfg: PromptConfig):
    """Model-party operation: TextBatch -> SoftLabels (label log-probs)."""

    def op(party: ModelParty, carrier: Carrier) -> Carrier:
        if not isinstance(carrier, TextBatch):
            raise BoundaryError(f"'score' expects a text carrier, got '{carrier.kind}'", where="model.score")
        words = words_for(cfg, party.task)
        user = prompt_for(cfg, party.task, words)
        logp = score_labels(party.lm, carrier.items, user, words, cfg.max_text_tokens, cfg.batch_size,
                            desc=f"LM scoring {carrier.purpose}", cache=party.cache)
        return SoftLabels(values=logp, log=True, label_names=list(party.task.label_names))

    return op


def calibrate(logp: np.ndarray, mode: Calibration, prior: np.ndarray | None = None) -> np.ndarray:
    """Turn returned label log-probs into probabilities (runs on the data party; sends nothing)."""
    z = np.asarray(logp, dtype=np.float64)
    if mode is not Calibration.NONE:
        z = z - z.mean(0, keepdims=True)
    if mode is Calibration.PRIOR and prior is not None:
        z = z + np.log(prior)
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)
