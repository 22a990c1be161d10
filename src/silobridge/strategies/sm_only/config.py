from dataclasses import dataclass


@dataclass
class SMOnlyConfig:
    """sm-only has no options of its own: the SM is set in the run's [sm] section."""
