from silobridge.strategies.reverse_distill.strategy import ReverseDistill, ReverseDistillConfig

__all__ = ["ReverseDistill", "ReverseDistillConfig"]
