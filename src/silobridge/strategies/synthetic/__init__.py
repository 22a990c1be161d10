from silobridge.strategies.synthetic.strategy import Synthetic, SyntheticConfig

__all__ = ["Synthetic", "SyntheticConfig"]
