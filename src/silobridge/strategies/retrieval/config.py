import enum
from dataclasses import dataclass

from silobridge.configs import check, option
from silobridge.strategies.prompting import PromptConfig


class Source(enum.Enum):
    PRIVATE = "private"  # the labelled private records, PII-sanitised before they cross (a declared exposure)
    PUBLIC = "public"  # the public pool, labelled by the data party's SM: no private record crosses


@dataclass
class RetrievalConfig(PromptConfig):
    """Retrieval with a small retriever: the data party embeds labelled records with its encoder; each
    query's nearest neighbours either answer it locally (when they agree) or go to the LM as in-context
    examples."""

    source: Source = option(Source.PRIVATE, "where neighbours come from: 'private' (labelled private records, "
                                            "PII-sanitised with Presidio before they cross, under the declared "
                                            "exposure 'retrieved_records') or 'public' (the public pool labelled "
                                            "by the data party's SM: no private record crosses)")
    k: int = option(4, "neighbours retrieved per query")
    local_agreement: float = option(0.75, "answer a query locally when at least this share of its k neighbours "
                                          "has one label (1 = unanimous); the others go to the LM (k = 4 and "
                                          "0.75 chosen on validation records of both bundled tasks: README)")
    demo_tokens: int = option(48, "each neighbour is cut to this many LM tokens in the prompt (bounds LM cost)")
    retriever: str = option("", "encoder directory that embeds texts for retrieval; empty = the bundled MiniLM")
    public_pool: int = option(1000, "source=public: public texts labelled and indexed (after the calibration "
                                         "texts, which then take at most half of the public pool)")
    pii_min_score: float = option(0.4, "source=private: Presidio confidence at or above which an entity is masked "
                                       "(0.4, as policy.sanitize_min_score: a phone number without a context "
                                       "word scores 0.4)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(1 <= self.k <= 16, "strategy.k", self.k, "in [1, 16]")
        check(0 < self.local_agreement <= 1, "strategy.local_agreement", self.local_agreement, "in (0, 1]")
        check(self.demo_tokens >= 4, "strategy.demo_tokens", self.demo_tokens, ">= 4")
        check(self.public_pool >= 1, "strategy.public_pool", self.public_pool, ">= 1")
        check(0 <= self.pii_min_score <= 1, "strategy.pii_min_score", self.pii_min_score, "in [0, 1]")
