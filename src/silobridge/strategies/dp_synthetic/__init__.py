from silobridge.strategies.dp_synthetic.strategy import DPSynthetic, DPSyntheticConfig

__all__ = ["DPSynthetic", "DPSyntheticConfig"]
