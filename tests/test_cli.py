"""CLI commands, resume, and bad input: clear error, exit code != 0, nothing left marked finished."""
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from silobridge.cli.main import app

from conftest import SMALL

runner = CliRunner()
COMMANDS = sorted(c.name for c in app.registered_commands)  # every command, those added later too


def sets(*extra):
    out = []
    for s in SMALL + list(extra):
        out += ["--set", s]
    return out


@pytest.mark.parametrize("command", [[]] + [[c] for c in COMMANDS])
def test_help_on_every_command(command):
    res = runner.invoke(app, command + ["--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output


def test_list_shows_every_strategy():
    res = runner.invoke(app, ["list"])
    for name in ["sm-only", "lm-zero-shot", "distill-public"]:
        assert name in res.output


def test_config_lists_strategy_keys():
    res = runner.invoke(app, ["config", "distill-public"])
    assert res.exit_code == 0
    assert "strategy.temperature" in res.output and "data.n_private" in res.output


def test_run_writes_result_and_ledger(tmp_path, tiny_lm_dir):
    out = tmp_path / "r"
    res = runner.invoke(app, ["run", "distill-public", "--out", str(out), "--lm", tiny_lm_dir, "--seed", "3",
                              *sets("strategy.temperature=2")])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "result.json").read_text())
    assert result["seed"] == 3 and result["config"]["strategy"]["temperature"] == 2.0
    assert (out / "ledger.jsonl").read_text().count("\n") == result["objectives"]["communication"]["messages"]
    # where the time went: the LM's answers to the public pool are a timed phase, printed by run and show
    phases = result["objectives"]["compute"]["phase_seconds"]
    assert any(k.startswith("model: LM scoring") and v > 0 for k, v in phases.items()), phases
    assert "longest phases: " in res.output
    assert "longest phases: " in runner.invoke(app, ["show", str(out / "result.json")]).output


def test_config_file_toml_and_yaml(tmp_path, tiny_lm_dir):
    toml = tmp_path / "c.toml"
    toml.write_text(f'seed = 4\n[data]\nn_private = 30\nn_val = 10\nn_public = 20\nn_test = 30\n'
                    f'[lm]\npath = "{tiny_lm_dir}"\n[strategy]\ncalibration = "mean"\n')
    res = runner.invoke(app, ["run", "lm-zero-shot", "--config", str(toml), "--out", str(tmp_path / "t"),
                              "--set", "data.n_test=25"])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "t" / "result.json").read_text())
    assert (r["seed"], r["config"]["data"]["n_test"], r["config"]["strategy"]["calibration"]) == (4, 25, "mean")
    yaml = tmp_path / "c.yaml"
    yaml.write_text("seed: 5\ndata:\n  n_private: 30\n  n_val: 10\n  n_public: 20\n  n_test: 30\n")
    res = runner.invoke(app, ["run", "sm-only", "--config", str(yaml), "--out", str(tmp_path / "y")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "y" / "result.json").read_text())["seed"] == 5


def test_bench_resumes_finished_runs(tmp_path, tiny_lm_dir):
    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "silobridge", "bench", "--strategies", "sm-only,lm-zero-shot", "--seeds", "0,1",
           "--out", str(out), "--lm", tiny_lm_dir, *sets()]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("done") == 4
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["strategy"], r["seed"]) for r in rows) == [
        ("lm-zero-shot", 0), ("lm-zero-shot", 1), ("sm-only", 0), ("sm-only", 1)]
    # interrupted run: its result is missing, so only it runs again
    (out / "sm-only" / "seed1" / "result.json").unlink()
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("skip") == 3 and second.stderr.count("done") == 1
    assert len((out / "results.jsonl").read_text().splitlines()) == 4
    # the thread count is a resource setting: a finished run stays finished under another one
    fourth = subprocess.run(cmd + ["--set", "lm.threads=1"], capture_output=True, text=True)
    assert fourth.returncode == 0 and fourth.stderr.count("skip") == 4, fourth.stderr
    # a changed config never overwrites finished results
    third = subprocess.run(cmd + ["--set", "data.n_private=30"], capture_output=True, text=True)
    assert third.returncode == 2 and "different config" in third.stderr


def bad(tmp_path, args, match):
    out = tmp_path / "bad"
    res = runner.invoke(app, ["run", "sm-only", "--out", str(out), *args])
    assert res.exit_code == 2, res.output
    assert match in res.output, res.output
    assert "Fix:" in res.output
    assert not (out / "result.json").exists()
    return res


def test_missing_column(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("body,label\nhello there,a\nbye now,b\n")
    bad(tmp_path, ["--data", str(f), "--text-col", "text"], "text column 'text' is missing")


def test_empty_file(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("")
    bad(tmp_path, ["--data", str(f)], "empty")


def test_one_class_label_column(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"text": f"text {i}", "label": "same"}) for i in range(20)))
    bad(tmp_path, ["--data", str(f)], "single class")


