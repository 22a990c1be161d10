"""benchmarks/compare_tables.py: which figures moved between two table trees, and which default moved them."""
import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("compare_tables",
                                              Path(__file__).parents[1] / "benchmarks" / "compare_tables.py")
compare_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_tables)


def write(root: Path, where: str, seed: int, acc: float, lr: float, extra: dict | None = None,
          sm_kind: str = "tfidf") -> None:
    d = root / where / f"seed{seed}"
    d.mkdir(parents=True)
    r = {"strategy": where.split("/")[-1], "task_kind": "classify", "seed": seed,
         "config": {"seed": seed, "strategy": {"lr": lr, **(extra or {})}, "lm": {"threads": seed + 1},
                    "sm": {"kind": sm_kind}},
         "objectives": {"utility": {"accuracy": acc, "macro_f1": acc - 0.1, "auc": None}}}
    (d / "result.json").write_text(json.dumps(r))


def test_moves_are_measured_against_the_new_seed_spread_and_put_down_to_the_changed_default(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    write(old, "a", 0, 0.60, 1e-3)
    for seed, acc in enumerate([0.70, 0.72, 0.71]):  # mean 0.71, sd 0.01: +0.11 is beyond it
        write(new, "a", seed, acc, 5e-4, {"added_since": True})
    write(old, "b", 0, 0.50, 1e-3)
    for seed, acc in enumerate([0.40, 0.60, 0.50]):  # mean 0.50, sd 0.10: level
        write(new, "b", seed, acc, 1e-3)
    write(old, "encoder/sm-only", 0, 0.8, 1e-3)
    write(new, "c", 0, 0.3, 1e-3)
    lines = compare_tables.compare(compare_tables.runs(old), compare_tables.runs(new))
    row = {ln.split(" | ")[0].strip("| "): ln for ln in lines if ln.startswith("| ") and " / " in ln}
    assert "0.600 → 0.710 ± 0.010 (+0.110*)" in row["a"]
    assert "strategy.lr: 0.001 → 0.0005" in row["a"] and "added_since" not in row["a"]  # new options: no change
    assert "lm.threads" not in row["a"]  # plumbing is not a change
    assert "0.500 → 0.500 ± 0.100 (+0.000)" in row["b"] and row["b"].endswith("| none |")
    assert "| – |" in row["a"]  # an AUC absent on either side is not compared
    assert lines[-1] == "in one tree only: c (classify, new), encoder/sm-only (classify, old)"


def test_an_sm_kind_renamed_to_auto_is_not_a_change(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for where, new_kind in (("a", "auto"), ("b", "encoder")):
        write(old, where, 0, 0.6, 1e-3)
        write(new, where, 0, 0.6, 1e-3, sm_kind=new_kind)
    lines = compare_tables.compare(compare_tables.runs(old), compare_tables.runs(new))
    row = {ln.split(" | ")[0].strip("| "): ln for ln in lines if ln.startswith("| ") and " / " in ln}
    assert row["a"].endswith("| none |")  # auto builds TF-IDF for texts
    assert "sm.kind: tfidf → encoder" in row["b"]
