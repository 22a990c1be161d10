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
                                                   "gen_lora_top": 1})
    result = run("dp-synthetic", cfg, tmp_path)
    n = result["report"]["generator_layers"]
    assert result["report"]["generator_lora_layers"] == [n - 1]
    p = result["objectives"]["privacy"]
    assert 0 < p["epsilon"] <= target and p["delta"] == pytest.approx(1 / (10 * cfg.data.n_private))
    assert result["report"]["epsilon_spent"] == p["epsilon"]
    assert p["canary_hits"] == 0


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
    from silobridge.privacy.dp import dp_train_causal

    lm = load_lm(tiny_lm_dir, dtype="float32")
    top = len(lm.model.model.layers) - 1
    gen = add_lora(lm.model, [top], LoraSpec(r=4, alpha=8))
    before = {n: p.detach().clone() for n, p in gen.named_parameters()}
    assert all(f"layers.{top}." in n for n, p in gen.named_parameters() if p.requires_grad)
    losses, eps = dp_train_causal(gen, lm, [f"record number {i} says hello" for i in range(40)],
                                  DPSpec(8.0, 1e-3), lr=1e-2, epochs=1, batch_size=8, max_len=16)
    moved = {n for n, p in gen.named_parameters() if not torch.equal(p, before[n])}
    assert moved and all("lora_" in n and f"layers.{top}." in n for n in moved)
    assert losses and 0 < eps <= 8.0
