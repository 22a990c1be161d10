from silobridge.strategies.lm_finetune_private.strategy import LMFinetunePrivate, LMFinetunePrivateConfig

__all__ = ["LMFinetunePrivate", "LMFinetunePrivateConfig"]
