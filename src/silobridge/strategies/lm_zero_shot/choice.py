"""lm-zero-shot with the prompt chosen on the validation records (``strategy.choose_prompt``).

The candidates are every (template, answer words) pair of the configured prompt and
``strategy.templates`` x ``strategy.label_word_sets``, and for each every assignment of its words to the
classes (an orientation: the LM's log-prob of word ``perm[c]`` becomes class c's score). An assignment
needs no new LM call (the prompt lists the same words), so each (template, words) pair costs one
scoring of the validation records and one of the calibration texts. The choice reads only the
validation records' labels (the data party holds no test label): its labels are the validation
split's, already in the run's label budget (``objectives.labels.validation``), and the report says how
many it used. A prompt whose label words read the wrong way round (credit-scoring's bad/good: AUC 0.344
as written) is then served the right way round, or not, as the validation records say."""
from __future__ import annotations

import itertools

import numpy as np

from silobridge.boundary import Carrier, Config, Metrics, SoftLabels, TextBatch, expect
from silobridge.errors import BoundaryError, ConfigError, DataError
from silobridge.strategies.base import DataParty
from silobridge.strategies.lm_served import LMServedData, LMServedModel
from silobridge.strategies.prompting import calibrate, label_bias, words_for

MAX_ORIENTED_CLASSES = 4  # 4! = 24 assignments; with more classes only the written one is tried


def candidates(cfg, task) -> list[tuple[str, tuple[str, ...]]]:
    """The (template, words) pairs to try, the configured prompt first."""
    k = len(task.label_names)
    word_sets = [tuple(words_for(cfg, task))]
    for s in cfg.label_word_sets:
        words = tuple(w.strip() for w in s.split("/"))
        if len(words) != k:
            raise ConfigError(f"label word set {s!r} has {len(words)} words for {k} classes",
                              where="strategy.label_word_sets",
                              fix=f"give one word per class, in label order ({', '.join(task.label_names)})")
        word_sets.append(words)
    templates = [cfg.template or task.template, *cfg.templates]
    out = []
    for t, w in itertools.product(templates, word_sets):
        if (t, w) not in out:
            out.append((t, w))
    return out


def orientations(k: int) -> list[tuple[int, ...]]:
    """Assignments of the k words to the classes, the written one (identity) first."""
    if k > MAX_ORIENTED_CLASSES:
        return [tuple(range(k))]
    return list(itertools.permutations(range(k)))


def val_metric(labels: np.ndarray, p: np.ndarray) -> tuple[str, float]:
    """AUC (two classes, both present), else macro-F1 of the argmax."""
    from sklearn.metrics import f1_score, roc_auc_score

    labels = np.asarray(labels)
    if p.shape[1] == 2 and len(np.unique(labels)) == 2:
        return "auc", float(roc_auc_score(labels == 1, p[:, 1]))
    return "macro_f1", float(f1_score(labels, p.argmax(1), average="macro", zero_division=0))


class LMZeroShotData(LMServedData):
    perm: tuple[int, ...] | None = None

    def fit(self, data: DataParty) -> None:
        c = self.config
        if not c.choose_prompt:
            return super().fit(data)
        if not self.kind.labelled:
            raise ConfigError(f"strategy.choose_prompt needs labels; task '{self.kind.value}' has none",
                              where="strategy.choose_prompt", fix="leave strategy.choose_prompt false")
        if not len(data.val):
            raise DataError("strategy.choose_prompt needs validation records to choose on", where="data.n_val",
                            fix="set data.n_val > 0, or leave strategy.choose_prompt false")
        self.prior = data.label_prior()
        k = len(data.task.label_names)
        data.admit(data.val.texts, "validation_records")  # declared: the LM reads the validation records
        tried, scored = [], []
        for i, (template, words) in enumerate(candidates(c, data.task)):
            expect(data.model.call("prompt", Config(values={"template": template, "label_words": list(words)})),
                   Metrics)
            bias = label_bias(data, c)
            batch = TextBatch(data.val.texts, purpose="validation", exposure="validation_records")
            logp = np.asarray(expect(data.model.call("score", batch), SoftLabels).values)
            scored.append((template, words, bias))
            for perm in orientations(k):
                idx = list(perm)
                p = calibrate(logp[:, idx], c.calibration, self.prior, None if bias is None else bias[idx])
                metric, value = val_metric(data.val.labels, p)
                tried.append({"candidate": i, "label_words": list(words), "orientation": [words[j] for j in perm],
                              metric: round(value, 4), "_perm": perm, "_value": value})
        best = max(tried, key=lambda r: (r["_value"], -tried.index(r)))  # ties: the earliest (as written first)
        template, words, bias = scored[best["candidate"]]
        if best["candidate"] != len(scored) - 1:  # the model side holds the last one tried: set the chosen one
            expect(data.model.call("prompt", Config(values={"template": template, "label_words": list(words)})),
                   Metrics)
        self.perm = best["_perm"]
        self.bias = None if bias is None else bias[list(self.perm)]
        metric = next(key for key in best if key in ("auc", "macro_f1"))
        for r in tried:
            del r["_perm"], r["_value"]
        self.report = {"prompt_choice": {
            "metric": metric, "labels_used": len(data.val), "split": "validation",
            "templates": list(dict.fromkeys(t for t, _, _ in scored)),
            "chosen": dict(best), "as_written": tried[0][metric],
            "tried": tried}}

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        if self.perm is None:
            return super().predict_proba(data, texts)
        batch = TextBatch(texts, purpose="inference", exposure="inference_records")
        reply = expect(data.model.call("score", batch), SoftLabels)
        return calibrate(np.asarray(reply.values)[:, list(self.perm)], self.config.calibration, self.prior,
                         self.bias)


class Prompt:
    """The model side's received parameters with the template and answer words the data party set last
    (every other option read from them as received)."""

    def __init__(self, base, template: str, label_words: tuple[str, ...]):
        self.base, self.template, self.label_words = base, template, label_words

    def __getattr__(self, name: str):
        return getattr(self.base, name)


class LMZeroShotModel(LMServedModel):
    """The served LM, plus 'prompt': the data party sets the template and answer words it will score with
    next (each checked as the configured ones are)."""

    def ops(self) -> dict:
        return super().ops() | {"prompt": self.prompt}

    def prompt(self, carrier: Carrier) -> Carrier:
        task = self.party.task
        if not isinstance(carrier, Config):
            raise BoundaryError(f"'prompt' expects a config carrier, got '{carrier.kind}'", where="model.prompt")
        fix = "send {'template': str with {text}, 'label_words': one non-empty word per class}"
        try:
            template, words = carrier.values["template"], carrier.values["label_words"]
        except KeyError:
            raise BoundaryError(f"bad prompt {carrier.values!r}", where="model.prompt", fix=fix) from None
        if (not isinstance(template, str) or "{text}" not in template or not isinstance(words, list)
                or len(words) != len(task.label_names) or not all(isinstance(w, str) and w.strip() for w in words)):
            raise BoundaryError(f"bad prompt {carrier.values!r}", where="model.prompt", fix=fix)
        base = self.config.base if isinstance(self.config, Prompt) else self.config
        self.config = Prompt(base, template, tuple(words))
        return Metrics(values={"label_words": float(len(words))})


__all__ = ["LMZeroShotData", "LMZeroShotModel", "MAX_ORIENTED_CLASSES", "candidates", "orientations", "val_metric"]
