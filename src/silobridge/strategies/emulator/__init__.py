"""emulator (LM -> SM, after Offsite-Tuning): the model party sends a compressed layer-drop emulator
of its LM (declared: it reveals a share of the LM's parameters, recorded in the ledger and result);
the data party LoRA-tunes it on its private records and deploys it locally. Only the public
distillation texts and the emulator cross."""
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.emulation import EMULATOR_PARAMS, EmulatorConfig, EmulatorModel
from silobridge.strategies.emulator.data_side import EmulatorData

__all__ = ["Emulator", "EmulatorConfig"]


@register
class Emulator(Strategy):
    name = "emulator"
    summary = "LM sends a layer-drop emulator (declared partial weights); data party LoRA-tunes and deploys it"
    Config = EmulatorConfig
    DataSide = EmulatorData
    ModelSide = EmulatorModel
    model_params = EMULATOR_PARAMS
    exposes = frozenset({"lm_weights"})
    kinds = frozenset({TaskKind.CLASSIFY, TaskKind.DOMAIN_LM})  # not tables (task tabular)
