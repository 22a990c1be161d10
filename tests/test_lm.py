"""LM label scoring on a tiny model: shapes, batching invariance, metering, the score cache."""
import numpy as np
import pytest

from silobridge.errors import ModelError
from silobridge.models.lm import encode_prompts, load_lm, score_labels, shared_prefix

TEXTS = ["a short one", "a somewhat longer text about a product that tastes fine", "mid length text here"]
TEMPLATE = "Review: {text}\nIs this review {labels}?"


@pytest.fixture(scope="module")
def lm(tiny_lm_dir):
    return load_lm(tiny_lm_dir, dtype="float32")


def test_scores_are_normalised_and_batch_invariant(lm):
    one = score_labels(lm, TEXTS, TEMPLATE, ["positive", "negative"], batch_size=1)
    many = score_labels(lm, TEXTS, TEMPLATE, ["positive", "negative"], batch_size=3)
    assert one.shape == (3, 2)
    np.testing.assert_allclose(np.exp(one).sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(one, many, atol=1e-4)  # left padding does not change the answer


def test_shared_prefix_leaves_each_sequence_a_token():
    assert shared_prefix([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert shared_prefix([[1, 2, 3]]) == 2  # one prompt: all but the answer position is cached
    assert shared_prefix([[7, 1], [8, 1]]) == 0 and shared_prefix([]) == 0


def test_cached_prefix_gives_the_same_scores(lm):
    words = ["positive", "negative"]
    shots = (("Review: great value\nIs this review positive or negative?", "positive"),)
    assert shared_prefix(encode_prompts(lm, TEXTS, TEMPLATE, 96, shots)) >= 4  # the demonstration and more
    whole = score_labels(lm, TEXTS, TEMPLATE, words, batch_size=2, shots=shots, share_prefix=False)
    for batch_size in (1, 2, 3):
        np.testing.assert_allclose(score_labels(lm, TEXTS, TEMPLATE, words, batch_size=batch_size, shots=shots),
                                   whole, atol=1e-4)
    # a text's answer does not depend on which texts share its call (alone, its whole prompt is the prefix)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(score_labels(lm, [text], TEMPLATE, words, shots=shots)[0], whole[i], atol=1e-4)


def test_meter_and_cache(lm, tmp_path):
    before = (lm.meter.calls, lm.meter.cached)
    first = score_labels(lm, TEXTS, TEMPLATE, ["yes", "no"], cache_dir=tmp_path)
    assert lm.meter.calls - before[0] == 3
    again = score_labels(lm, TEXTS[::-1], TEMPLATE, ["yes", "no"], cache_dir=tmp_path)
    assert lm.meter.calls - before[0] == 3 and lm.meter.cached - before[1] == 3
    np.testing.assert_array_equal(again, first[::-1])


def test_cache_is_keyed_by_the_weights_not_the_name(lm, tmp_path):
    import torch

    first = score_labels(lm, TEXTS, TEMPLATE, ["yes", "no"], cache_dir=tmp_path)
    digest = lm.digest()
    param = next(lm.model.parameters())
    saved = param.detach().clone()
    with torch.no_grad():
        param.add_(0.5)  # same name, other weights
    lm.mark_changed()
    try:
        assert lm.digest() != digest
        calls = lm.meter.calls
        changed = score_labels(lm, TEXTS, TEMPLATE, ["yes", "no"], cache_dir=tmp_path)
        assert lm.meter.calls - calls == 3  # scored afresh, not served from the old weights' cache
        assert not np.allclose(changed, first)
    finally:
        with torch.no_grad():
            param.copy_(saved)
        lm.mark_changed()
    assert lm.digest() == digest


def test_label_words_sharing_a_first_token_are_refused(lm):
    with pytest.raises(ModelError, match="start with the same token"):
        score_labels(lm, TEXTS, TEMPLATE, ["good", "good"])


def test_not_a_model_dir(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        load_lm(str(tmp_path))


def test_corrupt_checkpoint(tmp_path, tiny_lm_dir):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_lm_dir, bad)
    (bad / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot load the causal LM"):
        load_lm(str(bad))


def test_demonstrations_become_earlier_chat_turns(lm):
    from silobridge.models.lm import build_prompt

    shots = (("Review: yummy\nIs this review positive or negative?", "positive"),)
    with_shots = build_prompt(lm, "Review: awful", shots)
    assert with_shots.index("yummy") < with_shots.index("positive") < with_shots.index("awful")
    plain = score_labels(lm, TEXTS, TEMPLATE, ["positive", "negative"])
    few = score_labels(lm, TEXTS, TEMPLATE, ["positive", "negative"], shots=shots)
    assert not np.allclose(plain, few)


def test_tuned_lm_is_served_merged_with_the_same_answers(tiny_lm_dir):
    from silobridge.models.lora import LoraSpec, add_lora
    from silobridge.strategies.lm_tuning import merge

    lm = load_lm(tiny_lm_dir, dtype="float32")
    lm.model = add_lora(lm.model, None, LoraSpec())
    for name, p in lm.model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)
    tuned = score_labels(lm, TEXTS, TEMPLATE, ["positive", "negative"])
    digest = lm.digest()
    merge(lm)
    assert not hasattr(lm.model, "peft_config") and lm.digest() != digest  # plain weights, a new digest
    np.testing.assert_allclose(score_labels(lm, TEXTS, TEMPLATE, ["positive", "negative"]), tuned, atol=1e-4)
