"""The bundled tasks: the reviews (two classes) and WordNet noun definitions (24 classes)."""
import numpy as np
import pytest

from silobridge.bench.runner import load_splits
from silobridge.configs import apply_overrides, from_dict
from silobridge.errors import DataError
from silobridge.models.lm import load_lm
from silobridge.settings import RunConfig


def splits_of(*sets):
    return load_splits(from_dict(RunConfig, apply_overrides({}, list(sets))))


def test_wordnet_nouns_is_a_24_class_task_with_its_own_test_split():
    s = splits_of("data.path=bundled:wordnet-nouns")
    assert s.task.name == "wordnet-nouns" and len(s.task.label_names) == 24 and "animal" in s.task.label_names
    assert (len(s.private), len(s.val), len(s.public), len(s.test.texts)) == (400, 100, 1000, 1000)
    assert np.bincount(s.private.labels, minlength=24).min() >= 10  # every class has labelled records
    assert not set(s.test.texts) & (set(s.private.texts) | set(s.public))
    assert splits_of().task.name == splits_of("data.path=bundled:reviews").task.name == "reviews"


def test_wordnet_label_words_start_with_distinct_tokens(tiny_lm_dir):
    from silobridge.models.lm import first_token_ids

    task = splits_of("data.path=bundled:wordnet-nouns").task
    assert len(set(first_token_ids(load_lm(tiny_lm_dir, dtype="float32"), list(task.answer_words())))) == 24


def test_unknown_bundled_task_names_the_choices():
    with pytest.raises(DataError, match="bundled:wordnet-nouns"):
        splits_of("data.path=bundled:nope")


def test_every_label_counts_in_the_run_label_budget(small_cfg, tmp_path):
    from silobridge.bench.runner import run

    labels = run("sm-only", small_cfg, tmp_path)["objectives"]["labels"]
    assert labels == {"private": 40, "validation": 20, "task_design": 300, "total": 360}  # 300: prompt selection
