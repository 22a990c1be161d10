"""synthetic-rows, data side: ask for rows of each class, keep those that parse as one valid row of the
schema (known categories, readable numbers, enough fields; exact duplicates dropped), keep each class's
rows its SM (trained on the private rows) finds most typical, and train the SM on private plus kept rows."""
from __future__ import annotations

import math

import numpy as np

from silobridge.boundary import Config, TextBatch, expect
from silobridge.data.tabular import schema_of
from silobridge.strategies.base import DataParty, DataSide


class SyntheticRowsData(DataSide):
    def fit(self, data: DataParty) -> None:
        c, schema = self.config, schema_of(data.task)
        reply = expect(data.model.call("generate", Config(values={"per_class": c.per_class, "seed": data.seed})),
                       TextBatch)
        need = math.ceil(c.min_field_share * len(schema.columns))
        rows, ys, seen, dropped = [], [], set(), {"invalid": 0, "duplicate": 0, "agreement": 0}
        reasons: dict[str, int] = {}
        for text, y in zip(reply.items, reply.labels or []):
            row, why = schema.validate(text, min_fields=need)
            if row is None:
                dropped["invalid"] += 1
                key = why.split(":")[0]
                reasons[key] = reasons.get(key, 0) + 1
                continue
            canonical = schema.serialise(row)  # as the serialiser writes it: one form per row
            if canonical in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(canonical)
            rows.append(canonical)
            ys.append(int(y))
        private, onehot = data.private.texts, data.one_hot(data.private.labels)
        val = (data.val.texts, data.val.labels)
        ys_arr = np.array(ys, dtype=np.int64)
        keep = np.ones(len(rows), bool)
        if rows and c.agreement_keep < 1:  # the data party's SM judges the rows (nothing crosses)
            judge = data.new_sm().fit(private, onehot, val=val)
            score = judge.predict_proba(rows)[np.arange(len(rows)), ys_arr]
            keep[:] = False
            for y in np.unique(ys_arr):
                idx = np.flatnonzero(ys_arr == y)
                top = idx[np.argsort(-score[idx])[:max(1, int(round(c.agreement_keep * len(idx))))]]
                keep[top] = True
            dropped["agreement"] = int((~keep).sum())
        kept = [r for r, k in zip(rows, keep) if k]
        targets = np.vstack([onehot, data.one_hot(ys_arr[keep])]) if kept else onehot
        weights = np.concatenate([np.ones(len(private)), np.full(len(kept), c.alpha)])
        self.sm = data.new_sm().fit(private + kept, targets, sample_weight=weights, val=val)
        self.report = {"generated": len(reply.items), "valid": len(rows), "kept": len(kept), "dropped": dropped,
                       "invalid_reasons": reasons,
                       "kept_per_class": np.bincount(ys_arr[keep], minlength=len(data.task.label_names)).tolist(),
                       # no valid row: the SM is the private rows' alone (said here, never hidden)
                       "private_only": not kept}

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        return self.sm.predict_proba(texts)
