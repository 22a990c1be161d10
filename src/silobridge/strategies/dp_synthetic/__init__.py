"""dp-synthetic (SM -> LM with differential privacy): the data party gets a small generator (a cut
of the LM, same tokenizer; a declared partial-weights exposure), fine-tunes it on its private
labelled records with DP-SGD (Opacus), samples labelled synthetic records, and sends them with the
(epsilon, delta) spent; the model party LoRA-tunes its LM on them. The LM then serves inference.
For task 'domain-lm' the generator learns the raw private texts, samples unlabelled texts, and the
LM is tuned on next-token prediction over them."""
from silobridge.boundary import DP_OUTPUTS
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.dp_synthetic.config import DPSyntheticConfig
from silobridge.strategies.dp_synthetic.data_side import DPSyntheticData
from silobridge.strategies.dp_synthetic.model_side import DP_SYNTHETIC_PARAMS, DPSyntheticModel


@register
class DPSynthetic(Strategy):
    name = "dp-synthetic"
    summary = "data party DP-fine-tunes an LM cut on private records, sends labelled synthetic text with its epsilon"
    Config = DPSyntheticConfig
    DataSide = DPSyntheticData
    ModelSide = DPSyntheticModel
    model_params = DP_SYNTHETIC_PARAMS
    # dp_outputs: the synthetic texts, sampled from the DP-trained generator; their ε covers them, so one that
    # happens to repeat a private span (a short WordNet definition, say) crosses and is counted, not refused
    exposes = frozenset({"lm_weights", "inference_records", DP_OUTPUTS})
    kinds = frozenset({TaskKind.CLASSIFY, TaskKind.DOMAIN_LM})  # not tables (task tabular)
    model_lms = True
