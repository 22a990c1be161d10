"""Text generation from a causal LM (sampling, batched, left-padded), metered."""
from __future__ import annotations

import torch

from silobridge.models.device import placement
from silobridge.models.lm import CausalLM
from silobridge.progress import track


@torch.no_grad()
def generate(lm: CausalLM, prompts: list[str], max_new_tokens: int = 64, temperature: float = 0.9,
             top_p: float = 0.95, batch_size: int = 8, seed: int = 0, desc: str = "generating",
             model: torch.nn.Module | None = None) -> list[str]:
    """One sampled continuation per prompt (prompts are used as given: apply a chat template first
    with :func:`silobridge.models.lm.build_prompt` if the model expects one)."""
    model = model or lm.model
    model.eval()
    tok = lm.tokenizer
    dev, _ = placement(model)
    torch.manual_seed(seed)
    outs: list[str] = []
    for s in track(range(0, len(prompts), batch_size), desc, total=-(-len(prompts) // batch_size)):
        enc = tok(prompts[s:s + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
        gen = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], do_sample=True,
                             temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                             pad_token_id=tok.pad_token_id,
                             **({"watermarking_config": lm.watermark} if lm.watermark is not None else {}))
        new = gen[:, enc["input_ids"].shape[1]:]
        lm.meter.calls += len(new)
        lm.meter.tokens_in += int(enc["attention_mask"].sum())
        lm.meter.tokens_out += int((new != tok.pad_token_id).sum())
        outs += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
    return outs
