from silobridge.strategies.lm_zero_shot.strategy import LMZeroShot, LMZeroShotConfig

__all__ = ["LMZeroShot", "LMZeroShotConfig"]
