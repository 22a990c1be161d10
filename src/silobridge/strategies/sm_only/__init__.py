from silobridge.strategies.sm_only.strategy import SMOnly, SMOnlyConfig

__all__ = ["SMOnly", "SMOnlyConfig"]
