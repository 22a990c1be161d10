"""lm.dtype / lm.device: how 'auto' resolves, clear errors, and every LM path in bfloat16 on tiny models."""
import dataclasses

import pytest
import torch

from silobridge.bench.runner import run
from silobridge.errors import ConfigError
from silobridge.models import device as dev
from silobridge.settings import TaskKind


def test_auto_is_float32_on_a_cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: False)
    assert dev.resolve("auto", "cpu") == (torch.device("cpu"), torch.float32)
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: True)
    assert dev.resolve("auto", "cpu") == (torch.device("cpu"), torch.bfloat16)
    assert dev.resolve("float32", "cpu")[1] == torch.float32  # an explicit choice wins


def test_cpu_flags_are_read_from_cpuinfo(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    for flags, native in (("fpu sse avx512f", False), ("fpu avx512f avx512_bf16", True), ("fpu amx_bf16", True)):
        (tmp_path / "cpuinfo").write_text(f"processor : 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(tmp_path / "cpuinfo", *a, **k)
                            if p == "/proc/cpuinfo" else real_open(p, *a, **k))
        dev.cpu_has_bf16.cache_clear()
        assert dev.cpu_has_bf16() is native
    monkeypatch.setattr(builtins, "open", real_open)
    dev.cpu_has_bf16.cache_clear()


def test_bad_choices_are_clear_errors():
    with pytest.raises(ConfigError, match="float16 is for GPUs"):
        dev.resolve("float16", "cpu")
    with pytest.raises(ConfigError, match="unknown dtype"):
        dev.resolve("int4", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            dev.resolve("auto", "cuda")


def test_config_refuses_unknown_values():
    from silobridge.settings import LMConfig

    with pytest.raises(ConfigError, match="lm.dtype"):
        LMConfig(dtype="fp8")
    with pytest.raises(ConfigError, match="lm.device"):
        LMConfig(device="tpu")


def with_dtype(cfg, dtype, **strategy):
    return dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, dtype=dtype), strategy=strategy)


def test_lm_zero_shot_in_each_dtype_agrees_closely(small_cfg, tmp_path):
    full = run("lm-zero-shot", with_dtype(small_cfg, "float32"), tmp_path / "f32")
    half = run("lm-zero-shot", with_dtype(small_cfg, "bfloat16"), tmp_path / "bf16")
    assert full["env"]["model_party"]["dtype"] == "float32" and half["env"]["model_party"]["dtype"] == "bfloat16"
    assert half["env"]["data_party"]["dtype"] == "bfloat16"
    uf, uh = full["objectives"]["utility"], half["objectives"]["utility"]
    assert abs(uf["perplexity"] - uh["perplexity"]) / uf["perplexity"] < 0.05
    assert abs(uf["accuracy"] - uh["accuracy"]) <= 0.1


# every other LM path in bfloat16: distillation and LoRA on the emulator, adapters plugged into the LM,
# LoRA tuning of the LM, generation, DP-SGD (Opacus) on a bf16 generator
BF16 = {"offsite-tuning": {"distill_steps": 3},
        "reverse-distill": {},
        "synthetic": {"per_class": 2, "max_new_tokens": 8, "agreement_keep": 1.0, "min_words": 1, "noise_seed": 0},
        "dp-synthetic": {"cut_bottom": 1, "cut_top": 1, "distill_steps": 2, "per_class": 4, "gen_epochs": 1,
                         "min_words": 0, "max_new_tokens": 8}}


@pytest.mark.parametrize("name", sorted(BF16))
def test_every_lm_path_runs_in_bfloat16(name, small_cfg, tmp_path):
    r = run(name, with_dtype(small_cfg, "bfloat16", **BF16[name]), tmp_path)
    assert r["env"]["model_party"]["dtype"] == "bfloat16"
    assert 0 <= r["objectives"]["utility"]["accuracy"] <= 1
    if name != "synthetic":
        assert r["objectives"]["utility"]["perplexity"] > 1


def test_emulator_of_a_bf16_lm_carries_exact_float32_copies(small_cfg, tmp_path):
    cfg = with_dtype(small_cfg, "bfloat16", distill_steps=2, bottom=1, top=1, stride=2)
    cfg = dataclasses.replace(cfg, task=TaskKind.DOMAIN_LM)
    leak = run("emulator", cfg, tmp_path)["objectives"]["model_leakage"]
    assert 0 < leak["lm_param_share_exact"] <= leak["lm_param_share_declared"] < 1


def test_frozen_heads_get_contiguous_input(tiny_lm_dir):
    """The head's input is made contiguous (torch's slow path for a strided slice and a frozen weight),
    for the loaded LM, after PEFT freezes it, and in a copy (an emulator)."""
    import copy

    from silobridge.models.lm import load_lm
    from silobridge.models.lora import LoraSpec, add_lora

    lm = load_lm(tiny_lm_dir, dtype="float32")
    peft = add_lora(lm.model, None, LoraSpec())
    for model in (peft, copy.deepcopy(peft)):
        seen = []
        head = model.get_output_embeddings()
        assert not head.weight.requires_grad  # frozen: the case torch handles slowly
        handle = head.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous()))
        with torch.no_grad():
            model(input_ids=torch.tensor([[1, 2, 3, 4]] * 2), logits_to_keep=1)
        handle.remove()
        assert seen == [True]


def test_auto_keeps_float32_for_a_strategy_bf16_hurts(small_cfg, tmp_path, monkeypatch):
    """A strategy marked ``auto_float32`` runs its LMs in float32 under lm.dtype=auto even on a bf16 CPU;
    its config (and digest) still says auto, and an explicit bfloat16 is obeyed."""
    from silobridge.strategies import get

    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(get("lm-zero-shot"), "auto_float32", True)
    auto = run("lm-zero-shot", with_dtype(small_cfg, "auto"), tmp_path / "auto")
    assert auto["env"]["model_party"]["dtype"] == "float32" and auto["env"]["data_party"]["dtype"] == "float32"
    assert auto["config"]["lm"]["dtype"] == "auto"
    asked = run("lm-zero-shot", with_dtype(small_cfg, "bfloat16"), tmp_path / "bf16")
    assert asked["env"]["model_party"]["dtype"] == "bfloat16"


def test_bf16_attention_is_eager_for_short_inputs_and_sdpa_for_long(tiny_lm_dir):
    """A bf16 LM on a CPU loads with the by-length attention: a 20-token batch computes exactly as eager
    attention does, a 300-token one exactly as SDPA (on the same float mask)."""
    from silobridge.models.attention import BY_LENGTH, LONG
    from silobridge.models.lm import load_lm

    lm = load_lm(tiny_lm_dir, dtype="bfloat16", device="cpu")
    assert lm.model.config._attn_implementation == BY_LENGTH
    g = torch.Generator().manual_seed(0)
    for width, same_as in ((20, "eager"), (LONG + 44, "sdpa")):
        ids = torch.randint(5, 200, (3, width), generator=g)
        mask = torch.ones_like(ids)
        mask[0, :width // 3] = 0  # left padding, as label scoring runs it
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        outs = {}
        for attn in (BY_LENGTH, "eager", "sdpa"):
            lm.model.set_attn_implementation(attn)
            with torch.no_grad():
                outs[attn] = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1].float()
        assert torch.equal(outs[BY_LENGTH], outs[same_as]), width
        assert not torch.equal(outs["eager"], outs["sdpa"])  # in bf16 the two round differently: a real choice
    lm.model.set_attn_implementation(BY_LENGTH)
