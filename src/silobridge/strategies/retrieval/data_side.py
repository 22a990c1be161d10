"""retrieval, data side: index labelled records with the small encoder, answer a query locally when its
neighbours agree, else send it with its neighbours to the LM. Private neighbours cross only
PII-sanitised, each once, under the declared exposure 'retrieved_records'."""
from __future__ import annotations

from collections import Counter

import numpy as np

from silobridge.boundary import ContextQuery, SoftLabels, TextBatch, expect
from silobridge.errors import DataError
from silobridge.models.embed import Embedder, nearest
from silobridge.models.sm import minilm_path
from silobridge.strategies.base import DataParty, DataSide
from silobridge.strategies.prompting import Calibration, calibrate
from silobridge.strategies.retrieval.config import Source


def neighbour_vote(labels: np.ndarray, sims: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities from the neighbours' labels (n, m) weighted by their similarity and smoothed,
    and the share of each query's neighbours that hold its majority label."""
    n, m = labels.shape
    votes = np.zeros((n, n_classes))
    counts = np.zeros((n, n_classes))
    rows = np.repeat(np.arange(n), m)
    np.add.at(votes, (rows, labels.ravel()), np.clip(sims, 0, None).ravel() + 1e-6)
    np.add.at(counts, (rows, labels.ravel()), 1)
    p = votes + 1.0 / n_classes
    return p / p.sum(1, keepdims=True), counts.max(1) / m


class RetrievalData(DataSide):
    def fit(self, data: DataParty) -> None:
        c = self.config
        self.embedder = Embedder(c.retriever or minilm_path())
        n_cal = 0 if c.calibration is Calibration.NONE else c.calibration_texts
        if c.source is Source.PUBLIC:  # the calibration texts and the indexed pool are disjoint halves at most
            n_cal = min(n_cal, len(data.public) // 2)
        cal = data.public[:n_cal]
        if c.source is Source.PRIVATE:
            self.texts, self.labels = list(data.private.texts), np.asarray(data.private.labels)
        else:  # the public pool (after the calibration texts), labelled by an SM trained on the private labels
            sm = data.new_sm().fit(data.private.texts, data.one_hot(data.private.labels),
                                   val=(data.val.texts, data.val.labels))
            self.texts = list(data.public[len(cal):len(cal) + c.public_pool])
            self.labels = sm.predict_proba(self.texts).argmax(1) if self.texts else np.zeros(0, int)
        if not self.texts:
            raise DataError(f"nothing to retrieve from (source={c.source.value})",
                            where="data.n_public" if c.source is Source.PUBLIC else "data.n_private",
                            fix="give the data party labelled private records (source=private) or public texts "
                                "(source=public)")
        self.index = self.embedder.encode(self.texts, "retrieval index")
        self.sent: dict[int, int] = {}  # record -> its example number at the model party
        self.entities, self.changed = Counter(), 0
        self.report = {"source": c.source.value, "indexed": len(self.texts), "queries": 0, "answered_locally": 0,
                       "routed": 0}
        self.prior, self.bias = data.label_prior(), None
        if cal:  # the LM's label bias under this very prompting (public texts with their neighbours)
            nbr, _ = nearest(self.embedder.encode(cal, "retrieval calibration"), self.index, c.k)
            self.bias = self._lm_logp(data, cal, nbr, "calibration", None).mean(0)

    def _send_examples(self, data: DataParty, records: np.ndarray) -> None:
        new = [int(i) for i in dict.fromkeys(records.ravel().tolist()) if i not in self.sent]
        if not new:
            return
        texts, exposure = [self.texts[i] for i in new], None
        if self.config.source is Source.PRIVATE:
            from silobridge.privacy.sanitize import sanitise

            clean = sanitise(texts, self.config.pii_min_score)
            texts, exposure = clean.texts, "retrieved_records"
            self.entities.update(clean.entities)
            self.changed += clean.changed
            data.admit(texts, exposure)  # exactly these sanitised texts may cross
        data.model.call("examples", TextBatch(texts, labels=[int(self.labels[i]) for i in new],
                                              purpose="retrieved examples", exposure=exposure))
        for i in new:
            self.sent[i] = len(self.sent)

    def _lm_logp(self, data: DataParty, texts: list[str], nbr: np.ndarray, purpose: str,
                 exposure: str | None) -> np.ndarray:
        self._send_examples(data, nbr)
        ctx = np.vectorize(self.sent.__getitem__, otypes=[np.int64])(nbr) if nbr.size else nbr.astype(np.int64)
        reply = data.model.call("score_context", ContextQuery(texts, context=ctx, purpose=purpose, exposure=exposure))
        return np.asarray(expect(reply, SoftLabels).values)

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        c, k = self.config, len(data.task.label_names)
        nbr, sims = nearest(self.embedder.encode(texts, "retrieval queries"), self.index, c.k)
        p, agreement = neighbour_vote(self.labels[nbr], sims, k)
        routed = np.flatnonzero(agreement < c.local_agreement - 1e-9)
        if len(routed):  # only these queries (and their neighbours) leave the silo
            logp = self._lm_logp(data, [texts[i] for i in routed], nbr[routed], "inference", "inference_records")
            p[routed] = calibrate(logp, c.calibration, self.prior, self.bias)
        r = self.report
        r["queries"] += len(texts)
        r["routed"] += int(len(routed))
        r["answered_locally"] += len(texts) - int(len(routed))
        r |= {"lm_share": round(r["routed"] / max(1, r["queries"]), 4), "examples_sent": len(self.sent)}
        if c.source is Source.PRIVATE:
            r |= {"pii_entities_masked": sum(self.entities.values()),
                  "pii_by_type": dict(sorted(self.entities.items())),
                  "examples_changed_by_sanitisation": self.changed}
        return p
