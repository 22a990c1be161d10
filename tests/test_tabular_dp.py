"""Task 'tabular', privacy and prompts: the DP class-conditional row summaries that steer synthetic-rows
(the mechanism, what crosses, the ε a run reports) and lm-zero-shot's prompt chosen on validation rows."""
import dataclasses
import json
import math

import numpy as np
import pytest

from silobridge.bench.runner import load_splits, run
from silobridge.boundary import Config
from silobridge.data.tabular import load_table_file, schema_of
from silobridge.errors import BoundaryError, ConfigError, PolicyViolation
from silobridge.privacy import gaussian_sigma
from silobridge.privacy.noise import numpy_rng
from silobridge.privacy.row_summary import add_noise, class_cell_counts, dp_row_summaries, public_edges


@pytest.fixture(scope="module")
def table(tiny_table):
    task, pool, _ = load_table_file(tiny_table, "label")
    return schema_of(task), pool


# --- the mechanism ----------------------------------------------------------------------------------------
def test_one_row_moves_one_cell_per_column(table):
    """The sensitivity argument, checked: adding a row changes the count matrix by 1 in exactly one cell
    of each feature column, all in its class (L2 = sqrt(d))."""
    schema, pool = table
    layout = public_edges(schema, pool.texts[200:], bins=4)
    before = class_cell_counts(layout, pool.texts[:50], pool.labels[:50], 2)
    after = class_cell_counts(layout, pool.texts[:51], pool.labels[:51], 2)
    diff = after - before
    assert diff.sum() == len(schema.columns) and set(np.unique(diff)) == {0.0, 1.0}
    assert np.flatnonzero(diff.any(1)).tolist() == [pool.labels[50]]
    assert np.linalg.norm(diff) == pytest.approx(layout.sensitivity) == pytest.approx(math.sqrt(len(schema.columns)))
    assert before.sum(1).tolist() == [np.sum(pool.labels[:50] == c) * len(schema.columns) for c in (0, 1)]


def test_noise_has_the_stated_sigma(table):
    schema, pool = table
    rel = dp_row_summaries(schema, pool.texts[:100], pool.labels[:100], 2, pool.texts[200:], epsilon=1.0,
                           delta=1e-5, seed=1)
    assert rel.sigma == pytest.approx(gaussian_sigma(1.0, 1e-5, math.sqrt(len(schema.columns))))
    assert rel.sensitivity == pytest.approx(2.0)  # four columns
    noise = add_noise(np.zeros((4, 5000)), rel.sigma, numpy_rng(None))
    assert abs(noise.mean()) < 0.05 * rel.sigma and noise.std() == pytest.approx(rel.sigma, rel=0.03)
    replace = dp_row_summaries(schema, pool.texts[:100], pool.labels[:100], 2, pool.texts[200:], epsilon=1.0,
                               delta=1e-5, seed=1, neighbouring="replace")
    assert replace.sigma == pytest.approx(math.sqrt(2) * rel.sigma, rel=1e-6)


def test_unseeded_releases_differ_seeded_ones_repeat(table):
    schema, pool = table
    args = (schema, pool.texts[:100], pool.labels[:100], 2, pool.texts[200:])
    a, b = (dp_row_summaries(*args, epsilon=1.0, delta=1e-5) for _ in range(2))
    assert a.noisy_counts != b.noisy_counts
    c, d = (dp_row_summaries(*args, epsilon=1.0, delta=1e-5, seed=7) for _ in range(2))
    assert c.noisy_counts == d.noisy_counts
    # a large ε: the summaries are close to the rows' own (the tiny table's label rises with income)
    big = dp_row_summaries(*args, epsilon=1000.0, delta=1e-5, seed=0).classes
    assert big[1]["income"]["median"] > big[0]["income"]["median"]
    assert sum(big[0]["home"]["shares"].values()) == pytest.approx(1.0, abs=0.01)


def test_summary_settings_are_checked():
    from silobridge.strategies.synthetic_rows.config import SyntheticRowsConfig

    for bad in ({"summary_epsilon": 0.0}, {"summary_epsilon": math.inf}, {"summary_delta": 1.0},
                {"summary_bins": 0}):
        with pytest.raises(ConfigError, match="strategy.summary_"):
            SyntheticRowsConfig(**bad)
    assert SyntheticRowsConfig().summaries is False


# --- synthetic-rows with summaries, end to end ---------------------------------------------------------------
GOOD = "age is 41. income is 52,000.00. home is own. score is 640."


@pytest.fixture
def prompts(monkeypatch):
    """The LM stubbed (no generation): the prompts it got, and one valid row per prompt."""
    from silobridge.parties.model_party import ModelParty

    seen: list[str] = []

    def replies(self, users, *args, desc=""):
        seen.extend(users)
        return [GOOD.replace("41", str(20 + i)) for i in range(len(users))]

    monkeypatch.setattr(ModelParty, "generate_replies", replies)
    return seen


