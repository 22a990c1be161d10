from dataclasses import dataclass

from silobridge.strategies.prompting import PromptConfig


@dataclass
class LMZeroShotConfig(PromptConfig):
    """Prompted label scoring; see PromptConfig for the prompt, label words and calibration."""
