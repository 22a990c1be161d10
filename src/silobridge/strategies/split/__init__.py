"""split (split learning, after Vepakomma et al. 2018): the model party sends the LM's embeddings and first
``cut_layer`` blocks (declared partial weights) and keeps the rest; the data party runs its part on its
records, clips each example's activations and adds Gaussian noise, and only those released activations
cross — for training (with the gradients of its task head's loss, which cross unnoised) and for the test
texts alike. The raw texts never cross; LoRA on both parties' blocks and the data party's head train."""
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.split.audit import InversionAudit
from silobridge.strategies.split.config import SplitConfig
from silobridge.strategies.split.data_side import SplitData
from silobridge.strategies.split.model_side import SplitModel

__all__ = ["Split", "SplitConfig"]


@register
class Split(Strategy):
    name = "split"
    summary = ("split learning: LM's bottom blocks to the data party (declared), clipped + noised activations "
               "of private and test texts to the LM's remaining blocks (LoRA both sides); texts never cross")
    Config = SplitConfig
    DataSide = SplitData
    ModelSide = SplitModel
    model_params = ("cut_layer", "lora_r", "lora_lr", "pool", "max_tokens", "batch_size")
    # what crosses, declared: the LM's bottom blocks; the released activations of the private records and the
    # unnoised gradients of the head's loss on their labels; the released activations of the test texts (not
    # 'inference_records': the test texts themselves never cross)
    exposes = frozenset({"lm_weights", "private_activations", "private_gradients", "inference_activations"})
    kinds = frozenset({TaskKind.CLASSIFY})
    # the activations and gradients are computed from private records; their noise bounds one release of one
    # example (reported), not the run: the run's ε is unbounded
    private_derived = True

    @classmethod
    def observer(cls, config: SplitConfig) -> InversionAudit:
        return InversionAudit(config)  # the model party's inversion of the test texts' activations
