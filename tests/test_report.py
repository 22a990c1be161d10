"""`silobridge report` on real (tiny) runs, opened in a real headless browser (Debian's chromium with its
chromedriver, driven by selenium; no browser download): no console error, every plot renders, a table row
per strategy. The screenshot is kept under test-artifacts/."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from silobridge.bench.report import load_runs, render
from silobridge.bench.runner import run
from silobridge.cli.main import app
from silobridge.errors import DataError

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_lm_dir):
    from silobridge.configs import apply_overrides, from_dict
    from silobridge.settings import RunConfig
    from conftest import SMALL

    root = tmp_path_factory.mktemp("runs")
    cfg = from_dict(RunConfig, apply_overrides({}, SMALL + [f"lm.path={tiny_lm_dir}"]))
    for name, seed in [("sm-only", 0), ("sm-only", 1), ("lm-zero-shot", 0), ("distill-public", 0)]:
        run(name, dataclasses.replace(cfg, seed=seed), root / name / f"seed{seed}")
    return root


def test_report_is_self_contained(runs_dir):
    page = render(load_runs([runs_dir]))
    assert "<script" in page and "cdn." not in page.split("</script>", 1)[1]  # plotly inlined, nothing fetched
    assert page.count('class="plot"') == 5  # four fronts + what crossed


def test_report_names_a_bad_input(tmp_path):
    with pytest.raises(DataError, match="no finished runs"):
        load_runs([tmp_path])
    (tmp_path / "result.json").write_text("{broken")
    with pytest.raises(DataError, match="cannot read a result"):
        load_runs([tmp_path])


@pytest.mark.skipif(not (CHROMIUM and DRIVER),
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_report_renders_in_a_headless_browser(runs_dir, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    out = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", str(runs_dir), "--out", str(out), "--weights", "bytes=0.3"])
    assert res.exit_code == 0, res.output
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,3000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    try:
        driver.get(out.as_uri())
        plots = driver.find_elements(By.CSS_SELECTOR, ".plot .js-plotly-plot")
        assert len(plots) == 5
        for p in plots:  # rendered: plotly drew its SVG layers and at least one trace
            assert p.find_elements(By.CSS_SELECTOR, "svg.main-svg")
            assert p.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace, .barlayer .trace")
        rows = driver.find_elements(By.CSS_SELECTOR, "table.objectives tbody tr")
        names = {r.find_elements(By.TAG_NAME, "td")[0].text for r in rows}
        assert names == {"sm-only", "lm-zero-shot", "distill-public"}
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, json.dumps(errors)[:500]
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "report.png"))
    finally:
        driver.quit()
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_plan_from_the_cli(runs_dir, tmp_path):
    r = CliRunner().invoke(app, ["plan", "--runs", str(runs_dir), "--local-inference", "--data", "my data.csv"])
    assert r.exit_code == 0, r.output
    assert "excluded lm-zero-shot:" in r.output and "queries are sent to the LM" in r.output
    assert "run the winner: silobridge run" in r.output and "--data 'my data.csv'" in r.output  # one argument
    none = CliRunner().invoke(app, ["plan", "--runs", str(runs_dir), "--max-bytes", "0", "--min-utility", "2"])
    assert none.exit_code == 1 and "no measured strategy meets every constraint" in none.output
    missing = CliRunner().invoke(app, ["plan"])
    assert missing.exit_code == 2 and "--pilot" in missing.output
    c = tmp_path / "c.toml"
    c.write_text("max_epsilon = -1\n")
    bad = CliRunner().invoke(app, ["plan", "--runs", str(runs_dir), "--constraints", str(c)])
    assert bad.exit_code == 2 and "max-epsilon" in bad.output


def test_the_default_table_reads_in_80_columns(runs_dir):
    from rich.console import Console

    from silobridge.cli.main import result_table

    results = [r for _, r in load_runs([runs_dir])]
    console = Console(width=80, record=True, color_system=None)
    console.print(result_table(results))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    for name in ("sm-only", "lm-zero-shot", "distill-public"):
        assert name in text
    wide = Console(width=300, record=True, color_system=None)
    wide.print(result_table(results, wide=True))
    assert "peak MB" in wide.export_text()


def test_demo_tells_the_story(tmp_path, tiny_lm_dir):
    from conftest import SMALL

    args = ["demo", "--out", str(tmp_path / "demo")]
    for s in SMALL + [f"lm.path={tiny_lm_dir}", "strategy.per_class=4", "strategy.max_new_tokens=16",
                      "strategy.noise_seed=0"]:
        args += ["--set", s]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert any(x.startswith("Test accuracy: sm-only (the data party alone)") for x in lines)
    assert any(x.startswith("Across the boundary: ") for x in lines) and any(x.startswith("Cost: ") for x in lines)
    assert (tmp_path / "demo" / "report.html").stat().st_size > 100_000


def test_bench_shows_live_progress(small_cfg, tmp_path):
    from silobridge.bench.suite import bench

    events = []
    results, failures = bench(["lm-zero-shot"], [0], small_cfg, tmp_path,
                              on_event=lambda *e: events.append(e), live=True)
    assert not failures and results
    shown = [d for kind, _, _, d in events if kind == "progress"]
    assert shown and all(d.endswith("/s") for d in shown)  # 'LM scoring inference 7/7, 12.3/s'
    assert not (tmp_path / "lm-zero-shot" / "seed0" / "status.txt").exists()


def test_plan_runs_a_bounded_pilot_when_nothing_is_measured(tmp_path, tiny_lm_dir):
    from conftest import SMALL

    args = ["plan", "--pilot", "--pilot-minutes", "0", "--pilot-out", str(tmp_path / "pilot")]
    for s in SMALL + [f"lm.path={tiny_lm_dir}"]:
        args += ["--set", s]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "not starting lm-zero-shot and the rest" in r.output  # the bound: nothing starts after 0 minutes
    assert "run the winner: silobridge run sm-only" in r.output and "from a pilot" in r.output


def test_a_label_budget_sweep_gets_its_curves(runs_dir):
    import copy

    runs = load_runs([runs_dir])
    swept = []
    for where, r in runs:  # the same runs as if measured at a second budget too
        r2 = copy.deepcopy(r)
        r2["config"]["data"]["n_private"] = 20
        swept += [(where, r), (where, r2)]
    page = render(swept)
    assert "label-budget curves" in page and page.count('class="plot"') == 6
    assert "sm-only @20 labels" in page and "sm-only @40 labels" in page
