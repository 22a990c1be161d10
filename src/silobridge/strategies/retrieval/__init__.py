"""retrieval: a small retriever at the data party. Each query's nearest labelled neighbours (private
records, PII-sanitised, or SM-labelled public texts) answer it locally when they agree; otherwise they go
to the LM as in-context examples with the query."""
from silobridge.strategies.base import Strategy, register
from silobridge.strategies.prompting import PROMPT_PARAMS
from silobridge.strategies.retrieval.config import RetrievalConfig, Source
from silobridge.strategies.retrieval.data_side import RetrievalData
from silobridge.strategies.retrieval.model_side import RetrievalModel


@register
class Retrieval(Strategy):
    name = "retrieval"
    black_box = True
    summary = "nearest labelled neighbours answer locally when they agree, else go to the LM as in-context examples"
    Config = RetrievalConfig
    DataSide = RetrievalData
    ModelSide = RetrievalModel
    model_params = PROMPT_PARAMS + ("demo_tokens",)
    exposes = frozenset({"inference_records", "retrieved_records"})
    private_derived = True  # SM labels (of public texts, or of neighbours) from private training


__all__ = ["Retrieval", "RetrievalConfig", "Source"]
