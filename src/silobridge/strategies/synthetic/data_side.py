"""synthetic, data side: ask for labelled synthetic texts, filter them (length, agreement with an SM
trained on the private labels, exact and near duplicates) and train the SM on private records plus
the kept rows. An optional feedback round sends differentially private class prototypes (top terms
of each private class, drawn from a public vocabulary), with their epsilon, to steer round 1."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re

import numpy as np

from silobridge.boundary import Config, PrivacySpend, TextBatch, expect
from silobridge.errors import BoundaryError, DataError
from silobridge.privacy import MECHANISM, class_term_counts, dp_class_prototypes, public_vocabulary, rank_terms
from silobridge.privacy.prototypes import Prototypes
from silobridge.strategies.base import DataParty, DataSide
from silobridge.strategies.synthetic.config import SyntheticConfig

log = logging.getLogger("silobridge.data")


# --- data-side filtering ----------------------------------------------------------------------------
def clean(text: str) -> str:
    """Drop a chatty lead-in line ('Here is a review:'), wrapping quotes and an unfinished last sentence."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    t = " ".join(" ".join(lines).split()).strip().strip("\"'“”").strip()
    if t and t[-1] not in ".!?":
        cut = max(t.rfind(". "), t.rfind("! "), t.rfind("? "))
        if cut > 0:
            t = t[:cut + 1]
    return t


def n_words(text: str) -> int:
    """Words of two or more letters (emoji runs and symbol soup do not count)."""
    return len(re.findall(r"[^\W\d_]{2,}", text))


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


class Filter:
    """The data party's filter; remembers what it kept so duplicates are caught across rounds."""

    def __init__(self, cfg: SyntheticConfig, sm, prior: np.ndarray | None = None):
        self.cfg, self.sm, self.prior = cfg, sm, prior
        self.seen: set[str] = set()
        self.kept_sets: list[set[str]] = []

    def __call__(self, texts: list[str], labels: list[int]) -> tuple[list[str], list[int], dict[str, int]]:
        c = self.cfg
        dropped = {"empty": 0, "length": 0, "agreement": 0, "duplicate": 0}
        rows = []
        for t, y in zip(texts, labels):
            t = clean(t)
            n = n_words(t)
            if not t:
                dropped["empty"] += 1
            elif not c.min_words <= n <= c.max_words:
                dropped["length"] += 1
            else:
                rows.append((t, int(y)))
        if rows and c.agreement_keep < 1:
            p = self.sm.predict_proba([t for t, _ in rows])
            if c.balanced_agreement and self.prior is not None:  # the SM's class-prior bias removed
                p = p / self.prior
                p = p / p.sum(1, keepdims=True)
            ys = np.array([y for _, y in rows])
            score = p[np.arange(len(rows)), ys]
            ok = np.zeros(len(rows), bool)
            for y in np.unique(ys):  # per class: its best-agreeing share, at least one row
                idx = np.flatnonzero(ys == y)
                ok[idx[np.argsort(-score[idx], kind="stable")[:max(1, math.ceil(c.agreement_keep * len(idx)))]]] = True
            dropped["agreement"] = int((~ok).sum())
            rows = [r for r, o in zip(rows, ok) if o]
        out_t, out_y = [], []
        for t, y in rows:
            norm = normalise(t)
            words = set(norm.split())
            if norm in self.seen or any(len(words & s) / len(words | s) >= c.max_similarity for s in self.kept_sets):
                dropped["duplicate"] += 1
                continue
            self.seen.add(norm)
            self.kept_sets.append(words)
            out_t.append(t)
            out_y.append(y)
        return out_t, out_y, dropped


def val_scores(sm, data: DataParty) -> dict[str, float] | None:
    """Validation accuracy and macro-F1 of an SM (data-side; the harness's test split is not used)."""
    from sklearn.metrics import f1_score

    if not len(data.val):
        return None
    pred = sm.predict_proba(data.val.texts).argmax(1)
    return {"accuracy": round(float((pred == data.val.labels).mean()), 4),
            "macro_f1": round(float(f1_score(data.val.labels, pred, average="macro", zero_division=0)), 4)}


