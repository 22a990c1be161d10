"""proxy-tuning (Liu et al., 2024): a small model that shares the LM's tokenizer — the emulator — is tuned
on the private records in the data silo; at inference the LM's label logits (classify) or next-token
logits (domain-lm) are shifted by alpha x (tuned - untuned emulator's). The LM itself is never tuned and
no adapter leaves the silo; the queries go to the LM (declared, as for lm-zero-shot) and label log-probs
come back; for domain-lm the texts go to the LM with the shifts (declared evaluation records) and the
steered LM's perplexity comes back."""
from silobridge.boundary import Carrier, Config, LogitShift, expect
from silobridge.errors import BoundaryError
from silobridge.models.proxy import positions, sequences, shifted_perplexity
from silobridge.strategies.base import Strategy, TaskKind, register
from silobridge.strategies.emulation import EMULATOR_PARAMS, make_emulator
from silobridge.strategies.prompting import PROMPT_PARAMS, PromptModelSide
from silobridge.strategies.proxy_tuning.config import ProxyTuningConfig
from silobridge.strategies.proxy_tuning.data_side import ProxyTuningData


class ProxyTuningModel(PromptModelSide):
    def ops(self) -> dict:
        return super().ops() | {"emulator": lambda c: make_emulator(self.party, self.config, c),
                                "proxy_perplexity": self.proxy_perplexity}

    def proxy_perplexity(self, carrier: Carrier) -> Carrier:
        """The LM's next-token logits on the texts, shifted as sent: sums for perplexity, steered and alone."""
        c = expect(carrier, LogitShift)
        n = positions(sequences(self.party.lm, c.items, c.max_len))
        if c.token_ids.shape != c.values.shape or c.token_ids.ndim != 2 or len(c.token_ids) != n or (
                c.token_ids.size and (c.token_ids.min() < 0 or c.token_ids.max() >= len(self.party.lm.tokenizer))):
            raise BoundaryError(f"shifts of shape {c.token_ids.shape} / {c.values.shape} for {n} positions",
                                where="model.proxy_perplexity",
                                fix="send one row of (token id, shift) pairs per next-token position, as "
                                    "silobridge.models.proxy.logit_shifts builds them")
        return Config(values=shifted_perplexity(self.party.lm, c.items, c.token_ids, c.values, c.max_len))


@register
class ProxyTuning(Strategy):
    name = "proxy-tuning"
    summary = "LM label logits shifted by a tuned-minus-untuned emulator's, in the data silo (LM never tuned)"
    Config = ProxyTuningConfig
    DataSide = ProxyTuningData
    ModelSide = ProxyTuningModel
    model_params = tuple(dict.fromkeys(EMULATOR_PARAMS + PROMPT_PARAMS))
    exposes = frozenset({"lm_weights", "inference_records", "evaluation_records"})
    kinds = frozenset({TaskKind.CLASSIFY, TaskKind.DOMAIN_LM})