def summaries_cfg(table_cfg, **more):
    return dataclasses.replace(table_cfg, strategy={"per_class": 3, "summaries": True, "summary_epsilon": 2.0,
                                                  "writing": "free"} | more)


def test_summaries_cross_with_their_epsilon_and_no_private_row(table_cfg, tmp_path, prompts):
    result = run("synthetic-rows", summaries_cfg(table_cfg), tmp_path / "a")
    o, rep = result["objectives"], result["report"]["summaries"]
    assert o["privacy"]["epsilon"] == 2.0 > 0 and o["privacy"]["delta"] == 1e-5
    assert o["privacy"]["raw_record_hits"] == 0 and o["privacy"]["canary_hits"] == 0
    assert rep["mechanism"].startswith("gaussian") and rep["noise_seeded"] is False and not rep["release_reused"]
    assert rep["sigma"] > 0 and 0 <= rep["share_error"] <= 2 and len(rep["per_class"]) == 2
    ledger = [json.loads(x) for x in (tmp_path / "a" / "ledger.jsonl").read_text().splitlines()]
    sent = [e for e in ledger if e["sender"] == "data" and e["kind"] == "config" and e["epsilon"]]
    assert len(sent) == 1 and sent[0]["epsilon"] == 2.0
    assert all("noisy summary" in p and "home: " in p for p in prompts)
    splits = load_splits(table_cfg)
    assert not any(row in p for row in splits.private.texts + splits.val.texts for p in prompts)
    # the request is a config carrier, and the data party's policy reads configs too: a private row in one
    # (even with one field changed) would be refused (no-private-rows)
    from silobridge.bench.runner import connect
    from silobridge.boundary import Ledger
    from silobridge.parties import DataParty

    data = DataParty(splits, table_cfg.sm, table_cfg.policy, connect(table_cfg, None), Ledger(tmp_path / "l.jsonl"),
                     {})
    with pytest.raises(PolicyViolation, match="no-private-rows"):
        data.gate.send(Config(values={"summaries": rep["per_class"], "note": splits.private.texts[0]}), "model",
                       "generate")
    data.gate.send(Config(values={"summaries": rep["per_class"]}), "model", "generate")
    # off (the default): nothing of the private rows crosses, ε is not reported
    prompts.clear()
    off = run("synthetic-rows", dataclasses.replace(table_cfg, strategy={"per_class": 3, "writing": "free"}),
              tmp_path / "b")
    assert off["objectives"]["privacy"]["epsilon"] is None and off["report"]["summaries"] is None
    assert not any("noisy summary" in p for p in prompts)


def test_a_rerun_reuses_the_release_a_new_silo_draws_new_noise(table_cfg, tmp_path, prompts, monkeypatch):
    cfg = summaries_cfg(table_cfg)
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home1"))
    first = run("synthetic-rows", cfg, tmp_path / "a")["report"]["summaries"]
    again = run("synthetic-rows", cfg, tmp_path / "b")["report"]["summaries"]
    assert again["release_reused"] and again["per_class"] == first["per_class"]
    monkeypatch.setenv("SILOBRIDGE_HOME", str(tmp_path / "home2"))  # another silo: unseeded, fresh noise
    other = run("synthetic-rows", cfg, tmp_path / "c")["report"]["summaries"]
    assert not other["release_reused"] and other["per_class"] != first["per_class"]


def test_the_model_side_refuses_malformed_summaries(table):
    from silobridge.strategies.synthetic_rows.model_side import check_summaries

    schema, _ = table
    ok = [{"age": {"missing": 0.0, "low": 30, "median": 40, "high": 50}, "home": {"shares": {"own": 1.0}}}] * 2
    assert check_summaries(schema, 2, ok) == ok
    for bad, match in ((ok[:1], "one per class"), ([{"wage": {}}] * 2, "unknown column"),
                       ([{"age": {"median": float("nan"), "low": 1, "high": 2}}] * 2, "finite"),
                       ([{"home": {"shares": {"castle": 1.0}}}] * 2, "unknown categories"),
                       ([{"age": {"median": 40}}] * 2, "quartiles")):
        with pytest.raises(BoundaryError, match=match):
            check_summaries(schema, 2, bad)
    assert Config(values={"summaries": ok}).texts() == []  # a config: statistics, no text item


# --- lm-zero-shot: the prompt chosen on validation rows ---------------------------------------------------------
def signal(schema, text):
    row = schema.parse(text)
    return 2 * (math.log(row["income"] or 20000) - 10) + (row["home"] == "own")


