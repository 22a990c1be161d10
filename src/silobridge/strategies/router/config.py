from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.strategies.prompting import PromptConfig


@dataclass
class RouterConfig(PromptConfig):
    """Cost-aware routing: the data party's SM answers the queries it is confident about; the rest go to
    the LM. The confidence threshold is set on the validation records to the user's target."""

    max_lm_calls_per_100: float | None = option(None, "target 'at most N LM calls per 100 queries' (set on the SM's "
                                                      "validation confidences; no validation record is sent); empty "
                                                      "= use min_quality_share")
    min_quality_share: float = option(0.95, "target 'at least this share of the better single model's validation "
                                            "quality' with the fewest LM calls (the validation records are sent to "
                                            "the LM once to measure it: a declared exposure)")
    metric: str = option("accuracy", "quality measure of the target and the curve: accuracy or macro_f1")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.max_lm_calls_per_100 is None or 0 <= self.max_lm_calls_per_100 <= 100,
              "strategy.max_lm_calls_per_100", self.max_lm_calls_per_100, "empty or in [0, 100]")
        check(0 < self.min_quality_share <= 1, "strategy.min_quality_share", self.min_quality_share, "in (0, 1]")
        check(self.metric in ("accuracy", "macro_f1"), "strategy.metric", self.metric, "accuracy or macro_f1")
