"""Tracked loops are timed per phase, so a result says where a run's time went."""
import time

from silobridge import progress


def test_phases_add_up_by_description_without_counters():
    progress.reset_phases()
    for epoch in (1, 2):
        for _ in progress.track(range(2), f"DP-SGD epoch {epoch}/2"):
            time.sleep(0.01)
    for _ in progress.track(range(1), "sampling"):
        time.sleep(0.01)
    phases = progress.phase_seconds()
    assert set(phases) == {"DP-SGD epoch", "sampling"}
    assert phases["DP-SGD epoch"] >= 0.04 and phases["sampling"] >= 0.01
    assert phases["DP-SGD epoch"] < 5


def test_a_loop_left_early_is_still_timed():
    progress.reset_phases()
    for i in progress.track(range(100), "scoring"):
        time.sleep(0.01)
        if i == 2:
            break
    assert progress.phase_seconds()["scoring"] >= 0.03
    progress.reset_phases()
    assert progress.phase_seconds() == {}
