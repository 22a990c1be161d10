"""Emulators, LoRA adapters moving from an emulator to its LM, perplexity, int8 transport."""
import numpy as np
import pytest
import torch

from silobridge.errors import ConfigError, ModelError
from silobridge.models.causal import (EmulatorPlan, _encode, _pad, _Teacher, build_emulator, dequantize_int8,
                                      distill_emulator, n_layers, n_params, perplexity, quantize_int8)
from silobridge.models.lm import load_lm
from silobridge.models.lora import LoraSpec, add_lora, export_adapters, plug_adapters, train_causal

TEXTS = ["this tea tastes great and arrives fresh every time", "the cookies were stale and broken",
         "my dog loves these treats so much", "too salty for my taste, would not buy again"] * 3


@pytest.fixture
def lm(tiny_lm_dir):
    return load_lm(tiny_lm_dir, dtype="float32")


@pytest.fixture
def lm4(tmp_path, tokenizer_dir):
    """A 4-layer tiny LM, so that an emulator can drop middle layers."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return load_lm(str(tmp_path), dtype="float32")


def test_plan_keeps_adapter_layers_and_a_strided_middle():
    plan = EmulatorPlan(lm_layers=30, bottom=2, top=2, stride=3)
    assert plan.kept == [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 28, 29]
    assert plan.adapter_layers == [0, 1, 28, 29]
    assert EmulatorPlan(lm_layers=4, bottom=2, top=2, stride=1).kept == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="LM has only 4"):
        EmulatorPlan(lm_layers=4, bottom=3, top=2, stride=1)


def test_emulator_is_smaller_and_runs(lm4):
    plan = EmulatorPlan(4, 1, 1, 2)
    emu = build_emulator(lm4, plan)
    assert len(emu.model.layers) == 3 == emu.config.num_hidden_layers
    assert n_params(emu) < n_params(lm4.model)
    assert n_layers(lm4) == 4  # the LM itself is untouched
    out = perplexity(lm4, TEXTS, model=emu)
    assert out["perplexity"] > 1 and 0 <= out["next_token_accuracy"] <= 1
    before = perplexity(lm4, TEXTS, model=emu)["perplexity"]
    bottom_before = emu.model.layers[0].mlp.up_proj.weight.detach().clone()
    losses = distill_emulator(lm4, emu, TEXTS, steps=5, lr=1e-3, batch_size=len(TEXTS),
                              train_layers=plan.middle_positions)
    assert losses[-1] < losses[0]
    assert torch.equal(emu.model.layers[0].mlp.up_proj.weight, bottom_before)  # adapter layers stay exact
    assert before != perplexity(lm4, TEXTS, model=emu)["perplexity"]


def test_hidden_state_distillation_matches_the_residual_entering_the_top_layers(lm4):
    plan = EmulatorPlan(4, 1, 1, 2)
    emu = build_emulator(lm4, plan)
    top_before = emu.model.layers[-1].mlp.up_proj.weight.detach().clone()
    losses = distill_emulator(lm4, emu, TEXTS, steps=8, lr=1e-2, batch_size=len(TEXTS),
                              train_layers=plan.middle_positions, match="hidden")
    assert losses[-1] < losses[0] and losses[0] > 0
    assert torch.equal(emu.model.layers[-1].mlp.up_proj.weight, top_before)
    with pytest.raises(ConfigError, match="unknown distillation target"):
        distill_emulator(lm4, emu, TEXTS, steps=1, match="attention")


@pytest.mark.parametrize("match", ["logits", "hidden"])
def test_memoised_teacher_reproduces_the_lms_outputs(lm4, match):
    seqs = _encode(lm4, TEXTS[:4], 96)
    teacher = _Teacher(lm4, seqs, match, at=2)
    for idx in ([0, 1, 2], [3, 2, 0]):  # the second batch mixes memoised and new texts, in another order
        ids, mask = _pad([seqs[i] for i in idx], lm4.tokenizer.pad_token_id)
        with torch.no_grad():
            out = lm4.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        want = out.logits if match == "logits" else out.hidden_states[2]
        got = teacher(idx, ids, mask)
        assert got.shape == want.shape
        assert torch.allclose(got[mask.bool()], want[mask.bool()], atol=1e-5)
    assert len(teacher.memo) == 4 and teacher.head_exact is (True if match == "logits" else None)


def test_teacher_without_a_plain_head_is_not_memoised(lm4, monkeypatch):
    """A model whose logits are not head(final hidden) (e.g. soft-capped) gets its full forward each time."""
    monkeypatch.setattr(_Teacher, "_head", lambda self, h: 2 * self.lm.model.get_output_embeddings()(h))
    seqs = _encode(lm4, TEXTS[:3], 96)
    teacher = _Teacher(lm4, seqs, "logits", at=2)
    for idx in ([0, 1], [1, 2]):
        ids, mask = _pad([seqs[i] for i in idx], lm4.tokenizer.pad_token_id)
        with torch.no_grad():
            want = lm4.model(input_ids=ids, attention_mask=mask).logits
        assert torch.allclose(teacher(idx, ids, mask), want, atol=1e-6)
    assert teacher.head_exact is False and not teacher.memo


def test_distillation_only_computes_gradients_for_the_trained_layers(lm4):
    plan = EmulatorPlan(4, 1, 1, 2)
    emu = build_emulator(lm4, plan)
    distill_emulator(lm4, emu, TEXTS, steps=2, batch_size=4, train_layers=plan.middle_positions)
    trained = f".layers.{plan.middle_positions[0]}."
    for name, p in emu.named_parameters():
        assert (p.grad is not None) == (trained in name), name
        assert p.requires_grad  # flags restored afterwards


def test_adapters_trained_on_emulator_plug_into_the_lm(lm4):
    plan = EmulatorPlan(4, 1, 1, 2)  # keeps LM layers [0, 1, 3]; adapters on 0 and 3
    emu = build_emulator(lm4, plan)
    adapter_idx = [plan.kept.index(i) for i in plan.adapter_layers]
    peft_emu = add_lora(emu, adapter_idx, LoraSpec(r=4))
    losses = train_causal(peft_emu, lm4, TEXTS, LoraSpec(r=4, lr=1e-2, epochs=2, batch_size=4))
    assert losses[-1] < losses[0]
    tensors = export_adapters(peft_emu, plan.kept)
    assert {int(n.split(".layers.")[1].split(".")[0]) for n in tensors} == {0, 3}
    base = perplexity(lm4, TEXTS)["perplexity"]
    plugged = plug_adapters(lm4.model, tensors, LoraSpec(r=4))
    assert perplexity(lm4, TEXTS, model=plugged)["perplexity"] != base
    with plugged.disable_adapter():
        assert perplexity(lm4, TEXTS, model=plugged)["perplexity"] == pytest.approx(base, rel=1e-5)


def test_full_emulator_and_lm_agree_exactly_with_the_same_adapters(lm):
    plan = EmulatorPlan(5, 1, 1, 1)  # keeps every layer: the emulator is the LM
    emu = add_lora(build_emulator(lm, plan), [0, 4], LoraSpec(r=4))
    train_causal(emu, lm, TEXTS, LoraSpec(r=4, lr=1e-2, batch_size=4))
    plugged = plug_adapters(lm.model, export_adapters(emu, plan.kept), LoraSpec(r=4))
    assert perplexity(lm, TEXTS, model=plugged)["perplexity"] == pytest.approx(
        perplexity(lm, TEXTS, model=emu)["perplexity"], rel=1e-5)


def test_adapter_that_does_not_fit_is_refused(lm, tiny_lm_dir):
    bad = {"base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight": np.zeros((4, 32), np.float32)}
    with pytest.raises(ModelError, match="the LM has 5"):
        plug_adapters(lm.model, bad, LoraSpec(r=4))
    wrong_rank = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.zeros((3, 32), np.float32)}
    with pytest.raises(ModelError, match="shape"):
        plug_adapters(load_lm(tiny_lm_dir, dtype="float32").model, wrong_rank, LoraSpec(r=4))


def test_int8_roundtrip_is_close():
    rng = np.random.default_rng(0)
    t = {"w": rng.normal(size=(16, 8)).astype(np.float32), "b": rng.normal(size=8).astype(np.float32)}
    q, s = quantize_int8(t)
    assert q["w"].dtype == np.int8
    back = dequantize_int8(q, s)
    for k in t:
        assert np.abs(back[k] - t[k]).max() <= np.abs(t[k]).max() / 127 + 1e-6
