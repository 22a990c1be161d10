"""speculative, model side: serve the emulator; for each generation, take the prompt (declared text),
then verify drafted tokens with one LM forward pass per round and return the accepted count and the LM's
next token. The sequence so far is kept in the session, so only drafted ids cross each round."""
from __future__ import annotations

from silobridge.boundary import Carrier, Config, TextBatch, expect
from silobridge.errors import BoundaryError
from silobridge.models.speculative import verify
from silobridge.strategies.emulation import make_emulator
from silobridge.strategies.lm_served import LMServedModel

MAX_DRAFT = 64


class SpeculativeModel(LMServedModel):
    seq: list[int] | None = None

    def ops(self) -> dict:
        return {"emulator": lambda c: make_emulator(self.party, self.config, c), "begin": self.begin,
                "verify": self.verify}

    def begin(self, carrier: Carrier) -> Carrier:
        """TextBatch[prompt] -> Config{tokens}: the LM's token ids of the prompt become the sequence."""
        batch = expect(carrier, TextBatch)
        if len(batch.items) != 1:
            raise BoundaryError("'begin' takes one prompt", where="model.begin", fix="send TextBatch([prompt])")
        self.seq = self.party.lm.tokenizer(batch.items[0], add_special_tokens=False)["input_ids"]
        if not self.seq:
            raise BoundaryError("the prompt is empty", where="model.begin")
        return Config(values={"tokens": len(self.seq)})

    def verify(self, carrier: Carrier) -> Carrier:
        """Config{draft: [ids]} -> Config{accepted, next}; the sequence grows by the accepted ids + next."""
        if self.seq is None:
            raise BoundaryError("'verify' before 'begin'", where="model.verify", fix="send the prompt with 'begin'")
        drafted = expect(carrier, Config).values.get("draft")
        vocab = len(self.party.lm.tokenizer)
        if (not isinstance(drafted, list) or len(drafted) > MAX_DRAFT
                or not all(isinstance(t, int) and 0 <= t < vocab for t in drafted)):
            raise BoundaryError(f"'draft' must be a list of at most {MAX_DRAFT} token ids", where="model.verify")
        n, nxt = verify(self.party.lm.model, self.seq, drafted)
        self.seq += drafted[:n] + [nxt]
        self.party.meter.calls += 1
        self.party.meter.tokens_in += len(drafted)
        self.party.meter.tokens_out += n + 1
        return Config(values={"accepted": n, "next": nxt})
