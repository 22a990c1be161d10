"""synthetic-rows, model side: the LM writes rows of each class from public task metadata only (the
description, the answer words and the schema: column names, kinds, categories)."""
from __future__ import annotations

import re

from silobridge.boundary import Carrier, Config, TextBatch
from silobridge.data.table import CATEGORICAL, TableSchema
from silobridge.errors import BoundaryError
from silobridge.strategies.base import ModelSide

ASK = ("Write one new, realistic {what} of the class '{word}'. Write every field as one sentence, in this "
       "format: {form} Reply with the record only.")
MAX_PER_CLASS = 10_000


def row_format(schema: TableSchema) -> str:
    """The fields as the serialiser writes them, each value a placeholder ('<number>', '<a, b or c>')."""
    parts = []
    for col in schema.columns:
        value = "<" + (", ".join(col.categories[:-1]) + " or " + col.categories[-1] if col.kind == CATEGORICAL
                       else "number") + ">"
        parts.append(schema.template.replace("{name}", col.name).replace("{value}", value))
    return " ".join(parts)


def requests(task, per_class: int) -> tuple[list[str], list[int]]:
    schema = TableSchema.from_json(task.table)
    what = re.sub(r"^(a|an|the)\s+", "", task.description.strip(), flags=re.IGNORECASE).split(" (")[0]
    users, labels = [], []
    for c, word in enumerate(task.answer_words()):
        users += [ASK.format(what=what, word=word, form=row_format(schema))] * per_class
        labels += [c] * per_class
    return users, labels


class SyntheticRowsModel(ModelSide):
    def ops(self) -> dict:
        return {"generate": self.generate}

    def generate(self, carrier: Carrier) -> Carrier:
        """Config{per_class, seed} -> TextBatch of rows the LM wrote, each with the class it was asked for."""
        cfg, party = self.config, self.party
        if not isinstance(carrier, Config):
            raise BoundaryError(f"'generate' expects a config carrier, got '{carrier.kind}'", where="model.generate")
        try:
            per_class, seed = int(carrier.values["per_class"]), int(carrier.values.get("seed", 0))
        except (KeyError, TypeError, ValueError):
            raise BoundaryError(f"bad generation request {carrier.values!r}", where="model.generate",
                                fix="send {'per_class': int, 'seed': int}") from None
        if not 1 <= per_class <= MAX_PER_CLASS or not party.task.table:
            raise BoundaryError(f"per_class={per_class} out of range, or not a table task", where="model.generate",
                                fix=f"ask for 1..{MAX_PER_CLASS} rows per class of a task 'tabular'")
        users, labels = requests(party.task, per_class)
        params = [cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.batch_size, seed]
        texts, _ = party.memo_texts("rows", [users, *params], lambda: party.generate_replies(
            users, *params, desc="LM writing rows"))
        return TextBatch(items=texts, labels=labels, purpose="synthetic rows")
