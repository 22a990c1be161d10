"""Green-list watermarking of generated text (Kirchenbauer et al. 2023) with transformers' own logits
processor and detector: the previous token seeds a pseudo-random green list of ``gamma`` of the vocabulary
(keyed by the LM owner's secret), generation adds ``bias`` to green logits, and the detector's z-score
counts green tokens against the ``gamma`` share expected of text written without the key."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from silobridge.settings import LMConfig

if TYPE_CHECKING:  # the privacy room needs no model code: a CausalLM is only passed through
    from silobridge.models.lm import CausalLM


def watermarking(cfg: LMConfig):
    """The ``WatermarkingConfig`` ``lm.*`` asks for, or None when ``lm.watermark`` is off."""
    if not cfg.watermark:
        return None
    from transformers import WatermarkingConfig

    return WatermarkingConfig(greenlist_ratio=cfg.watermark_gamma, bias=cfg.watermark_bias,
                              hashing_key=cfg.watermark_key, seeding_scheme="lefthash", context_width=1)


def with_watermark(lm: "CausalLM", cfg: LMConfig) -> "CausalLM":
    """``lm``, generating watermarked text from now on if ``cfg`` asks for it."""
    lm.watermark = watermarking(cfg)
    return lm


def z_threshold(fpr: float) -> float:
    """One-sided z above which plain text is flagged with probability ``fpr`` (normal approximation)."""
    from scipy.stats import norm

    return float(norm.isf(fpr))


class Detector:
    """z-scores of texts under one watermark: needs the same key, gamma and the LM's tokenizer and vocabulary
    size as generation; re-tokenises each text (what crossed was text)."""

    def __init__(self, lm: "CausalLM", watermark):
        from transformers import WatermarkDetector

        self.tokenizer = lm.tokenizer
        self.detector = WatermarkDetector(lm.model.config, "cpu", watermark)

    def tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def z(self, texts: list[str], max_tokens: int | None = None) -> np.ndarray:
        """Each text's z-score over its first ``max_tokens`` tokens (NaN for a text under 2 tokens)."""
        out = np.full(len(texts), math.nan)
        for i, text in enumerate(texts):
            ids = self.tokens(text)[:max_tokens]
            if len(ids) >= 2:
                res = self.detector(torch.tensor([ids]), return_dict=True)
                out[i] = float(res.z_score[0])
        return out
