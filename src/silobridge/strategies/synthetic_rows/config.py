from dataclasses import dataclass

from silobridge.configs import check, option


@dataclass
class SyntheticRowsConfig:
    per_class: int = option(20, "rows the LM writes per class")
    max_new_tokens: int = option(120, "most tokens the LM writes per row (a field is about 6 tokens)")
    temperature: float = option(0.9, "LM sampling temperature")
    top_p: float = option(0.95, "LM nucleus-sampling mass")
    batch_size: int = option(16, "LM generation batch size")
    min_field_share: float = option(0.8, "drop a written row with fewer than this share of the schema's fields "
                                         "(a missing field stays missing, as in the private rows)")
    agreement_keep: float = option(0.8, "share of each class's valid rows kept: those an SM trained on the private "
                                        "rows finds most typical of their claimed class (1 = keep all)")
    alpha: float = option(1.0, "weight of a kept synthetic row relative to a private one")

    def __post_init__(self) -> None:
        check(1 <= self.per_class <= 10_000, "strategy.per_class", self.per_class, "in [1, 10000]")
        check(self.max_new_tokens >= 8, "strategy.max_new_tokens", self.max_new_tokens, ">= 8")
        check(self.temperature > 0, "strategy.temperature", self.temperature, "> 0")
        check(0 < self.top_p <= 1, "strategy.top_p", self.top_p, "in (0, 1]")
        check(self.batch_size >= 1, "strategy.batch_size", self.batch_size, ">= 1")
        check(0 < self.min_field_share <= 1, "strategy.min_field_share", self.min_field_share, "in (0, 1]")
        check(0 < self.agreement_keep <= 1, "strategy.agreement_keep", self.agreement_keep, "in (0, 1]")
        check(self.alpha >= 0, "strategy.alpha", self.alpha, ">= 0")
