"""Registered strategies: importing this package registers every one of them."""
from silobridge.strategies import distill_public, emulator, lm_zero_shot, offsite_tuning, reverse_distill, sm_only  # noqa: F401
from silobridge.strategies.base import REGISTRY, Strategy, all_strategies, get, register

__all__ = ["REGISTRY", "Strategy", "all_strategies", "get", "register"]
