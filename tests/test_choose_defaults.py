"""The rule that turns a validation grid into a default (benchmarks/choose_defaults.py)."""
import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("choose_defaults",
                                              Path(__file__).parents[1] / "benchmarks" / "choose_defaults.py")
choose_defaults = importlib.util.module_from_spec(spec)
spec.loader.exec_module(choose_defaults)


def test_cheapest_within_the_best_sd_is_chosen():
    # per task, per seed; a = best by a hair at three times the cost of b; c is clearly worse and cheapest
    seed_scores = {"a": [[0.60, 0.62, 0.64], [0.50, 0.52, 0.54]],
                   "b": [[0.61, 0.61, 0.62], [0.50, 0.51, 0.52]],
                   "c": [[0.40, 0.41, 0.42], [0.30, 0.31, 0.32]]}
    cost = {"a": 300.0, "b": 100.0, "c": 50.0}
    best, chosen, tol = choose_defaults.choose(seed_scores, cost)
    assert best == "a" and chosen == "b"
    assert abs(tol - 0.02) < 1e-9  # the sd over seeds of a's task-averaged score (0.55, 0.57, 0.59)


def test_clear_winner_is_kept_even_if_dearer():
    seed_scores = {"a": [[0.80, 0.80, 0.81]], "b": [[0.60, 0.61, 0.60]]}
    best, chosen, _ = choose_defaults.choose(seed_scores, {"a": 900.0, "b": 1.0})
    assert best == chosen == "a"


def test_ties_on_tokens_fall_to_the_better_score():
    # equal LM tokens: run wall time (measured on a shared CPU) is not a cost; the better of the tied wins
    seed_scores = {"a": [[-50.0, -48.0, -49.0]], "b": [[-49.5, -48.5, -49.2]], "c": [[-49.1, -48.4, -49.0]]}
    best, chosen, _ = choose_defaults.choose(seed_scores, {"a": 0.0, "b": 0.0, "c": 0.0})
    assert best == chosen == "c"
    _, chosen, _ = choose_defaults.choose(seed_scores, {"a": 0.0, "b": 0.0, "c": 5.0})  # c tied but dearer
    assert chosen == "a"  # a: -49.0 mean, b: -49.07
    _, chosen, _ = choose_defaults.choose(seed_scores, {"a": 1000.0, "b": 1000.0, "c": 1050.0})
    assert chosen == "c"  # 5 % more tokens (texts of other lengths) is no dearer


def test_values_are_candidate_positions_checked_against_the_grid():
    def error(msg):
        raise SystemExit(msg)

    assert choose_defaults.positions_of("", 4, error, "s") == [0, 1, 2, 3]
    assert choose_defaults.positions_of("3,1", 4, error, "s") == [3, 1]
    for bad, says in (("4", "s has candidates 0 to 3"), ("-1", "0 to 3"), ("a,1", "a comma list of candidate")):
        try:
            choose_defaults.positions_of(bad, 4, error, "s")
        except SystemExit as exc:
            assert says in str(exc) and f"--values {bad}" in str(exc)
        else:
            raise AssertionError(f"--values {bad} was accepted")
