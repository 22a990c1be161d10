"""split learning: the release mechanism (clipping, Gaussian noise at the stated sigma) on the activations
that really crossed, raw texts never crossing, the per-release epsilon, and the inversion attacks on
cases with a known answer."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from silobridge.bench import runner
from silobridge.bench.audit import Auditor
from silobridge.bench.runner import load_splits, run
from silobridge.errors import BoundaryError, ConfigError, DataError
from silobridge.privacy.inversion import (fit_linear_inverter, gaussian_epsilon, nearest_embedding,
                                          per_release_epsilon, recovery)
from silobridge.privacy.noise import numpy_rng
from silobridge.privacy.prototypes import classic_gaussian_sigma, gaussian_delta
from silobridge.strategies.split.audit import invert, released_batches, token_ids
from silobridge.strategies.split.blocks import (bottom_weights, clip_examples, encode, pack, pad, rebuild_bottom,
                                                release, unpack)
from silobridge.strategies.split.config import SplitConfig


class Recorder(Auditor):
    """The auditor, also keeping every carrier and payload that crossed."""

    crossed: list = []

    def __call__(self, entry, carrier, payload):
        Recorder.crossed.append((entry, carrier, payload))
        super().__call__(entry, carrier, payload)


def recorded_run(cfg, options, tmp_path, monkeypatch):
    Recorder.crossed = []
    monkeypatch.setattr(runner, "Auditor", Recorder)
    result = run("split", dataclasses.replace(cfg, strategy=options), tmp_path)
    return result, list(Recorder.crossed)


def sent(crossed, op):
    return [c.values for e, c, _ in crossed if e.op == op and e.sender == "data"]


@pytest.fixture(scope="module")
def tiny_lm(tiny_lm_dir):
    from silobridge.models.lm import load_lm

    return load_lm(tiny_lm_dir, dtype="float32", device="cpu")


def test_release_clips_each_example_and_adds_noise_of_the_stated_sigma():
    torch.manual_seed(0)
    h = torch.randn(64, 12, 8) * torch.linspace(0.1, 3, 64)[:, None, None]
    mask = torch.ones(64, 12, dtype=torch.long)
    mask[::2, 9:] = 0  # some texts shorter: their padding counts for nothing
    clipped, norms = clip_examples(h, mask, clip=4.0)
    after = clipped.flatten(1).norm(dim=1)
    assert (after <= 4.0 * (1 + 1e-6)).all()
    over = norms > 4.0
    assert over.any() and (~over).any()
    assert torch.allclose(after[over], torch.full_like(after[over], 4.0))
    assert torch.allclose(clipped[~over], (h * mask[..., None])[~over])  # under the clip: untouched
    assert (clipped[mask == 0] == 0).all()
    noisy, _ = release(h, mask, 4.0, 0.5, numpy_rng(7))
    diff = (noisy - clipped).numpy()
    assert abs(diff.std() - 0.5) < 0.02 and abs(diff.mean()) < 0.02
    again, _ = release(h, mask, 4.0, 0.5, numpy_rng(7))
    assert torch.equal(noisy, again)  # seeded: reproducible (tests only)


def test_crossing_activations_are_clean_embeddings_plus_noise(small_cfg, tiny_lm, tiny_lm_dir, tmp_path, monkeypatch):
    """cut 0: what crossed for the test texts is each text's clipped embeddings plus N(0, sigma^2), sigma =
    noise_std * clip, with the mask of its tokens; the test texts themselves never crossed."""
    from transformers import AutoTokenizer

    opts = {"cut_layer": 0, "clip": 1.0, "noise_std": 0.5, "noise_seed": 3, "max_tokens": 16, "epochs": 1}
    result, crossed = recorded_run(small_cfg, opts, tmp_path, monkeypatch)
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    test = load_splits(small_cfg).test.texts
    emb = tiny_lm.model.get_input_embeddings().weight.detach()
    batches = sent(crossed, "forward")
    c = SplitConfig(**opts)
    assert len(batches) == math.ceil(len(test) / c.batch_size)
    diffs = []
    for i, values in enumerate(batches):
        ids, mask = pad(encode(tok, test[i * c.batch_size:(i + 1) * c.batch_size], c.max_tokens), 0)
        clean, _ = clip_examples(emb[ids], mask, c.clip)
        acts, got_mask = unpack(values, emb.shape[1], c.max_tokens, c.batch_size, "test")
        assert np.array_equal(got_mask, mask.numpy())
        diffs.append((acts - clean.numpy()).ravel())
    d = np.concatenate(diffs)
    assert abs(d.std() - 0.5) < 0.02 and abs(d.mean()) < 0.02  # the stated sigma, and no bias
    # raw texts never cross: no text carrier, no text item, no test or private text in any payload
    out = [(e, carrier, payload) for e, carrier, payload in crossed if e.sender == "data"]
    assert {carrier.kind for _, carrier, _ in out} == {"config", "activations"}
    assert not any(carrier.texts() for _, carrier, _ in out)
    records = [t for t in test + load_splits(small_cfg).private.texts if len(t) >= 24]
    assert records and not any(t[:24].encode() in payload for _, _, payload in out for t in records)
    p = result["objectives"]["privacy"]
    assert p["raw_record_hits"] == 0 and p["canary_hits"] == 0 and p["epsilon"] is None
    assert "inference_records" not in p["exposures"]
    assert p["exposures"]["inference_activations"] == {"carriers": len(batches), "texts": 0, "records": 0,
                                                       "bytes": p["exposures"]["inference_activations"]["bytes"]}
    assert set(p["exposures"]) == {"lm_weights", "private_activations", "private_gradients", "inference_activations"}
    r = result["report"]
    assert r["per_example_per_release"]["sigma"] == 0.5 and r["per_example_per_release"]["sensitivity"] == 2.0
    assert r["per_example_per_release"]["epsilon"] == gaussian_epsilon(0.5, 2.0, 1e-5)
    assert result["objectives"]["model_leakage"]["lm_param_share_declared"] == r["lm_param_share"] > 0
    # the auditor's inversion of what crossed: this much noise leaves the attacker near chance
    inv = r["inversion"]
    assert inv["positions"] == sum(len(s) for s in encode(tok, test, c.max_tokens))
    assert p["token_recovery"] == inv["recovery"] == max(inv["linear_recovery"], inv["nearest_embedding_recovery"])
    assert inv["recovery"] < inv["chance"] + 0.05
    # cut 0: no gradient goes back to a data party with nothing to train
    assert all(c.values.size == 0 for e, c, _ in crossed if e.op == "backward.reply")


def test_clipping_bounds_every_crossing_example(small_cfg, tmp_path, monkeypatch):
    """cut 2, no noise, a clip below every example's norm: every crossing example has norm exactly clip."""
    opts = {"cut_layer": 2, "clip": 0.05, "noise_std": 0.0, "max_tokens": 16, "epochs": 1}
    no_attack = dataclasses.replace(small_cfg, audit=dataclasses.replace(small_cfg.audit, inversion=False))
    result, crossed = recorded_run(no_attack, opts, tmp_path, monkeypatch)
    assert "inversion" not in result["report"] and result["objectives"]["privacy"]["token_recovery"] is None
    batches = sent(crossed, "train_forward") + sent(crossed, "forward")
    assert len(batches) > 2
    for values in batches:
        norms = np.linalg.norm(values[..., :-1].reshape(len(values), -1), axis=1)
        assert np.allclose(norms, 0.05, rtol=1e-5)
    r = result["report"]
    assert r["clipped_share"] == 1.0 and r["per_example_per_release"]["epsilon"] is None  # no noise: no bound
    # what the data party's blocks received back: a gradient per crossing activation (LoRA on both sides)
    grads = [c.values for e, c, _ in crossed if e.op == "backward.reply"]
    assert [g.shape for g in grads] == [v[..., :-1].shape for v in sent(crossed, "train_forward")]


