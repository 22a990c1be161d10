from silobridge.strategies.offsite_tuning.strategy import OffsiteTuning, OffsiteTuningConfig

__all__ = ["OffsiteTuning", "OffsiteTuningConfig"]
