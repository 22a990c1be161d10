"""Task 'tabular': loading tables (and the errors bad ones get), the row serialiser and its parser, the
table SMs, the row-level privacy rule, and the strategies end to end on a tiny generated table."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from silobridge.bench.runner import load_splits, run
from silobridge.boundary import Ledger, TextBatch
from silobridge.boundary.rows import NoPrivateRows, RowFingerprint
from silobridge.configs import apply_overrides, from_dict
from silobridge.data.table import Column, TableSchema, infer_schema
from silobridge.data.tabular import load_table_file, schema_of
from silobridge.errors import ConfigError, DataError, ModelError, PolicyViolation
from silobridge.models.sm import build_sm
from silobridge.models.tabular import BoostedTrees, TableLR
from silobridge.parties import DataParty
from silobridge.settings import RunConfig, SMConfig, SMKind, TaskKind


def write(tmp_path, df, name="t.csv"):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_csv(path, index=False)
    return str(path)


def base_frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 80, n), "income": np.round(rng.lognormal(10, 0.5, n), 2),
                         "home": rng.choice(["rent", "own"], n), "y": rng.choice(["a", "b"], n)})


# --- loading and errors ----------------------------------------------------------------------------------
def test_a_table_loads_as_serialised_rows(tiny_table):
    task, pool, test = load_table_file(tiny_table, "label")
    schema = schema_of(task)
    assert task.label_names == ("no", "yes") and test is None and len(pool) == 300
    assert [(c.name, c.kind) for c in schema.columns] == [("age", "numeric"), ("income", "numeric"),
                                                          ("home", "categorical"), ("score", "numeric")]
    assert schema.columns[2].categories == ("own", "parents", "rent") and schema.columns[1].decimals == 2
    assert pool.texts[0].startswith("age is ") and " income is " in pool.texts[0]
    # a missing value is left out of its row (TabLLM), and reads back as missing
    df = pd.read_csv(tiny_table)
    i = int(np.flatnonzero(df["score"].isna())[0])
    assert "score is" not in pool.texts[i] and schema.parse(pool.texts[i])["score"] is None
    assert pool.labels[i] == task.label_names.index(df["label"][i])


def test_feature_cols_and_jsonl(tmp_path):
    path = write(tmp_path, base_frame(), "t.jsonl")
    task, pool, _ = load_table_file(path, "y", ["income", "home"])
    assert schema_of(task).names == ["income", "home"] and "age is" not in pool.texts[0]


@pytest.mark.parametrize(("change", "match"), [
    (lambda df: df.assign(empty=np.nan), "column 'empty'.*every value is missing"),
    (lambda df: df.assign(const=7), "column 'const'.*a single value"),
    (lambda df: df.assign(note=[f"free comment number {i} about the applicant" for i in range(len(df))]),
     "column 'note'.*free text"),
    (lambda df: df.assign(y="a"), "single class"),
    (lambda df: df.assign(y=np.nan), "every value of the label column"),
])
def test_unusable_columns_are_named_with_the_fix(tmp_path, change, match):
    path = write(tmp_path, change(base_frame()))
    with pytest.raises(DataError, match=match) as err:
        load_table_file(path, "y")
    assert err.value.fix


def test_wrong_column_names(tmp_path):
    path = write(tmp_path, base_frame())
    with pytest.raises(DataError, match="label column 'status' is missing"):
        load_table_file(path, "status")
    with pytest.raises(DataError, match=r"\['wage'\] not in the table") as err:
        load_table_file(path, "y", ["age", "wage"])
    assert "--feature-cols" in err.value.fix
    with pytest.raises(DataError, match="label column 'y' is also a feature"):
        load_table_file(path, "y", ["age", "y"])


def test_config_errors_name_the_fix(tmp_path, tiny_table):
    def cfg(*sets):
        return from_dict(RunConfig, apply_overrides({}, list(sets)))

    with pytest.raises(ConfigError, match="sm.kind"):
        cfg("sm.kind=boost")  # a table SM on a text task
    with pytest.raises(ConfigError, match="data.feature_cols"):
        cfg("data.feature_cols=age")
    with pytest.raises(DataError, match="row_template"):
        cfg("task=tabular", "data.row_template={value} of {name}")
    with pytest.raises(DataError, match="is not a table") as err:
        load_splits(cfg("task=tabular", "data.path=bundled:reviews"))
    assert "bundled:credit-default" in err.value.fix
    with pytest.raises(DataError, match="is a table") as err:
        load_splits(cfg("data.path=bundled:credit-scoring"))
    assert "--task tabular" in err.value.fix


def test_bundled_tables():
    cfg = from_dict(RunConfig, apply_overrides({}, ["task=tabular", "data.path=bundled:credit-scoring",
                                                    "data.n_private=50", "data.n_public=200", "data.n_test=200"]))
    splits = load_splits(cfg)
    schema = schema_of(splits.task)
    assert splits.task.label_names == ("bad", "good") and "rownames" not in schema.names
    assert len(schema.columns) == 13 and len(splits.private) == 50 and len(splits.public) == 200
    assert any(schema.parse(t)["Income"] is None for t in splits.test.texts)  # missing values kept missing
    cfg = from_dict(RunConfig, apply_overrides({}, ["task=tabular", "data.path=bundled:credit-default"]))
    task = load_splits(cfg).task
    assert task.label_names == ("No", "Yes") and schema_of(task).names == ["student", "balance", "income"]


# --- serialiser and parser --------------------------------------------------------------------------------
SCHEMA = TableSchema((Column("age", "numeric"), Column("income", "numeric", decimals=2),
                      Column("home", "categorical", ("own", "rent")), Column("job", "categorical", ("fixed", "temp"))))


def test_round_trip_with_missing_values_and_a_canary():
    row = {"age": 45, "income": 30000.5, "home": "rent", "job": None}
    text = SCHEMA.serialise(row)
    assert text == "age is 45. income is 30,000.50. home is rent."
    back = SCHEMA.parse(text + " My member code is K7QM-2ZXA-PL9D.")  # the canary is no field
    assert back == {"age": 45.0, "income": 30000.5, "home": "rent", "job": None}
    assert SCHEMA.fields(text + " " + text)[1][0][1] == "45"  # a column seen again starts a new row


@pytest.mark.parametrize("template", ["{name} is {value}.", "{name}: {value};", "The {name} = {value}"])
def test_templates_read_back(template):
    schema = dataclasses.replace(SCHEMA, template=template)
    row = {"age": 45.0, "income": 1234.25, "home": "own", "job": "temp"}
    assert schema.parse(schema.serialise(row)) == row


def test_strict_validation_of_rows_an_lm_wrote():
    ok, why = SCHEMA.validate("Age is 38. Income is $52,000. Home is Own. Job is fixed.")
    assert why == "" and ok == {"age": 38.0, "income": 52000.0, "home": "own", "job": "fixed"}
    assert "cannot read 'castle'" in SCHEMA.validate("age is 38. income is 5. home is castle. job is fixed.")[1]
    assert "cannot read 'old'" in SCHEMA.validate("age is old. income is 5. home is own. job is fixed.")[1]
    assert "3 of 4 fields" in SCHEMA.validate("age is 38. income is 5. home is own.")[1]
    assert SCHEMA.validate("hello there")[1] == "no field"


def test_schema_travels_as_json():
    assert TableSchema.from_json(SCHEMA.to_json()) == SCHEMA
    with pytest.raises(DataError, match="malformed table schema"):
        TableSchema.from_json("{}")


def test_a_value_that_does_not_read_back_is_refused():
    df = pd.DataFrame({"city": ["St. Louis. is", "Paris"] * 5, "x": range(10), "y": ["a", "b"] * 5})
    with pytest.raises(DataError, match="does not read back"):
        infer_schema(df, "y")


# --- SMs ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [SMKind.BOOST, SMKind.LOGREG, SMKind.AUTO])
def test_table_sms_learn_the_tiny_table(kind, tiny_table):
    task, pool, _ = load_table_file(tiny_table, "label")
    sm = build_sm(SMConfig(kind=kind), 2, 0, task.table)
    assert isinstance(sm, TableLR if kind is SMKind.LOGREG else BoostedTrees)
    tr, te = pool.subset(range(200)), pool.subset(range(200, 300))
    sm.fit(tr.texts, np.eye(2)[tr.labels], val=(te.texts[:30], te.labels[:30]))
    p = sm.predict_proba(te.texts)
    assert p.shape == (100, 2) and np.allclose(p.sum(1), 1)
    majority = max(np.mean(te.labels), 1 - np.mean(te.labels))
    assert (p.argmax(1) == te.labels).mean() > majority + 0.05


def test_soft_labels_and_a_single_class(tiny_table):
    task, pool, _ = load_table_file(tiny_table, "label")
    schema = schema_of(task)
    texts = pool.texts[:40]
    soft = np.tile([0.3, 0.7], (40, 1))
    for sm in (BoostedTrees(schema, 2), TableLR(schema, 2)):  # soft targets: the SM learns their mean
        p = sm.fit(texts, soft).predict_proba(pool.texts[40:60])
        assert abs(p[:, 1].mean() - 0.7) < 0.1
        one = sm.fit(texts, np.eye(2)[np.zeros(40, int)]).predict_proba(texts[:3])  # one class only
        assert np.allclose(one, [[1, 0]] * 3)


def test_a_table_sm_on_a_text_task_is_refused():
    with pytest.raises(ModelError, match="reads table rows"):
        build_sm(SMConfig(kind=SMKind.BOOST), 2, 0, "")


# --- privacy on rows ------------------------------------------------------------------------------------
def test_row_fingerprint_exact_and_near_exact():
    idx = RowFingerprint(SCHEMA.row_keys)
    private = SCHEMA.serialise({"age": 45, "income": 30000.5, "home": "rent", "job": "fixed"})
    idx.add([private])
    assert idx.hits(private) == {0}
    assert idx.hits("Income is 30,000.50. AGE is 45. job is fixed. home is rent.") == {0}  # reordered, re-cased
    assert idx.hits("age is 46. income is 30,000.50. home is rent. job is fixed.") == {0}  # one field changed
    assert idx.hits("note: age is 46. income is 30,000.50. home is rent. job is fixed.") == {0}  # inside a text
    assert idx.hits("age is 46. income is 30,001.00. home is rent. job is fixed.") == set()  # two changed
    assert idx.hits("age is 45. income is 30,000.50.") == set()  # two of four fields: not this record
    assert idx.hits("a review of a fine product") == set()


def test_the_data_party_refuses_private_rows(table_cfg, tmp_path):
    from silobridge.bench.runner import connect

    splits = load_splits(table_cfg)
    data = DataParty(splits, table_cfg.sm, table_cfg.policy, connect(table_cfg, None), Ledger(tmp_path / "l.jsonl"),
                     {}, declared=frozenset({"inference_records"}))
    schema = schema_of(splits.task)
    row = schema.parse(splits.private.texts[0])
    name = next(c.name for c in schema.columns if c.kind == "numeric" and row[c.name] is not None)
    row[name] += 1  # near-exact: one field differs
    for text in (splits.private.texts[0], schema.serialise(row)):
        with pytest.raises(PolicyViolation, match="no-private-rows") as err:
            data.gate.send(TextBatch([text]), "model", "score")
        assert "a whole row or all but one of its fields" in str(err.value)
    data.admit(splits.test.texts[:2], "inference_records")  # the inputs that arrived may cross, declared
    data.gate.send(TextBatch(splits.test.texts[:2], exposure="inference_records"), "model", "score")
    with pytest.raises(PolicyViolation, match="no-private-rows"):  # a private row under that label may not
        data.gate.send(TextBatch(splits.private.texts[:1], exposure="inference_records"), "model", "score")
    data.gate.send(TextBatch(splits.public[:5]), "model", "score")  # public rows: row-disjoint by construction
    assert isinstance(data.policy.rules[2], NoPrivateRows)


def test_splits_are_row_disjoint(table_cfg):
    splits = load_splits(table_cfg)
    idx = RowFingerprint(schema_of(splits.task).row_keys)
    idx.add(splits.private.texts + splits.val.texts + splits.test.texts)
    assert not any(idx.hits(t) for t in splits.public)


# --- strategies end to end --------------------------------------------------------------------------------
def test_what_each_tabular_strategy_sends(table_cfg, tmp_path):
    d = table_cfg.data
    only = run("sm-only", table_cfg, tmp_path / "a")["objectives"]
    assert only["communication"]["messages"] == 0 and only["lm_queries"]["calls"] == 0

    zs = run("lm-zero-shot", table_cfg, tmp_path / "b")
    o = zs["objectives"]
    assert o["lm_queries"]["calls"] == d.n_test + d.n_public  # + the public rows for the calibration bias
    # every test row crossed, declared (a test row near-exact to a private one counts that record too)
    assert o["privacy"]["raw_record_hits"] == o["privacy"]["declared_exposures"] >= d.n_test
    assert o["privacy"]["exposures"]["inference_records"]["texts"] == d.n_test
    assert o["privacy"]["canary_hits"] == 0 and zs["splits"]["canaries"] == d.canaries

    dp = run("distill-public", dataclasses.replace(table_cfg, sm=dataclasses.replace(table_cfg.sm,
                                                                                      kind=SMKind.LOGREG)),
             tmp_path / "c")
    o = dp["objectives"]
    assert o["lm_queries"]["calls"] == d.n_public and dp["report"]["public_used"] == d.n_public
    assert o["privacy"]["raw_record_hits"] == 0 and o["privacy"]["declared_exposures"] == 0
    ledger = [json.loads(x) for x in (tmp_path / "c" / "ledger.jsonl").read_text().splitlines()]
    assert dp["config"]["sm"]["kind"] == "logreg" and len(ledger) == 6  # open, score, close and replies


def test_canary_rows_are_planted_and_refused(table_cfg, tmp_path):
    """A canary rides in a private row (its secret after the fields): the SM reads the row as usual, and a
    row carrying it never crosses."""
    splits = load_splits(table_cfg)
    from silobridge.bench.runner import connect

    data = DataParty(splits, table_cfg.sm, table_cfg.policy, connect(table_cfg, None), Ledger(tmp_path / "l.jsonl"),
                     {}, canaries=3, seed=0)
    planted = [t for t in data.private.texts if any(s in t for s in data.secrets)]
    assert len(planted) == 3 and data.new_sm().fit(data.private.texts, data.one_hot(data.private.labels))
    schema = schema_of(splits.task)
    assert all(sum(v is not None for v in schema.parse(t).values()) >= 3 for t in planted)
    with pytest.raises(PolicyViolation, match="no-canary"):
        data.gate.send(TextBatch([f"age is 1. note: {data.secrets[0]}"]), "model", "score")


def test_run_help_describes_the_table_options():
    from typer.testing import CliRunner

    from silobridge.cli.main import app

    out = CliRunner().invoke(app, ["run", "--help"], terminal_width=200).output
    assert "--feature-cols" in out and "tabular" in out and "credit-default" in out and "logreg" in out


def test_the_task_kind_is_labelled():
    assert TaskKind.TABULAR.labelled and TaskKind.CLASSIFY.labelled and not TaskKind.DOMAIN_LM.labelled


def test_guided_writing_makes_a_random_lm_write_rows_that_parse(table_cfg, tiny_lm_dir, tmp_path):
    """Guided writing (the default with the LM's weights): the tiny LM has random weights and could never keep
    the format by itself, yet every row it writes is valid — categories from the schema, numbers within
    max_digits and with the column's decimals — and the rows differ (sampled, not a fixed filler)."""
    from silobridge.models.guided import Field, write_records
    from silobridge.models.lm import load_lm

    lm = load_lm(tiny_lm_dir, dtype="float32")
    fields = [Field("home is", ".", choices=("rent", "own", "parents")), Field("age is", ".", digits=2),
              Field("income is", ".", digits=6, decimals=2)]
    values = write_records(lm, ["Write a row:"] * 12, fields, batch_size=5, seed=1)
    assert len(values) == 12 and all(len(v) == 3 for v in values)
    for home, age, income in values:
        assert home in ("rent", "own", "parents")
        assert age.isdigit() and len(age) <= 2
        whole, _, frac = income.partition(".")
        assert whole.isdigit() and len(whole) <= 6 and frac.isdigit() and len(frac) <= 2
    assert len({tuple(v) for v in values}) > 1
    assert write_records(lm, ["Write a row:"] * 12, fields, batch_size=5, seed=1) == values  # seeded
    cfg = dataclasses.replace(table_cfg, strategy={"per_class": 6, "agreement_keep": 1.0})
    rep = run("synthetic-rows", cfg, tmp_path / "a")["report"]
    assert rep["writing"] == "guided" and rep["generated"] == 12 and rep["dropped"]["invalid"] == 0
    assert rep["valid"] + rep["dropped"]["duplicate"] == 12 and rep["kept"] == rep["valid"] > 0


def test_synthetic_rows_writing_mode_is_checked():
    from silobridge.strategies.synthetic_rows.config import SyntheticRowsConfig

    with pytest.raises(ConfigError, match="strategy.writing"):
        SyntheticRowsConfig(writing="constrained")
    with pytest.raises(ConfigError, match="strategy.max_digits"):
        SyntheticRowsConfig(max_digits=0)


def test_synthetic_rows_keeps_valid_typical_rows(table_cfg, tmp_path, monkeypatch):
    """The LM's replies (stubbed: rows in another case, chatter around them, broken ones) are parsed and
    validated against the schema; the valid ones are filtered by the SM and train it. Only a config and
    the rows cross; with no valid row the SM is the private rows' alone, and the report says so."""
    from silobridge.parties.model_party import ModelParty

    def replies(self, users, *args, desc=""):
        good = "Sure! Here it is: AGE is 41. income is 52,000.00. home is Own. score is 640. Hope this helps."
        return [good if i % 3 == 0 else ("age is 41. home is castle." if i % 3 == 1 else "no idea")
                for i in range(len(users))]

    cfg = dataclasses.replace(table_cfg, strategy={"per_class": 6, "agreement_keep": 1.0, "writing": "free"})
    monkeypatch.setattr(ModelParty, "generate_replies", replies)
    result = run("synthetic-rows", cfg, tmp_path / "a")
    rep = result["report"]
    assert rep["generated"] == 12 and rep["dropped"]["invalid"] == 8 and rep["valid"] == 1  # 4 good, 3 duplicates
    assert rep["dropped"]["duplicate"] == 3 and rep["kept"] == 1 and rep["private_only"] is False
    ledger = [json.loads(x) for x in (tmp_path / "a" / "ledger.jsonl").read_text().splitlines()]
    assert [(e["sender"], e["kind"]) for e in ledger[2:4]] == [("data", "config"), ("model", "text")]
    assert result["objectives"]["privacy"]["raw_record_hits"] == 0
    monkeypatch.setattr(ModelParty, "generate_replies", lambda self, users, *a, desc="": ["nothing"] * len(users))
    rep = run("synthetic-rows", cfg, tmp_path / "b")["report"]
    assert rep["kept"] == 0 and rep["private_only"] is True and rep["invalid_reasons"] == {"no field": 12}
    with pytest.raises(ConfigError, match="cannot run task 'classify'"):
        run("synthetic-rows", dataclasses.replace(cfg, task=TaskKind.CLASSIFY, data=dataclasses.replace(
            cfg.data, path=None)), tmp_path / "c")


def test_guided_numbers_are_negative_only_in_a_signed_column(tokenizer_dir):
    """A column with negative values is inferred as signed and says so on the wire (an unsigned schema's
    wire text is unchanged); guided writing offers a minus only at the start of a signed number, and a
    written '-12' reads back as -12, a lone '-' as missing."""
    from transformers import AutoTokenizer

    from silobridge.models.guided import Field, Frame

    df = pd.DataFrame({"delta": [-3, 5, 0, 7] * 3, "n": [1, 2, 3, 4] * 3, "y": ["a", "b"] * 6})
    schema = infer_schema(df, "y").schema
    assert [c.signed for c in schema.columns] == [True, False]
    assert TableSchema.from_json(schema.to_json()) == schema
    assert "signed" not in TableSchema((Column("n", "numeric"),)).to_json()

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    minus = set(ids("-"))
    for signed in (True, False):
        frame = Frame(tok, [Field("delta is", ".", signed=signed, digits=3)], tok.sep_token_id)
        start = ids("delta is")
        assert bool(minus & set(frame.allowed(start))) is signed
        assert not minus & set(frame.allowed(start + ids("-")))  # one sign, then digits
        assert not minus & set(frame.allowed(start + ids("1")))  # never mid-number
    written = start + ids("-") + ids("12") + ids(".")
    frame = Frame(tok, [Field("delta is", ".", signed=True, digits=3)], tok.sep_token_id)
    assert frame.values(written) == ["-12"]
    assert frame.values(start + ids("-")) == [""]
