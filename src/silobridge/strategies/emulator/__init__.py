from silobridge.strategies.emulator.strategy import Emulator, EmulatorConfig

__all__ = ["Emulator", "EmulatorConfig"]
