"""Tables as text (task 'tabular'). A :class:`TableSchema` names the feature columns, numeric or
categorical (with their categories); it is inferred from a DataFrame with clear errors for columns a
model cannot use (all missing, a single value, free text). Its TabLLM-style serialiser writes a row as
"age is 45. income is 30,000. home is rent." (the field template is configurable), so a record of a
tabular task IS its serialised text: every strategy, the boundary and the ledger stay text-based. The
parser reads rows back: leniently for the data party's SMs (an unreadable field is missing), strictly to
validate rows an LM wrote (:meth:`TableSchema.validate`). Pure: no model, no I/O."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from silobridge.errors import DataError

DEFAULT_TEMPLATE = "{name} is {value}."  # TabLLM's "text template" serialisation
NUMERIC, CATEGORICAL = "numeric", "categorical"
MAX_CATEGORIES = 50  # a string column with more distinct values than this (and mostly unique) is free text
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*)?\.?\d+(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # NUMERIC or CATEGORICAL
    categories: tuple[str, ...] = ()  # categorical: the values a row may hold
    decimals: int = 0  # numeric: decimals written (0: an integer column)
    signed: bool = False  # numeric: negative values occur


def check_template(template: str, where: str = "data.row_template") -> None:
    """A field template holds {name} then {value}, once each, and no other placeholder."""
    ok = (template.count("{name}") == 1 and template.count("{value}") == 1
          and template.index("{name}") < template.index("{value}")
          and not re.search(r"\{(?!name\}|value\})", template))
    between = template.split("{name}")[1].split("{value}")[0] if ok else ""
    if not ok or not between.strip():
        raise DataError(f"row template {template!r} cannot be read back", where=where,
                        fix="write one field as text with {name} before {value} and words between them, "
                            "e.g. '{name} is {value}.' (the default)")


@dataclass(frozen=True)
class TableSchema:
    """The feature columns of a table and how a row is written as text. Public task metadata: names,
    kinds and categories, no record (it travels in the task spec)."""

    columns: tuple[Column, ...]
    template: str = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        check_template(self.template)
        if not self.columns:
            raise DataError("the table has no feature column", where="data.feature_cols",
                            fix="name at least one feature column (or leave data.feature_cols empty)")
        lower = [c.name.lower() for c in self.columns]
        dup = sorted({n for n in lower if lower.count(n) > 1})
        if dup:
            raise DataError(f"feature columns {dup} differ only in case: a serialised row cannot tell them apart",
                            where="data.feature_cols", fix="rename one of each pair, or leave one out")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    # --- writing ---------------------------------------------------------------------------------
    def format_value(self, col: Column, value: Any) -> str | None:
        """A value as written in a row (None: missing, the field is left out, as TabLLM does)."""
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            return None
        if col.kind == NUMERIC:
            v = float(value)
            if not math.isfinite(v):
                return None
            return f"{v:,.{col.decimals}f}"
        return str(value)

    def serialise(self, row: Mapping[str, Any]) -> str:
        """One row (a mapping column -> value) as text, fields in schema order, missing ones left out."""
        parts = []
        for col in self.columns:
            text = self.format_value(col, row.get(col.name))
            if text is not None:
                parts.append(self.template.replace("{name}", col.name).replace("{value}", text))
        return " ".join(parts)

    def serialise_frame(self, df: pd.DataFrame) -> list[str]:
        cols = [c for c in self.names if c in df.columns]
        return [self.serialise(dict(zip(cols, values))) for values in df[cols].itertuples(index=False)]

    # --- reading ---------------------------------------------------------------------------------
    @cached_property
    def _field(self) -> re.Pattern:
        prefix, rest = self.template.split("{name}")
        middle, suffix = rest.split("{value}")
        alt = "|".join(re.escape(n) for n in sorted(self.names, key=len, reverse=True))
        start = rf"(?<!\w){re.escape(prefix.lstrip())}(?P<name>{alt}){re.escape(middle)}"
        if suffix.strip():  # the value ends at the suffix followed by a space (or the end)
            end = rf"{re.escape(suffix.rstrip())}(?=\s|$)"
        else:  # no suffix: the value runs to the next field or the end
            end = rf"(?=\s+{re.escape(prefix.lstrip())}(?:{alt}){re.escape(middle)}|\s*$)"
        return re.compile(rf"{start}(?P<value>.+?){end}", re.IGNORECASE)

    @cached_property
    def _by_lower(self) -> dict[str, Column]:
        return {c.name.lower(): c for c in self.columns}

    def fields(self, text: str) -> list[list[tuple[Column, str]]]:
        """The rows written in ``text``, each as its (column, raw value) fields in order; a column seen
        again starts a new row. Sentences that are no field (a note, a canary) are skipped."""
        rows: list[list[tuple[Column, str]]] = []
        seen: set[str] = set()
        for m in self._field.finditer(text):
            col = self._by_lower[m.group("name").lower()]
            if not rows or col.name in seen:
                rows.append([])
                seen = set()
            seen.add(col.name)
            rows[-1].append((col, m.group("value").strip()))
        return rows

    def read_value(self, col: Column, raw: str) -> float | str | None:
        """A raw field value as the column's type; None when it is not one (a word in a numeric column,
        an unknown category)."""
        raw = raw.strip().strip("\"'")
        if col.kind == NUMERIC:
            s = raw.lstrip("$€£").rstrip("%").replace(" ", "")
            if not _NUMBER.fullmatch(s):
                return None
            try:
                v = float(s.replace(",", ""))
            except ValueError:
                return None
            return v if math.isfinite(v) else None
        return self._categories[col.name].get(raw.lower().rstrip(".,;"))

    @cached_property
    def _categories(self) -> dict[str, dict[str, str]]:
        return {c.name: {v.lower(): v for v in c.categories} for c in self.columns if c.kind == CATEGORICAL}

    def parse(self, text: str) -> dict[str, float | str | None]:
        """The first row in ``text``, leniently: every column, None where missing or unreadable."""
        rows = self.fields(text)
        out: dict[str, float | str | None] = dict.fromkeys(self.names)
        for col, raw in rows[0] if rows else []:
            out[col.name] = self.read_value(col, raw)
        return out

    def validate(self, text: str, min_fields: int | None = None) -> tuple[dict[str, Any] | None, str]:
        """Strictly: the row written in ``text`` and '' if it is one valid row (each field readable,
        categories known, at least ``min_fields`` fields, default all), else (None, why not)."""
        rows = self.fields(text)
        if len(rows) != 1:
            return None, "no field" if not rows else f"{len(rows)} rows"
        out: dict[str, Any] = dict.fromkeys(self.names)
        for col, raw in rows[0]:
            value = self.read_value(col, raw)
            if value is None:
                return None, f"field '{col.name}': cannot read {raw[:40]!r} as {col.kind}"
            out[col.name] = value
        need = len(self.columns) if min_fields is None else min_fields
        present = sum(v is not None for v in out.values())
        if present < need:
            return None, f"{present} of {len(self.columns)} fields (needs {need})"
        return out, ""

    def row_keys(self, text: str) -> list[tuple[str, ...]]:
        """Every row in ``text`` as a canonical tuple, one entry per column (values as the serialiser
        writes them, case-folded; '' = missing): equal tuples are the same record."""
        keys = []
        for fields in self.fields(text):
            values = dict.fromkeys(self.names, "")
            for col, raw in fields:
                v = self.read_value(col, raw)
                values[col.name] = "" if v is None else (self.format_value(col, v) or "").lower()
            keys.append(tuple(values.values()))
        return keys

    def frame(self, texts: list[str]) -> pd.DataFrame:
        """Texts back to a feature table: numeric columns as floats (NaN missing), categorical as strings
        (None missing)."""
        df = pd.DataFrame([self.parse(t) for t in texts], columns=self.names)
        for col in self.columns:
            if col.kind == NUMERIC:
                df[col.name] = pd.to_numeric(df[col.name], errors="coerce").astype(float)
        return df

    # --- wire ------------------------------------------------------------------------------------
    def to_json(self) -> str:
        # 'signed' only when true, so a schema without negatives keeps its earlier wire text (and cache keys)
        cols = [{k: v for k, v in asdict(c).items() if k != "signed" or v} for c in self.columns]
        return json.dumps({"template": self.template, "columns": cols}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TableSchema":
        try:
            d = json.loads(text)
            cols = tuple(Column(c["name"], c["kind"], tuple(c.get("categories", ())), int(c.get("decimals", 0)),
                                bool(c.get("signed", False))) for c in d["columns"])
            return cls(cols, d.get("template", DEFAULT_TEMPLATE))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed table schema: {exc}", where="task.table",
                            fix="build the schema with infer_schema (TableSchema.to_json)") from None


# --- inference from a DataFrame --------------------------------------------------------------------------
@dataclass
class Inferred:
    schema: TableSchema
    frame: pd.DataFrame  # the features, typed as the schema says (rows kept in order)
    dropped: dict[str, str] = field(default_factory=dict)


def _as_numbers(s: pd.Series) -> pd.Series | None:
    """A string column that holds numbers (thousands separators allowed), or None."""
    if pd.api.types.is_bool_dtype(s):
        return None
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(float)
    present = s.dropna().astype(str).str.strip().str.replace(",", "", regex=False)
    num = pd.to_numeric(present, errors="coerce")
    if len(present) and num.notna().mean() >= 0.95:
        return pd.to_numeric(s.astype(str).str.replace(",", "", regex=False), errors="coerce").where(s.notna())
    return None


def _decimals(v: pd.Series) -> int:
    v = v.dropna()
    if (v == v.round()).all():
        return 0
    return 2 if v.abs().median() >= 1 else 4


def infer_column(name: str, s: pd.Series, source: str) -> tuple[Column, pd.Series]:
    """The column's kind (and categories or decimals), or a DataError saying why a model cannot use it."""
    where, fix_drop = f"{source}: column '{name}'", "leave it out with --feature-cols (list the columns to use)"
    s = s.replace(r"^\s*$", np.nan, regex=True) if s.dtype == object else s
    present = s.dropna()
    if present.empty:
        raise DataError("every value is missing", where=where, fix=fix_drop)
    if present.astype(str).nunique() < 2:
        raise DataError(f"a single value ({present.iloc[0]!r}) in every row: it cannot tell records apart",
                        where=where, fix=fix_drop)
    num = _as_numbers(s)
    if num is not None:
        if not np.isfinite(num.dropna()).all():
            raise DataError("infinite values", where=where, fix="replace them, or leave the column out")
        return Column(name, NUMERIC, decimals=_decimals(num), signed=bool((num.dropna() < 0).any())), num
    text = present.astype(str)
    n_unique = text.nunique()
    long = text.str.len().median() > 40 or text.str.contains("\n").any()
    if long or (n_unique > MAX_CATEGORIES and n_unique > 0.5 * len(text)):
        raise DataError(f"free text ({n_unique:,} distinct values in {len(text):,} rows): not a feature of a table",
                        where=where, fix=f"{fix_drop}; a text column belongs to task classify (--text-col)")
    cats = tuple(sorted(text.unique()))
    lowered = [c.lower() for c in cats]
    if len(set(lowered)) < len(lowered):
        raise DataError("categories that differ only in case", where=where, fix="write each category one way")
    return Column(name, CATEGORICAL, categories=cats), s.where(s.isna(), s.astype(str))