def test_the_auditor_inverts_unnoised_embeddings_exactly(small_cfg, tiny_lm, tiny_lm_dir, tmp_path):
    """cut 0, no noise: what crosses for the test texts is their clipped embeddings, so the auditor's
    nearest-embedding attack recovers every token, and the result says so."""
    opts = {"cut_layer": 0, "clip": 1.0, "noise_std": 0.0, "max_tokens": 16, "epochs": 1}
    result = run("split", dataclasses.replace(small_cfg, strategy=opts), tmp_path)
    inv = result["report"]["inversion"]
    assert inv["nearest_embedding_recovery"] == 1.0 == result["objectives"]["privacy"]["token_recovery"]
    assert inv["linear_recovery"] > inv["chance"] and inv["attack_texts"] == min(64, result["splits"]["public"])
    assert result["objectives"]["compute"]["audit_seconds"] > 0


def test_gaussian_epsilon_inverts_the_analytic_delta():
    eps = gaussian_epsilon(sigma=2.0, sensitivity=2.0, delta=1e-5)
    assert math.isclose(gaussian_delta(eps, 2.0, 2.0), 1e-5, rel_tol=1e-3)
    assert gaussian_delta(eps * 0.99, 2.0, 2.0) > 1e-5  # the smallest such epsilon
    sigma = classic_gaussian_sigma(0.5, 1e-5, 3.0)  # the classic bound is looser than the analytic one
    assert gaussian_epsilon(sigma, 3.0, 1e-5) < 0.5
    assert gaussian_epsilon(0.0, 1.0, 1e-5) == math.inf
    stated = per_release_epsilon(noise_std=1.0, clip=10.0, delta=1e-5)
    assert stated["sensitivity"] == 20.0 and stated["sigma"] == 10.0
    assert stated["epsilon"] == gaussian_epsilon(10.0, 20.0, 1e-5)  # depends on noise_std alone
    assert per_release_epsilon(0.0, 10.0, 1e-5)["epsilon"] is None


