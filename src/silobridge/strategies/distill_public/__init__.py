from silobridge.strategies.distill_public.strategy import DistillPublic, DistillPublicConfig

__all__ = ["DistillPublic", "DistillPublicConfig"]
