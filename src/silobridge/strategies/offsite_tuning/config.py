from dataclasses import dataclass

from silobridge.strategies.emulation import EmulatorConfig


@dataclass
class OffsiteTuningConfig(EmulatorConfig):
    """The emulator's and adapters' options (see EmulatorConfig)."""