def inverted_lm(monkeypatch, calls):
    """The LM stubbed: its first answer word wins on rows with a high income and the 'own' home, which in
    the tiny table is the second class (a prompt whose words read the wrong way round, like credit-scoring's
    bad/good); under a template with 'Row:' the signal is weaker (noisier)."""
    from silobridge.parties.model_party import ModelParty

    def score(self, texts, user_template, label_words, *args, **kw):
        calls.append((list(texts), user_template, tuple(label_words)))
        out = []
        for t in texts:
            z = signal(schema_of(self.task), t)
            if "Row:" in user_template:
                z = 0.3 * z + (hash(t) % 7 - 3)
            out.append([z, -z])
        return np.array(out)

    monkeypatch.setattr(ModelParty, "score_labels", score)


def test_zero_shot_prompt_is_chosen_on_validation_rows(table_cfg, tmp_path, monkeypatch):
    from sklearn.metrics import roc_auc_score

    calls: list = []
    inverted_lm(monkeypatch, calls)
    splits = load_splits(table_cfg)
    written = run("lm-zero-shot", table_cfg, tmp_path / "a")
    assert written["objectives"]["utility"]["auc"] < 0.3  # as written: inverted
    assert "prompt_choice" not in written["report"]
    calls.clear()
    cfg = dataclasses.replace(table_cfg, strategy={"choose_prompt": True, "templates": ["Row: {text} {labels}?"],
                                                   "label_word_sets": ["yes/no"]})
    chosen = run("lm-zero-shot", cfg, tmp_path / "b")
    o, rep = chosen["objectives"], chosen["report"]["prompt_choice"]
    assert o["utility"]["auc"] > 0.7  # the validation rows turned it the right way round
    assert rep["chosen"]["orientation"] == ["yes", "no"] and rep["chosen"]["auc"] > 0.7 > 0.3 > rep["as_written"]
    assert rep["chosen"]["candidate"] == 0 and len(rep["tried"]) == 2 * 2 * 2  # templates x word sets x orientations
    # the labels it used are the validation split's, in the label budget the result reports
    assert rep["labels_used"] == len(splits.val) == o["labels"]["validation"] > 0
    assert o["labels"]["total"] >= rep["labels_used"] + o["labels"]["private"]
    # what the LM scored before the test rows: validation rows (4 candidates) and public calibration rows only
    first_test = next(i for i, (texts, _, _) in enumerate(calls) if texts == splits.test.texts)
    before = [texts for texts, _, _ in calls[:first_test]]
    assert sum(texts == splits.val.texts for texts in before) == 4
    assert all(texts in (splits.val.texts, splits.public[:len(texts)]) for texts in before)
    assert not set(splits.test.texts) & {t for texts in before for t in texts}
    # declared: the validation rows crossed as 'validation_records', once per (template, words) candidate
    assert o["privacy"]["exposures"]["validation_records"] | {"bytes": 0} == {"carriers": 4, "texts": 4 * len(
        splits.val), "bytes": 0, "records": len(splits.val)}  # each validation row is one protected record
    assert o["privacy"]["raw_record_hits"] == o["privacy"]["declared_exposures"] >= len(splits.val) + len(splits.test)
    # the chosen figure is the validation rows' own (the data party holds no test label to read)
    schema = schema_of(splits.task)
    z = [signal(schema, t) for t in splits.val.texts]
    assert rep["chosen"]["auc"] == pytest.approx(roc_auc_score(splits.val.labels == 1, z), abs=1e-3)
    assert rep["chosen"]["auc"] != pytest.approx(o["utility"]["auc"], abs=1e-3)


def test_prompt_choice_settings_are_checked(table_cfg, tmp_path):
    from silobridge.strategies.lm_zero_shot.choice import LMZeroShotModel
    from silobridge.strategies.lm_zero_shot.config import LMZeroShotConfig

    with pytest.raises(ConfigError, match="strategy.templates"):
        LMZeroShotConfig(choose_prompt=True, templates=("no placeholder",))
    with pytest.raises(ConfigError, match="strategy.label_word_sets"):
        LMZeroShotConfig(choose_prompt=True, label_word_sets=("yes",))
    with pytest.raises(ConfigError, match="strategy.choose_prompt"):
        LMZeroShotConfig(templates=("{text}",))  # candidates without the choice
    with pytest.raises(ConfigError, match="strategy.choose_prompt"):
        LMZeroShotConfig(choose_prompt=True, n_shots=1)
    cfg = dataclasses.replace(table_cfg, strategy={"choose_prompt": True, "label_word_sets": ["a/b/c"]})
    with pytest.raises(ConfigError, match="3 words for 2 classes"):
        run("lm-zero-shot", cfg, tmp_path / "a")

    class Party:
        task = load_splits(table_cfg).task

    side = LMZeroShotModel(LMZeroShotConfig(), Party())
    for values in ({}, {"template": "x", "label_words": ["a", "b"]}, {"template": "{text}", "label_words": ["a"]}):
        with pytest.raises(BoundaryError, match="bad prompt"):
            side.prompt(Config(values=values))
    side.prompt(Config(values={"template": "Q: {text}", "label_words": ["low", "high"]}))
    assert side.config.template == "Q: {text}" and side.config.label_words == ("low", "high")
