"""DP accounting: the achieved epsilon never exceeds the target (property test), on the accountant
alone and through a real DP-SGD run; bad DP parameters are refused."""
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from silobridge.errors import ConfigError
from silobridge.privacy.dp import DPSpec, achieved_epsilon, noise_for


@settings(max_examples=30, deadline=None)
@given(eps=st.floats(0.3, 20.0), delta_exp=st.integers(3, 7), rate=st.floats(0.005, 0.5), epochs=st.integers(1, 10))
def test_achieved_epsilon_never_exceeds_target(eps, delta_exp, rate, epochs):
    spec = DPSpec(eps, 10.0 ** -delta_exp, accountant="rdp")
    sigma = noise_for(spec, rate, epochs)
    steps = int(epochs / rate)
    assert achieved_epsilon(rate, steps, sigma, spec.delta, "rdp") <= eps * (1 + 1e-6)


# Opacus's PRV accountant fails numerically in some regimes (large epsilon with few steps:
# "Discrete mean differs significantly"); checked on typical schedules only
@pytest.mark.parametrize(("eps", "rate", "epochs"), [(1.0, 0.01, 3), (4.0, 0.04, 3), (8.0, 0.1, 5)])
def test_prv_accountant_meets_target(eps, rate, epochs):
    spec = DPSpec(eps, 1e-5, accountant="prv")
    sigma = noise_for(spec, rate, epochs)
    assert achieved_epsilon(rate, int(epochs / rate), sigma, spec.delta, "prv") <= eps * (1 + 1e-6)


@pytest.mark.parametrize("bad", [{"epsilon": 0.0}, {"epsilon": -1.0}, {"delta": 0.0}, {"delta": 1.5},
                                 {"max_grad_norm": 0.0}, {"accountant": "moments"}])
def test_bad_dp_parameters_are_refused(bad):
    kw = {"epsilon": 1.0, "delta": 1e-5} | bad
    with pytest.raises(ConfigError):
        DPSpec(**kw)


def test_dp_synthetic_reports_epsilon_within_target(small_cfg, tmp_path):
    from silobridge.bench.runner import run

    target = 3.0
    cfg = dataclasses.replace(small_cfg, strategy={"cut_bottom": 1, "cut_top": 1, "per_class": 4, "gen_epochs": 2,
                                                   "min_words": 0, "max_new_tokens": 8, "epsilon": target,
                                                   "gen_lora_top": 1, "distill_steps": 5})
    result = run("dp-synthetic", cfg, tmp_path)
    n = result["report"]["generator_layers"]
    assert result["report"]["generator_lora_layers"] == [n - 1]
    p = result["objectives"]["privacy"]
    assert 0 < p["epsilon"] <= target and p["delta"] == pytest.approx(1 / (10 * cfg.data.n_private))
    assert result["report"]["epsilon_spent"] == p["epsilon"]
    assert p["canary_hits"] == 0
    # the epsilon of the mechanism the run really ran (its noise, sample rate and steps), from a fresh
    # accountant: at most the target, and what the run reported
    m = result["report"]["dp_mechanism"]
    assert not m["seeded"] and m["steps"] > 0
    again = achieved_epsilon(m["sample_rate"], m["steps"], m["noise_multiplier"], p["delta"], "rdp")
    assert again <= target and again == pytest.approx(p["epsilon"], rel=1e-6)


def test_dp_synthetic_target_epsilon_must_be_positive(small_cfg, tmp_path):
    from silobridge.bench.runner import run

    with pytest.raises(ConfigError, match="strategy.epsilon"):
        run("dp-synthetic", dataclasses.replace(small_cfg, strategy={"epsilon": 0}), tmp_path)


def test_dp_sgd_on_the_top_layers_trains_only_them(tiny_lm_dir):
    """``gen_lora_top``'s mechanism: LoRA on the top layer only; DP-SGD moves those adapters and no
    other parameter (the frozen layers below need no gradient, which is what makes it faster)."""
    import torch

    from silobridge.models.lm import load_lm
    from silobridge.models.lora import LoraSpec, add_lora
    from silobridge.models.dp_train import dp_train_causal

    lm = load_lm(tiny_lm_dir, dtype="float32")
    top = len(lm.model.model.layers) - 1
    gen = add_lora(lm.model, [top], LoraSpec(r=4, alpha=8))
    before = {n: p.detach().clone() for n, p in gen.named_parameters()}
    assert all(f"layers.{top}." in n for n, p in gen.named_parameters() if p.requires_grad)
    run = dp_train_causal(gen, lm, [f"record number {i} says hello" for i in range(40)],
                          DPSpec(8.0, 1e-3), lr=1e-2, epochs=1, batch_size=8, max_len=16)
    moved = {n for n, p in gen.named_parameters() if not torch.equal(p, before[n])}
    assert moved and all("lora_" in n and f"layers.{top}." in n for n in moved)
    assert run.losses and 0 < run.epsilon <= 8.0


def _dp_adapters(tiny_lm_dir, noise_seed, epsilon=8.0, epochs=1, batch_size=8):
    from silobridge.models.lm import load_lm
    from silobridge.models.lora import LoraSpec, add_lora
    from silobridge.models.dp_train import dp_train_causal

    lm = load_lm(tiny_lm_dir, dtype="float32")
    gen = add_lora(lm.model, [len(lm.model.model.layers) - 1], LoraSpec(r=4, alpha=8))
    run = dp_train_causal(gen, lm, [f"record number {i} says hello" for i in range(40)], DPSpec(epsilon, 1e-3),
                          lr=1e-2, epochs=epochs, batch_size=batch_size, max_len=16, noise_seed=noise_seed)
    return [p.detach().clone() for n, p in gen.named_parameters() if "lora_" in n], run


def test_dp_noise_is_secret_unless_seeded(tiny_lm_dir):
    """By default sampling and noise come from the OS CSPRNG (two runs differ); a seed reproduces a run."""
    import torch

    a, _ = _dp_adapters(tiny_lm_dir, None)
    b, _ = _dp_adapters(tiny_lm_dir, None)
    assert not all(torch.equal(x, y) for x, y in zip(a, b))
    c, _ = _dp_adapters(tiny_lm_dir, 7)
    d, _ = _dp_adapters(tiny_lm_dir, 7)
    assert all(torch.equal(x, y) for x, y in zip(c, d))


@pytest.mark.parametrize(("eps", "epochs", "batch_size"), [(1.0, 1, 4), (8.0, 3, 16)])
def test_dp_sgd_spends_at_most_its_target_on_the_mechanism_it_ran(tiny_lm_dir, eps, epochs, batch_size):
    """The epsilon of DP-SGD's real schedule (its noise multiplier, Poisson sample rate and the noised
    steps it took), recomputed by a fresh accountant, stays under the target."""
    _, run = _dp_adapters(tiny_lm_dir, None, eps, epochs, batch_size)
    assert run.sample_rate == pytest.approx(1 / -(-40 // batch_size)) and run.steps > 0  # Opacus: 1 / batches
    assert achieved_epsilon(run.sample_rate, run.steps, run.noise_multiplier, 1e-3) <= eps * (1 + 1e-6)
