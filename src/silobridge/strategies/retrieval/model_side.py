"""retrieval, model side: keep the labelled examples the data party sends, and score each query with
its own examples as earlier chat turns (the closest last, next to the query)."""
from __future__ import annotations

import numpy as np

from silobridge.boundary import Carrier, ContextQuery, Metrics, SoftLabels, TextBatch, expect
from silobridge.errors import BoundaryError
from silobridge.strategies.prompting import PromptModelSide, prompt_for, words_for


class RetrievalModel(PromptModelSide):
    batchable_ops = frozenset()

    def __init__(self, config, party):
        super().__init__(config, party)
        self.examples: list[tuple[str, int]] = []

    def ops(self) -> dict:
        return {"examples": self.add_examples, "score_context": self.score_context}

    def add_examples(self, carrier: Carrier) -> Carrier:
        batch = expect(carrier, TextBatch)
        k = len(self.party.task.label_names)
        labels = batch.labels or []
        if len(labels) != len(batch.items) or not all(isinstance(y, int) and 0 <= y < k for y in labels):
            raise BoundaryError(f"'examples' needs one label in [0, {k}) per text", where="model.examples",
                                fix="send labelled examples (TextBatch.labels)")
        texts = self.party.truncate(batch.items, self.config.demo_tokens)
        self.examples += list(zip(texts, labels))
        return Metrics(values={"examples": len(self.examples)})

    def score_context(self, carrier: Carrier) -> Carrier:
        q = expect(carrier, ContextQuery)
        ctx = np.asarray(q.context)
        if ctx.ndim != 2 or len(ctx) != len(q.items) or not np.issubdtype(ctx.dtype, np.integer) or \
                (ctx.size and (ctx.min() < -1 or ctx.max() >= len(self.examples))):
            raise BoundaryError(f"context of shape {ctx.shape} does not index the {len(self.examples)} examples "
                                f"for {len(q.items)} queries", where="model.score_context",
                                fix="send the examples first ('examples'), then one row of indices per query")
        cfg, party = self.config, self.party
        words = words_for(cfg, party.task)
        user = prompt_for(cfg, party.task, words)
        shots = [tuple((user.replace("{text}", self.examples[j][0]), words[self.examples[j][1]])
                       for j in row[::-1] if j >= 0) for row in ctx.tolist()]
        logp = party.score_with_context(q.items, user, words, shots, cfg.max_text_tokens, cfg.batch_size,
                                        f"LM scoring {q.purpose} with retrieved examples")
        return SoftLabels(values=logp, log=True, label_names=list(party.task.label_names))
