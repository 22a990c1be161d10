"""Attention by sequence length, for bfloat16 on a CPU: transformers' eager attention is the faster for
short prompts, SDPA for long ones. Measured on the bundled LM, 8 left-padded rows, bfloat16, 2-core AMD EPYC
with AVX512-BF16 (`benchmarks/attention.py`; the second pair with 1 thread on a shared CPU), prompt tokens/s:
at 100 tokens eager 1,193 and SDPA 1,158 (1,137 / 1,069); at 140 tokens (32 rows) 1,356 and 1,182; at 480
tokens eager 570 and SDPA 749 — retrieval's prompts with four neighbours are about 500 tokens. The two
cross near 250 tokens.

``BY_LENGTH`` is an attention implementation registered with transformers: each layer's call runs eager
attention when it attends over at most ``LONG`` keys and SDPA beyond, on the same float mask (SDPA takes an
additive mask). Stateless, so threads sharing a model never see one another's choice."""
from __future__ import annotations

import sys

BY_LENGTH = "silobridge_by_length"
LONG = 256  # keys attended over, beyond which SDPA runs


def _by_length(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if key.shape[-2] > LONG:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:  # a model family without the usual eager function: SDPA, which every family has
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return eager(module, query, key, value, attention_mask, **kwargs)


def register() -> str:
    """Register ``BY_LENGTH`` (idempotent) and return its name, to pass as ``attn_implementation``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(BY_LENGTH, _by_length)
    AttentionMaskInterface.register(BY_LENGTH, eager_mask)
    return BY_LENGTH
