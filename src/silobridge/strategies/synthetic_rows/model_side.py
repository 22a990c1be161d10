"""synthetic-rows, model side: the LM writes rows of each class from public task metadata (the
description, the answer words and the schema: column names, kinds, categories) and, when the data party
sends them, DP summaries of each class's private rows (privacy/row_summary.py), written into the prompt."""
from __future__ import annotations

import math
import re

from silobridge.boundary import Carrier, Config, TextBatch
from silobridge.data.table import CATEGORICAL, NUMERIC, TableSchema
from silobridge.errors import BoundaryError
from silobridge.models.guided import Field, write_records
from silobridge.models.lm import build_prompt
from silobridge.strategies.base import ModelSide

ASK = ("Write one new, realistic {what} of the class '{word}'. {hint}Write every field as one sentence, in this "
       "format: {form} Reply with the record only.")
HINT = "In such records (a noisy summary): {facts}. "
MAX_PER_CLASS = 10_000


def row_format(schema: TableSchema) -> str:
    """The fields as the serialiser writes them, each value a placeholder ('<number>', '<a, b or c>')."""
    parts = []
    for col in schema.columns:
        value = "<" + (", ".join(col.categories[:-1]) + " or " + col.categories[-1] if col.kind == CATEGORICAL
                       else "number") + ">"
        parts.append(schema.template.replace("{name}", col.name).replace("{value}", value))
    return " ".join(parts)


def _number(col, x: float) -> str:
    return f"{x:,.{col.decimals}f}"


def describe(schema: TableSchema, summary: dict) -> str:
    """One class's summaries (row_summary.summarise) as the prompt's facts, '' when there are none:
    "age: median 41, most between 30 and 52; home: rent 45%, own 35%, parents 20%; score missing in 15%"."""
    facts = []
    for col in schema.columns:
        s, text = summary.get(col.name) or {}, ""
        if col.kind == CATEGORICAL and s.get("shares"):
            ranked = sorted(s["shares"].items(), key=lambda kv: -kv[1])
            text = f"{col.name}: " + ", ".join(f"{cat} {round(100 * share)}%" for cat, share in ranked
                                               if share >= 0.005)
        elif "median" in s:
            text = (f"{col.name}: median {_number(col, s['median'])}, most between {_number(col, s['low'])} and "
                    f"{_number(col, s['high'])}")
        if s.get("missing", 0) >= 0.05:
            note = f"missing in {round(100 * s['missing'])}%"
            text = f"{text}, {note}" if text else f"{col.name} {note}"
        if text:
            facts.append(text)
    return "; ".join(facts)


def check_summaries(schema: TableSchema, n_classes: int, summaries) -> list[dict]:
    """The received summaries, checked (the model party trusts no carrier): one dict per class, known
    columns, finite numbers, known categories; a BoundaryError otherwise."""
    def bad(what: str) -> BoundaryError:
        return BoundaryError(f"bad row summaries: {what}", where="model.generate",
                             fix="send one summary per class, as privacy.row_summary.summarise writes them")

    if not isinstance(summaries, list) or len(summaries) != n_classes:
        raise bad(f"expected a list of {n_classes} (one per class)")
    cols = {c.name: c for c in schema.columns}
    for per in summaries:
        if not isinstance(per, dict) or not set(per) <= set(cols):
            raise bad(f"unknown column(s) {sorted(set(per) - set(cols)) if isinstance(per, dict) else per!r}")
        for name, s in per.items():
            if not isinstance(s, dict):
                raise bad(f"column '{name}': not a dict")
            numbers = [v for k, v in s.items() if k != "shares"] + list((s.get("shares") or {}).values())
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
                raise bad(f"column '{name}': values must be finite numbers")
            if "median" in s and not {"low", "high"} <= set(s):
                raise bad(f"column '{name}': a median without its low and high quartiles")
            if set(s.get("shares") or {}) - set(cols[name].categories):
                raise bad(f"column '{name}': unknown categories")
    return summaries


def requests(task, per_class: int, summaries: list[dict] | None = None) -> tuple[list[str], list[int]]:
    schema = TableSchema.from_json(task.table)
    what = re.sub(r"^(a|an|the)\s+", "", task.description.strip(), flags=re.IGNORECASE).split(" (")[0]
    users, labels = [], []
    for c, word in enumerate(task.answer_words()):
        facts = describe(schema, summaries[c]) if summaries else ""
        hint = HINT.format(facts=facts) if facts else ""
        users += [ASK.format(what=what, word=word, hint=hint, form=row_format(schema))] * per_class
        labels += [c] * per_class
    return users, labels


class SyntheticRowsModel(ModelSide):
    def ops(self) -> dict:
        return {"generate": self.generate}

    def generate(self, carrier: Carrier) -> Carrier:
        """Config{per_class, seed[, summaries]} -> TextBatch of rows the LM wrote, each with the class it was
        asked for (``summaries``: per class, the DP summaries the prompt then states)."""
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
        schema = TableSchema.from_json(party.task.table)
        summaries = carrier.values.get("summaries")
        if summaries is not None:
            summaries = check_summaries(schema, len(party.task.label_names), summaries)
        users, labels = requests(party.task, per_class, summaries)
        mode = self.writing()
        if mode == "guided":
            params = [cfg.temperature, cfg.top_p, cfg.batch_size, seed, cfg.max_digits]
            texts, _ = party.memo_texts("guided-rows", [users, *params], lambda: guided_rows(
                party, schema, users, *params))
        else:
            params = [cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.batch_size, seed]
            texts, _ = party.memo_texts("rows", [users, *params], lambda: party.generate_replies(
                users, *params, desc="LM writing rows"))
        return TextBatch(items=texts, labels=labels, purpose=f"synthetic rows, {mode} writing")

    def writing(self) -> str:
        """'guided' or 'free', as ``strategy.writing`` resolves for this LM (named in the reply's purpose)."""
        mode = self.config.writing
        if mode == "auto":
            mode = "free" if self.party.black_box else "guided"
        return mode


def fields_of(schema: TableSchema, max_digits: int) -> list[Field]:
    """The schema's columns as guided-writing fields, framed by its row template."""
    before, after = schema.template.split("{value}")
    return [Field(prefix=before.replace("{name}", col.name), suffix=after,
                  choices=col.categories if col.kind == CATEGORICAL else (), digits=max_digits,
                  decimals=col.decimals, signed=col.signed) for col in schema.columns]


def guided_rows(party, schema: TableSchema, users: list[str], temperature: float, top_p: float, batch_size: int,
                seed: int, max_digits: int) -> list[str]:
    """One row per request, written by the LM value by value in the schema's frame (models/guided.py)."""
    lm = party.lm
    values = write_records(lm, [build_prompt(lm, u) for u in users], fields_of(schema, max_digits), temperature,
                           top_p, batch_size, seed, desc="LM writing rows (guided)")
    rows = [{col.name: (float(v) if col.kind == NUMERIC else v) if v else None  # '' (unfinished): missing
             for col, v in zip(schema.columns, vals)} for vals in values]
    return [schema.serialise(r) for r in rows]
