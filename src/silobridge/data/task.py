"""Task description (public metadata both parties know) and labelled text sets."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TaskSpec:
    """Public facts about the task: its name, the label names and a one-line description of the
    texts. Both parties may know this; it contains no record."""

    name: str
    label_names: tuple[str, ...]
    description: str = "a text"
    # how an LM is asked about this task (strategies may override): answer word per class, and the
    # user message with {text}, {labels}, {description} placeholders
    verbalizer: tuple[str, ...] = ()
    template: str = "Here is {description}.\n\n{text}\n\nIs it {labels}? Answer with one word."
    # labelled examples spent designing the task's prompt and verbalizer (outside the splits): they
    # count in every run's label budget
    design_labels: int = 0
    # task 'tabular': the feature columns' schema as JSON (data.table.TableSchema.to_json): names, kinds and
    # categories, public metadata like the label names; a record is then a row serialised as text
    table: str = ""

    def answer_words(self) -> tuple[str, ...]:
        return self.verbalizer or self.label_names


@dataclass
class LabelledTexts:
    texts: list[str]
    labels: np.ndarray  # int class ids

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: np.ndarray | list[int]) -> "LabelledTexts":
        return LabelledTexts([self.texts[i] for i in idx], self.labels[np.asarray(idx, dtype=np.int64)])


@dataclass
class Splits:
    """Disjoint splits. ``private`` and ``val`` are the data party's labelled records, ``public`` an
    unlabelled pool anyone may see, ``test`` held by the harness and shown to the data party only as
    inference inputs."""

    task: TaskSpec
    private: LabelledTexts
    val: LabelledTexts
    public: list[str]
    test: LabelledTexts
