import math
from dataclasses import dataclass

from silobridge.configs import check, option


@dataclass
class SyntheticConfig:
    # --- what the model party writes (round 0, and round 1 when feedback is on) ---------------
    per_class: int = option(40, "synthetic texts the LM writes per class in each round")
    max_new_tokens: int = option(60, "most tokens the LM writes per synthetic text (bounds LM cost)")
    temperature: float = option(0.9, "LM sampling temperature (higher: more varied, less on-label)")
    top_p: float = option(0.95, "LM nucleus-sampling mass")
    batch_size: int = option(32, "LM generation batch size (larger: faster on a CPU, more memory)")
    terms_per_prompt: int = option(3, "round 1: prototype terms each generation request mentions "
                                      "(drawn from the class's released terms)")
    # --- the data party's filters --------------------------------------------------------------
    min_words: int = option(8, "drop synthetic texts with fewer words (of >= 2 letters) than this")
    max_words: int = option(150, "drop synthetic texts with more words than this")
    max_similarity: float = option(0.8, "drop a synthetic text whose word-set Jaccard similarity to an "
                                        "already kept one reaches this (near duplicates); exact duplicates "
                                        "of the normalised text always go")
    agreement_keep: float = option(0.8, "share of each class's synthetic rows kept: those an SM trained on the "
                                        "private labels finds most typical of their claimed class (relative, per "
                                        "class: it never empties a class whatever the number of classes; 1 = keep "
                                        "all). 0.8: best validation macro-F1 of 0.4/0.6/0.8/1.0 on the reviews, "
                                        "seeds 0-2 (benchmarks/choose_defaults.py)")
    balanced_agreement: bool = option(True, "rank agreement on the SM's probabilities divided by the private "
                                            "label prior (renormalised), so its majority-class bias does not "
                                            "decide which rows look typical")
    # --- feedback round: DP class prototypes ---------------------------------------------------
    feedback: bool = option(True, "second round: send DP class prototypes (top terms) and have the LM "
                                  "write texts mentioning them")
    prototype_epsilon: float = option(1.0, "DP epsilon of the prototype release (recorded in the ledger)")
    prototype_delta: float = option(1e-5, "DP delta of the prototype release")
    top_terms: int = option(10, "terms released per class")
    max_terms_per_record: int = option(8, "distinct terms one private record may contribute "
                                           "(bounds the sensitivity: sqrt of this)")
    vocabulary_size: int = option(100, "candidate terms: the most frequent terms of the public pool (fewer "
                                       "candidates: less noise wins the top-k)")
    noise_seed: int | None = option(None, "seed of the DP noise; empty = fresh OS entropy. A known seed lets "
                                          "anyone subtract the noise: set it only for reproducible experiments")
    # --- the deployed SM -----------------------------------------------------------------------
    synthetic_weight: float = option(0.5, "weight of each kept synthetic text relative to a private record")
    ablations: bool = option(True, "also fit SMs on round-0 rows only and on unfiltered rows, to report "
                                   "what feedback and filtering add (validation accuracy and macro-F1; extra SM fits)")

    def __post_init__(self) -> None:
        check(1 <= self.per_class <= 10_000, "strategy.per_class", self.per_class, "in [1, 10000]")
        check(self.max_new_tokens >= 8, "strategy.max_new_tokens", self.max_new_tokens, ">= 8")
        check(self.temperature > 0, "strategy.temperature", self.temperature, "> 0")
        check(0 < self.top_p <= 1, "strategy.top_p", self.top_p, "in (0, 1]")
        check(self.batch_size >= 1, "strategy.batch_size", self.batch_size, ">= 1")
        check(self.terms_per_prompt >= 1, "strategy.terms_per_prompt", self.terms_per_prompt, ">= 1")
        check(self.min_words >= 1, "strategy.min_words", self.min_words, ">= 1")
        check(self.max_words >= self.min_words, "strategy.max_words", self.max_words,
              f">= strategy.min_words ({self.min_words})")
        check(0 < self.max_similarity <= 1, "strategy.max_similarity", self.max_similarity, "in (0, 1]")
        check(0 < self.agreement_keep <= 1, "strategy.agreement_keep", self.agreement_keep, "in (0, 1]")
        check(math.isfinite(self.prototype_epsilon) and self.prototype_epsilon > 0, "strategy.prototype_epsilon",
              self.prototype_epsilon, "a finite number > 0")
        check(0 < self.prototype_delta < 1, "strategy.prototype_delta", self.prototype_delta, "in (0, 1)")
        check(self.top_terms >= 1, "strategy.top_terms", self.top_terms, ">= 1")
        check(self.max_terms_per_record >= 1, "strategy.max_terms_per_record", self.max_terms_per_record, ">= 1")
        check(self.vocabulary_size >= self.top_terms, "strategy.vocabulary_size", self.vocabulary_size,
              f">= strategy.top_terms ({self.top_terms})")
        check(self.synthetic_weight > 0, "strategy.synthetic_weight", self.synthetic_weight, "> 0")
