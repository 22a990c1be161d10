"""Registered strategies: importing this package registers every one of them."""
from silobridge.strategies import (distill_public, dp_offsite_tuning, dp_synthetic, emulator, lm_finetune_private,  # noqa: F401
                                   lm_zero_shot, offsite_tuning, proxy_tuning, reverse_distill, router, sm_only,
                                   retrieval, speculative, split, synthetic, synthetic_rows)
from silobridge.strategies.base import REGISTRY, Strategy, all_strategies, get, register

__all__ = ["REGISTRY", "Strategy", "all_strategies", "get", "register"]