class SyntheticData(DataSide):
    def _round(self, data: DataParty, flt: Filter, values: dict, privacy: PrivacySpend | None = None):
        reply = expect(data.model.call("generate", Config(values=values, privacy=privacy)), TextBatch)
        labels = reply.labels or []
        if len(labels) != len(reply.items):
            raise BoundaryError("synthetic texts came back without one label each", where="model.generate.reply",
                                fix="both parties must run the same strategy version")
        texts, ys, dropped = flt(reply.items, labels)
        row = {"round": values["round"], "generated": len(reply.items), "kept": len(texts), "dropped": dropped}
        return texts, ys, row, [clean(t) for t in reply.items], list(labels)

    def _release(self, data: DataParty, vocab: list[str]) -> tuple[Prototypes, bool]:
        """The DP prototype release for these private records and settings: made once and kept in the
        data silo's cache, so a rerun that changes only a filter sends the same terms (no new epsilon,
        and the model party's generation of round 1 is served from its cache too). Returns (release, reused?)."""
        c, priv = self.config, data.private
        key = [priv.texts, priv.labels.tolist(), vocab, c.prototype_epsilon, c.prototype_delta, c.top_terms,
               c.max_terms_per_record, c.noise_seed]
        path = data.cache_dir / f"prototypes-{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]}.json"
        try:
            return Prototypes(**json.loads(path.read_text())), True
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring a damaged cache entry %s (%s); releasing anew", path, exc)
        proto = dp_class_prototypes(priv.texts, priv.labels, len(data.task.label_names), vocab,
                                    epsilon=c.prototype_epsilon, delta=c.prototype_delta, top_k=c.top_terms,
                                    max_terms_per_record=c.max_terms_per_record, seed=c.noise_seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(proto)))
        os.replace(tmp, path)
        return proto, False

    def _fit_sm(self, data: DataParty, texts: list[str], labels: list[int]):
        c, priv = self.config, data.private
        x = priv.texts + texts
        y = np.vstack([data.one_hot(priv.labels), data.one_hot(np.asarray(labels, dtype=np.int64))])
        w = np.concatenate([np.ones(len(priv)), np.full(len(texts), c.synthetic_weight)])
        return data.new_sm().fit(x, y, sample_weight=w, val=(data.val.texts, data.val.labels))

    def fit(self, data: DataParty) -> None:
        c, priv = self.config, data.private
        k = len(data.task.label_names)
        # 1. an SM on the private labels alone: the agreement filter and the no-synthetic reference
        base = data.new_sm().fit(priv.texts, data.one_hot(priv.labels), val=(data.val.texts, data.val.labels))
        flt = Filter(c, base, data.label_prior())
        # 2. round 0: the LM writes from public task metadata only
        t0, y0, r0, raw_t, raw_y = self._round(data, flt, {"round": 0, "per_class": c.per_class, "seed": data.seed})
        rounds, texts, labels, proto_report = [r0], list(t0), list(y0), None
        if not texts:  # say so now, before spending privacy budget and a second round of generation
            raise DataError(f"no usable synthetic rows: all {r0['generated']} rows of round 0 were dropped by the "
                            f"filters ({', '.join(f'{n} {key}' for key, n in r0['dropped'].items())})",
                            where="strategy", fix="relax strategy.min_words / strategy.max_words or raise "
                                                  "strategy.per_class")
        # 3. round 1: DP class prototypes (public-vocabulary terms) steer a second round
        if c.feedback:
            vocab = public_vocabulary(data.public, c.vocabulary_size)
            if not vocab:
                raise DataError("the public pool yields no candidate prototype terms", where="data.public",
                                fix="raise data.n_public or set strategy.feedback=false")
            proto, reused = self._release(data, vocab)
            values = {"round": 1, "per_class": c.per_class, "seed": data.seed, "terms": proto.terms}
            t1, y1, r1, raw_t1, raw_y1 = self._round(data, flt, values,
                                                     PrivacySpend(proto.epsilon, proto.delta, MECHANISM))
            rounds.append(r1)
            texts, labels, raw_t, raw_y = texts + t1, labels + y1, raw_t + raw_t1, raw_y + raw_y1
            # evaluation figure (stays in the silo): how many released terms a noise-free release would share
            exact = rank_terms(class_term_counts(priv.texts, priv.labels, k, vocab, c.max_terms_per_record,
                                                 np.random.default_rng(data.seed)), vocab, c.top_terms)
            overlap = np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(proto.terms, exact)])
            proto_report = {"epsilon": proto.epsilon, "delta": proto.delta, "mechanism": proto.mechanism,
                            "sigma": round(proto.sigma, 4), "l2_sensitivity": round(proto.sensitivity, 4),
                            "vocabulary": proto.vocabulary_size, "terms": sum(len(t) for t in proto.terms),
                            "terms_per_class": proto.terms, "overlap_with_noise_free": round(float(overlap), 4),
                            "noise_seeded": c.noise_seed is not None, "release_reused": reused}
        # 4. the deployed SM: private one-hot labels + kept synthetic rows (weighted)
        self.sm = self._fit_sm(data, texts, labels)
        acc = {"private_only": val_scores(base, data), "with_synthetic": val_scores(self.sm, data)}
        if c.ablations:
            if c.feedback and t0:
                acc["round0_only"] = val_scores(self._fit_sm(data, t0, y0), data)
            usable = [(t, y) for t, y in zip(raw_t, raw_y) if t]
            if usable:
                acc["unfiltered"] = val_scores(self._fit_sm(data, [t for t, _ in usable], [y for _, y in usable]),
                                               data)
        examples = {name: [t for t, y in zip(texts, labels) if y == i][:2]
                    for i, name in enumerate(data.task.label_names)}
        self.report = {"generated": sum(r["generated"] for r in rounds), "kept": len(texts),
                       "kept_per_class": np.bincount(labels, minlength=k).tolist(),
                       "rounds": rounds, "prototype": proto_report, "val": acc, "examples": examples}

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        return self.sm.predict_proba(texts)
