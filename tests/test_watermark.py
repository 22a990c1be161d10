"""Green-list watermarking of the model party's generated text: the detector tells watermarked from plain
text (generation strategies and the OpenAI-compatible completion path alike), and a `synthetic` run reports
which of the texts the data party received its LM owner can detect."""
import dataclasses

import numpy as np

from silobridge.bench.runner import run
from silobridge.configs import apply_overrides, from_dict, to_dict
from silobridge.models.completion import complete
from silobridge.models.generate import generate
from silobridge.models.lm import load_lm
from silobridge.privacy.watermark import Detector, watermarking, with_watermark, z_threshold
from silobridge.settings import LMConfig, RunConfig

from test_synthetic import LOOSE


def test_detector_separates_watermarked_from_plain_text(tiny_lm_dir):
    lm = load_lm(str(tiny_lm_dir), 1, "float32", "cpu")
    prompts = [f"Write review number {i}:" for i in range(6)]
    plain = generate(lm, prompts, max_new_tokens=48, seed=0)
    cfg = LMConfig(watermark=True)
    with_watermark(lm, cfg)
    marked = generate(lm, prompts, max_new_tokens=48, seed=0)
    det = Detector(lm, watermarking(cfg))
    z_marked, z_plain = det.z(marked), det.z(plain)
    assert np.all(z_marked > 4), z_marked  # the tiny LM's near-flat logits: the bias decides most tokens
    assert np.all(np.abs(z_plain) < 4), z_plain
    assert np.mean(det.z(marked, max_tokens=8)) < np.mean(z_marked)  # evidence grows with length
    ids = [lm.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    served = [lm.tokenizer.decode(c.token_ids) for c in complete(lm, ids, 48, temperature=1.0, seed=1)]
    assert np.mean(det.z(served)) > 4  # the OpenAI-compatible completion path watermarks too
    other = Detector(lm, watermarking(LMConfig(watermark=True, watermark_key=7)))
    assert np.all(np.abs(other.z(marked)) < 4)  # without the key nothing is detected
    assert abs(z_threshold(3.17e-5) - 4.0) < 0.01


def test_synthetic_run_reports_the_watermark(small_cfg, tmp_path):
    cfg = from_dict(RunConfig, apply_overrides(to_dict(small_cfg), ["lm.watermark=true"]))
    cfg = dataclasses.replace(cfg, strategy=LOOSE | {"max_new_tokens": 32})  # 12 tokens are too few to tell
    r = run("synthetic", cfg, tmp_path / "marked")
    wm = r["report"]["watermark"]
    assert wm["generated"] == r["report"]["generated"] == 16 and wm["plain"] == 16
    assert r["objectives"]["model_leakage"]["watermark_detected"] == wm["whole"]["generated_detected"] >= 0.5
    assert wm["whole"]["plain_flagged"] <= 0.0625 and wm["whole"]["plain_mean_z"] < 2
    plain = run("synthetic", dataclasses.replace(small_cfg, strategy=LOOSE), tmp_path / "plain")
    assert plain["objectives"]["model_leakage"]["watermark_detected"] is None and "watermark" not in plain["report"]
