"""synthetic-rows, data side: optionally release DP summaries of each class's private rows to steer the
LM, ask for rows of each class, keep those that parse as one valid row of the schema (known categories,
readable numbers, enough fields; exact duplicates dropped), keep each class's rows its SM (trained on the
private rows) finds most typical, and train the SM on private plus kept rows."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os

import numpy as np

from silobridge.boundary import Config, PrivacySpend, TextBatch, expect
from silobridge.data.tabular import schema_of
from silobridge.privacy.row_summary import RowSummaries, class_cell_counts, dp_row_summaries, public_edges
from silobridge.strategies.base import DataParty, DataSide

log = logging.getLogger("silobridge.data")


class SyntheticRowsData(DataSide):
    def _release(self, data: DataParty, schema) -> tuple[RowSummaries, bool]:
        """The DP summaries of these private rows under these settings: released once and kept in the data
        silo's cache, so a rerun sends the same release (no new ε). Returns (release, reused?)."""
        c, priv = self.config, data.private
        key = [priv.texts, priv.labels.tolist(), data.public, schema.to_json(), c.summary_epsilon, c.summary_delta,
               c.summary_bins, c.noise_seed]
        path = data.cache_dir / f"row-summaries-{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]}.json"
        try:
            return RowSummaries(**json.loads(path.read_text())), True
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring a damaged cache entry %s (%s); releasing anew", path, exc)
        rel = dp_row_summaries(schema, priv.texts, priv.labels, len(data.task.label_names), data.public,
                               epsilon=c.summary_epsilon, delta=c.summary_delta, bins=c.summary_bins,
                               seed=c.noise_seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(rel)))
        os.replace(tmp, path)
        return rel, False

    def _summaries(self, data: DataParty, schema) -> tuple[dict, PrivacySpend, dict]:
        """What the request carries, its privacy spend, and the report (with an evaluation figure that
        stays in the silo: how far the released shares are from noise-free ones)."""
        c, priv = self.config, data.private
        rel, reused = self._release(data, schema)
        layout = public_edges(schema, data.public, c.summary_bins)
        exact = class_cell_counts(layout, priv.texts, priv.labels, len(data.task.label_names))

        def shares(counts: np.ndarray) -> np.ndarray:
            counts = np.clip(np.asarray(counts, float), 0, None)
            out, at = [], 0
            for cells in layout.cells.values():
                block = counts[:, at:at + len(cells)]
                out.append(block / np.maximum(block.sum(1, keepdims=True), 1e-12))
                at += len(cells)
            return np.hstack(out)

        error = float(np.abs(shares(rel.noisy_counts) - shares(exact)).sum(1).mean() / len(layout.cells))
        report = {"epsilon": rel.epsilon, "delta": rel.delta, "mechanism": rel.mechanism,
                  "sigma": round(rel.sigma, 4), "l2_sensitivity": round(rel.sensitivity, 4), "cells": rel.cells,
                  "bins": c.summary_bins, "per_class": rel.classes, "noise_seeded": c.noise_seed is not None,
                  "release_reused": reused,
                  # mean over classes and columns of sum |noisy share - exact share| (0: exact, 2: disjoint)
                  "share_error": round(error, 4)}
        return {"summaries": rel.classes}, PrivacySpend(rel.epsilon, rel.delta, rel.mechanism), report

    def fit(self, data: DataParty) -> None:
        c, schema = self.config, schema_of(data.task)
        values, privacy, summary_report = {"per_class": c.per_class, "seed": data.seed}, None, None
        if c.summaries:
            extra, privacy, summary_report = self._summaries(data, schema)
            values |= extra
        reply = expect(data.model.call("generate", Config(values=values, privacy=privacy)), TextBatch)
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
        self.report = {"writing": "guided" if "guided" in reply.purpose else "free", "generated": len(reply.items),
                       "valid": len(rows), "kept": len(kept), "dropped": dropped,
                       "invalid_reasons": reasons,
                       "kept_per_class": np.bincount(ys_arr[keep], minlength=len(data.task.label_names)).tolist(),
                       # no valid row: the SM is the private rows' alone (said here, never hidden)
                       "private_only": not kept, "summaries": summary_report}

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        return self.sm.predict_proba(texts)