def test_nearest_embedding_and_linear_inverter_known_answers():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(500, 16))
    ids = rng.integers(0, 500, 2000)
    assert recovery(nearest_embedding(3.7 * emb[ids], emb), ids) == 1.0  # scaling (clipping) changes nothing
    assert recovery(nearest_embedding(emb[ids] + rng.normal(0, 30, (2000, 16)), emb), ids) < 0.01
    few = rng.integers(0, 8, 3000)  # 8 tokens in 16 dimensions: linearly decodable exactly
    inv = fit_linear_inverter(emb[few], few)
    assert recovery(inv.predict(emb[few[:500]]), few[:500]) == 1.0
    with pytest.raises(DataError, match="do not pair up"):
        fit_linear_inverter(emb[few], few[:10])


@pytest.mark.parametrize("cut", [0, 2])
def test_inversion_of_crossing_activations_on_the_tiny_lm(cut, tiny_lm, small_cfg):
    """No noise: the attacker recovers the tokens (exactly by nearest embedding at cut 0; the linear
    inverter far above chance at both cuts); noise_std 1: near chance."""
    splits = load_splits(small_cfg)
    tok, bottom = rebuild_bottom(bottom_weights(tiny_lm, cut))
    public, target = splits.public[:40], splits.test.texts[:20]
    found = {}
    for noise_std in (0.0, 1.0):
        crossed = released_batches(bottom, tok, target, 1.0, noise_std * 1.0, 32, 16, numpy_rng(1))
        found[noise_std] = invert(bottom, tok, public, crossed, token_ids(tok, target, 32), clip=1.0,
                                  noise_std=noise_std, max_tokens=32, cut_layer=cut, seed=2)
    clean, noisy = found[0.0], found[1.0]
    assert clean["linear_recovery"] > 4 * clean["chance"]
    assert noisy["linear_recovery"] < noisy["chance"] + 0.03
    if cut == 0:
        assert clean["nearest_embedding_recovery"] == 1.0 and noisy["nearest_embedding_recovery"] < 0.01
    else:
        assert clean["nearest_embedding_recovery"] is None


def test_split_refuses_bad_options_and_malformed_batches(tiny_lm):
    with pytest.raises(ConfigError, match="strategy.pool"):
        SplitConfig(pool="max")
    with pytest.raises(ConfigError, match="strategy.noise_std"):
        SplitConfig(noise_std=-1)
    with pytest.raises(BoundaryError, match="the model party would keep none"):
        bottom_weights(tiny_lm, 5)
    good = pack(torch.zeros(2, 3, 4), torch.tensor([[1, 1, 0], [1, 1, 1]]))
    assert unpack(good, 4, 8, 2, "t")[1].tolist() == [[1, 1, 0], [1, 1, 1]]
    holey = pack(torch.zeros(1, 3, 4), torch.tensor([[1, 0, 1]]))
    with pytest.raises(BoundaryError, match="right-padded"):
        unpack(holey, 4, 8, 2, "t")
    with pytest.raises(BoundaryError, match="at most 1 texts"):
        unpack(good, 4, 8, 1, "t")
