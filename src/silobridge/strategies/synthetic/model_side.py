"""synthetic, model side: the LM writes labelled synthetic texts from public task metadata (label
words and description) and, in round 1, the DP prototype terms the data party sent."""
from __future__ import annotations

import random
import re

from silobridge.boundary import Carrier, Config, TextBatch
from silobridge.errors import BoundaryError
from silobridge.strategies.base import ModelSide

# generation requests (model party): round 0 varies the style for diversity; round 1 adds terms
STYLES = ("Write a short {word} {what}.", "Write a {word} {what} in two or three sentences.",
          "Write a {word} {what} in a casual tone.", "Write a detailed {word} {what}.")
FOCUSED = "Write a short {word} {what} mentioning some of: {terms}."
REPLY = " Reply with the text only."
MAX_PER_CLASS = 10_000  # the model party's own cap on one request
SYNTHETIC_PARAMS = ("max_new_tokens", "temperature", "top_p", "batch_size", "terms_per_prompt")


def _what(description: str) -> str:
    """'an Amazon fine-food product review' -> 'Amazon fine-food product review'."""
    return re.sub(r"^(a|an|the)\s+", "", description.strip(), flags=re.IGNORECASE) or "text"


def requests(task, per_class: int, terms: list[list[str]] | None, terms_per_prompt: int,
             rng: random.Random) -> tuple[list[str], list[int]]:
    """User messages asking for ``per_class`` texts of each class, and each one's class id."""
    what = _what(task.description)
    users, labels = [], []
    for c, word in enumerate(task.answer_words()):
        pool = list(terms[c]) if terms else []
        for i in range(per_class):
            if pool:
                picked = rng.sample(pool, min(terms_per_prompt, len(pool)))
                user = FOCUSED.format(word=word, what=what, terms=", ".join(picked))
            else:
                user = STYLES[i % len(STYLES)].format(word=word, what=what)
            users.append(user + REPLY)
            labels.append(c)
    return users, labels


class SyntheticModel(ModelSide):
    def ops(self) -> dict:
        return {"generate": self.generate}

    def generate(self, carrier: Carrier) -> Carrier:
        """Config{round, per_class, seed[, terms]} -> TextBatch of labelled texts."""
        cfg, party = self.config, self.party
        if not isinstance(carrier, Config):
            raise BoundaryError(f"'generate' expects a config carrier, got '{carrier.kind}'", where="model.generate")
        v = carrier.values
        try:
            rnd, per_class, seed = int(v.get("round", 0)), int(v["per_class"]), int(v.get("seed", 0))
        except (KeyError, TypeError, ValueError):
            raise BoundaryError(f"bad generation request {v!r}", where="model.generate",
                                fix="send {'round': int, 'per_class': int, 'seed': int}") from None
        if not 1 <= per_class <= MAX_PER_CLASS:
            raise BoundaryError(f"per_class={per_class} is out of range", where="model.generate",
                                fix=f"ask for 1..{MAX_PER_CLASS} texts per class")
        k = len(party.task.label_names)
        terms = v.get("terms")
        if terms is not None:
            if not isinstance(terms, list) or len(terms) != k or not all(isinstance(r, list) for r in terms):
                raise BoundaryError(f"'terms' must hold one list per class ({k})", where="model.generate")
            terms = [[str(t)[:40] for t in row] for row in terms]
        users, labels = requests(party.task, per_class, terms, cfg.terms_per_prompt, random.Random(seed * 7 + rnd))
        params = [cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.batch_size, seed * 1000 + rnd]
        texts, _ = party.memo_texts("generated", [users, *params], lambda: party.generate_replies(
            users, *params, desc=f"LM writing round {rnd}"))
        return TextBatch(items=texts, labels=labels, purpose="synthetic")