def infer_schema(df: pd.DataFrame, label_col: str, feature_cols: tuple[str, ...] | list[str] = (),
                 template: str = DEFAULT_TEMPLATE, source: str = "data") -> Inferred:
    """The schema of ``df``'s features: ``feature_cols``, or every column but ``label_col``. Unusable
    columns are an error naming the column and the fix; the schema must read back what it writes."""
    check_template(template)
    cols = [str(c) for c in df.columns]
    missing = [c for c in [label_col, *feature_cols] if c not in cols]
    if missing:
        raise DataError(f"column(s) {missing} not in the table (columns: {', '.join(cols)})", where=source,
                        fix="pass the right names with --label-col / --feature-cols")
    if label_col in feature_cols:
        raise DataError(f"the label column '{label_col}' is also a feature", where="--feature-cols",
                        fix="leave the label column out of --feature-cols")
    names = list(feature_cols) or [c for c in cols if c != label_col]
    columns, typed = [], {}
    for name in names:
        col, values = infer_column(name, df[name], source)
        columns.append(col)
        typed[name] = values
    schema = TableSchema(tuple(columns), template)
    frame = pd.DataFrame(typed, index=df.index)
    _check_round_trip(schema, frame, source)
    return Inferred(schema, frame)


def _check_round_trip(schema: TableSchema, frame: pd.DataFrame, source: str) -> None:
    """Every category, and a typical row, must read back as written (a value holding the template's
    own words would not)."""
    for col in schema.columns:
        probes = col.categories if col.kind == CATEGORICAL else [frame[col.name].dropna().iloc[0]]
        for value in probes:
            back = schema.parse(schema.serialise({col.name: value}))[col.name]
            ok = back == value if col.kind == CATEGORICAL else (
                back is not None and abs(back - round(float(value), col.decimals)) < 1e-9 * max(1.0, abs(back)))
            if not ok:
                raise DataError(f"value {value!r} does not read back from its serialised form "
                                f"{schema.serialise({col.name: value})!r}", where=f"{source}: column '{col.name}'",
                                fix="change the field template (data.row_template) or recode the value")
