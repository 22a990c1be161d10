"""LM label scoring shared by strategies: the prompt config, the model-party operation that scores
texts, and data-side calibration of the returned label log-probabilities."""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from silobridge.boundary import Carrier, Metrics, SoftLabels, TextBatch, expect
from silobridge.configs import check, option
from silobridge.data.task import TaskSpec
from silobridge.errors import BoundaryError
from silobridge.models.lm import score_labels
from silobridge.parties.model_party import ModelParty
from silobridge.strategies.base import ModelSide


class Calibration(enum.Enum):
    NONE = "none"  # use the LM's label probabilities as they are
    MEAN = "mean"  # remove the LM's label bias: its mean log-prob per class on public texts, not the test batch
    PRIOR = "prior"  # remove the bias, then add the log class prior of the data party's private labels


@dataclass
class PromptConfig:
    template: str = option("", "user message sent to the LM with {text}, {labels}, {description} "
                                   "placeholders; empty = the task's template")
    label_words: tuple[str, ...] = option((), "answer word per class, in label order; empty = the task's "
                                              "verbalizer (else its label names)")
    calibration: Calibration = option(Calibration.MEAN, "data-side calibration: none, mean or prior (mean: best "
                                                        "validation macro-F1 for lm-zero-shot and distill-public on "
                                                        "both bundled tasks, benchmarks/choose_defaults.py)")
    calibration_texts: int = option(200, "public texts the LM scores once, after any tuning, to estimate its label "
                                         "bias for mean/prior calibration (never the texts being classified)")
    n_shots: int = option(0, "in-context demonstrations per class, drawn from the public pool and labelled by "
                             "the LM's own most confident zero-shot answers (0 = zero-shot)")
    demo_pool: int = option(100, "public texts sent to choose the demonstrations from (with n_shots > 0)")
    max_text_tokens: int = option(96, "each text is cut to this many LM tokens (bounds LM cost)")
    batch_size: int = option(8, "LM batch size")

    def __post_init__(self) -> None:
        check(not self.template or "{text}" in self.template, "strategy.template", self.template,
              "empty or a string containing {text}")
        check(self.max_text_tokens >= 8, "strategy.max_text_tokens", self.max_text_tokens, ">= 8")
        check(self.batch_size >= 1, "strategy.batch_size", self.batch_size, ">= 1")
        check(0 <= self.n_shots <= 8, "strategy.n_shots", self.n_shots, "in [0, 8]")
        check(self.demo_pool >= 1, "strategy.demo_pool", self.demo_pool, ">= 1")
        check(self.calibration_texts >= 1, "strategy.calibration_texts", self.calibration_texts, ">= 1")


def words_for(cfg: PromptConfig, task: TaskSpec) -> list[str]:
    words = list(cfg.label_words or task.answer_words())
    check(len(words) == len(task.label_names), "strategy.label_words", cfg.label_words,
          f"one word per class ({len(task.label_names)})")
    return words


def prompt_for(cfg: PromptConfig, task: TaskSpec, words: list[str]) -> str:
    """The user message with {labels} and {description} filled in ({text} stays)."""
    return (cfg.template or task.template).replace("{labels}", " or ".join(words)).replace(
        "{description}", task.description)


def choose_demos(lm, pool: list[str], user: str, words: list[str], cfg: PromptConfig, cache: bool = False,
                 cache_dir=None) -> tuple[tuple[str, str], ...]:
    """Label ``pool`` zero-shot and keep the ``cfg.n_shots`` most confident texts per class as
    (question, answer) demonstrations, classes interleaved."""
    logp = score_labels(lm, pool, user, words, cfg.max_text_tokens, cfg.batch_size, "LM demos",
                        cache_dir=cache_dir if cache else None)
    tok, shots = lm.tokenizer, []
    for y in range(len(words)):
        margin = logp[:, y] - np.delete(logp, y, axis=1).max(1)
        for i in np.argsort(-margin)[:cfg.n_shots]:
            text = tok.decode(tok(pool[i], add_special_tokens=False)["input_ids"][:cfg.max_text_tokens])
            shots.append((user.replace("{text}", text), words[y]))
    order = np.random.default_rng(0).permutation(len(shots))
    return tuple(shots[i] for i in order)


PROMPT_PARAMS = ("template", "label_words", "n_shots", "max_text_tokens", "batch_size")  # what the LM side needs


def texts_of(carrier: Carrier, op: str) -> list[str]:
    if not isinstance(carrier, TextBatch):
        raise BoundaryError(f"'{op}' expects a text carrier, got '{carrier.kind}'", where=f"model.{op}")
    return carrier.items


class PromptModelSide(ModelSide):
    """The model party's side of label scoring: 'demos' (public texts -> the demonstrations it
    chooses and keeps) and 'score' (texts -> SoftLabels of label log-probs, the demonstrations as
    earlier chat turns)."""

    batchable_ops = frozenset({"score"})

    def __init__(self, config, party: ModelParty):
        super().__init__(config, party)
        self.shots: tuple[tuple[str, str], ...] = ()

    def ops(self) -> dict:
        return {"demos": self.demos, "score": self.score}

    def demos(self, carrier: Carrier) -> Carrier:
        cfg, party = self.config, self.party
        words = words_for(cfg, party.task)
        self.shots = choose_demos(party.lm, texts_of(carrier, "demos"), prompt_for(cfg, party.task, words), words,
                                  cfg, cache=party.cache, cache_dir=party.cache_dir)
        return Metrics(values={"demonstrations": len(self.shots)})

    def score(self, carrier: Carrier) -> Carrier:
        cfg, party = self.config, self.party
        words = words_for(cfg, party.task)
        logp = party.score_labels(texts_of(carrier, "score"), prompt_for(cfg, party.task, words), words,
                                  cfg.max_text_tokens, cfg.batch_size, f"LM scoring {carrier.purpose}", self.shots)
        return SoftLabels(values=logp, log=True, label_names=list(party.task.label_names))


def request_demos(data, cfg: PromptConfig) -> None:
    """Data side: when few-shot, send public texts for the model party to pick demonstrations from."""
    if cfg.n_shots:
        data.model.call("demos", TextBatch(data.public[:cfg.demo_pool], purpose="demonstration pool"))


def label_bias(data, cfg: PromptConfig) -> np.ndarray | None:
    """Data side: the served LM's mean label log-probs on ``cfg.calibration_texts`` public texts (what mean
    and prior calibration subtract), or None without calibration. Call it once the LM is final."""
    if cfg.calibration is Calibration.NONE:
        return None
    batch = TextBatch(data.public[:cfg.calibration_texts], purpose="calibration")
    return np.asarray(expect(data.model.call("score", batch), SoftLabels).values).mean(0)


def calibrate(logp: np.ndarray, mode: Calibration, prior: np.ndarray | None = None,
              bias: np.ndarray | None = None) -> np.ndarray:
    """Turn returned label log-probs into probabilities (runs on the data party; sends nothing). ``bias``:
    the LM's mean log-prob per class on other texts (public ones, :func:`label_bias`), required by mean
    and prior calibration, so that no statistic of the texts being classified shapes their predictions."""
    z = np.asarray(logp, dtype=np.float64)
    if mode is not Calibration.NONE:
        if bias is None:
            raise ValueError(f"'{mode.value}' calibration needs the LM's label bias measured on other texts")
        z = z - np.asarray(bias, dtype=np.float64)[None, :]
    if mode is Calibration.PRIOR and prior is not None:
        z = z + np.log(prior)
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)