def test_too_few_rows_for_the_splits(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("text,label\n" + "\n".join(f"row {i},{'ab'[i % 2]}" for i in range(30)))
    bad(tmp_path, ["--data", str(f)], "lower data.n_public")


def test_unknown_set_key_and_bad_value(tmp_path):
    bad(tmp_path, ["--set", "data.n_privat=3"], "unknown key(s) data.n_privat")
    bad(tmp_path, ["--set", "data.n_private=many"], "cannot read 'many' as int")
    bad(tmp_path, ["--set", "data.n_private=-5"], "data.n_private")
    bad(tmp_path, ["--set", "strategy.temperature=2"], "unknown key(s) strategy.temperature")


def test_unknown_strategy(tmp_path):
    res = runner.invoke(app, ["run", "no-such-thing", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown strategy 'no-such-thing'" in res.output
    assert "sm-only" in res.output


def test_bad_model_path(tmp_path):
    bad(tmp_path, ["--sm", str(tmp_path)], "no config.json")


def test_user_csv_end_to_end(tmp_path):
    f = tmp_path / "tickets.csv"
    rows = [f"refund please my card was charged twice order {i},billing" if i % 2 else
            f"the app crashes when I open settings on device {i},bug" for i in range(120)]
    f.write_text("message,team\n" + "\n".join(rows))
    out = tmp_path / "u"
    res = runner.invoke(app, ["run", "sm-only", "--data", str(f), "--text-col", "message", "--label-col", "team",
                              "--out", str(out), "--set", "data.n_private=40", "--set", "data.n_val=10",
                              "--set", "data.n_public=20", "--set", "data.n_test=30"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "result.json").read_text())
    assert r["task"] == "tickets" and r["objectives"]["utility"]["accuracy"] == 1.0


def test_user_text_only_jsonl_for_domain_lm(tmp_path, tiny_lm_dir):
    f = tmp_path / "notes.jsonl"
    f.write_text("\n".join(json.dumps({"body": f"patient {i} reports mild pain after the second visit"})
                           for i in range(80)))
    base = ["--data", str(f), "--text-col", "body", "--lm", tiny_lm_dir, "--set", "data.n_private=20",
            "--set", "data.n_val=5", "--set", "data.n_public=10", "--set", "data.n_test=20",
            "--set", "data.n_lm_eval=8", "--set", "data.canaries=0"]
    res = runner.invoke(app, ["run", "lm-zero-shot", "--out", str(tmp_path / "d"), "--task", "domain-lm", *base])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "d" / "result.json").read_text())
    assert r["task_kind"] == "domain-lm" and r["objectives"]["utility"]["perplexity"] > 1
    # classification still needs the label column, and says so
    res = runner.invoke(app, ["run", "sm-only", "--out", str(tmp_path / "c"), *base])
    assert res.exit_code == 2 and "label column 'label' is missing" in res.output


def test_corrupt_sm_checkpoint(tmp_path, tiny_sm_dir):
    import shutil

    bad_dir = tmp_path / "sm"
    shutil.copytree(tiny_sm_dir, bad_dir)
    (bad_dir / "model.safetensors").write_bytes(b"\x00" * 16)
    bad(tmp_path, ["--sm", str(bad_dir), *sets()], "cannot load the encoder")


def test_interrupted_run_is_not_marked_finished(tmp_path, monkeypatch):
    from silobridge.strategies.sm_only.data_side import SMOnlyData

    def boom(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(SMOnlyData, "fit", boom)
    out = tmp_path / "i"
    res = runner.invoke(app, ["run", "sm-only", "--out", str(out), *sets()])
    assert res.exit_code == 130 and "interrupted" in res.output
    assert not (out / "result.json").exists()


def test_results_written_before_an_option_existed_still_resume(small_cfg):
    from silobridge.bench.runner import config_digest
    from silobridge.bench.suite import resolved, same_run

    cfg = resolved("sm-only", small_cfg)
    digest = config_digest("sm-only", cfg)
    old = {k: v for k, v in cfg.items() if k != "task"}  # a result from before `task` was added
    stale = "0" * 16
    assert same_run({"config": old, "config_digest": stale}, "sm-only", digest)
    assert not same_run({"config": old | {"seed": 9}, "config_digest": stale}, "sm-only", digest)
    assert not same_run({"config": old | {"retired": 1}, "config_digest": stale}, "sm-only", digest)


def test_federate_refuses_bad_input_clearly(tmp_path):
    res = runner.invoke(app, ["federate", "fed-avg", "--out", str(tmp_path / "f")])
    assert res.exit_code == 2 and "unknown federated strategy 'fed-avg'" in res.output and "fed-distill" in res.output
    res = runner.invoke(app, ["federate", "fed-distill", "--parties", "0", "--out", str(tmp_path / "f")])
    assert res.exit_code == 2 and "federation.parties" in res.output
    res = runner.invoke(app, ["federate", "fed-distill", "--set", "federation.sms=[bert]",
                              "--out", str(tmp_path / "f")])
    assert res.exit_code == 2 and "federation.sms" in res.output
    assert not (tmp_path / "f" / "result.json").exists()
