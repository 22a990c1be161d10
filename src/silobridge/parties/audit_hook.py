"""The model party's answers to the omniscient auditor (measurement, not protocol: no carrier, no ledger
entry, not billed), each revealing no more than an ordinary query would:

- ``{'prefix': str, 'candidates': [str]}``: each causal LM the session deploys scores the candidates after
  the prefix (summed NLL) — canary exposure;
- ``{'next_tokens': [str]}``: the LM's own top-1 next tokens over the texts — extraction fidelity;
- ``{'watermark': [str], 'max_tokens': [int]}``: the watermark detector's z-score of each text over its
  first n tokens, for each n (the LM owner holds the key; null when its LM does not watermark)."""
from __future__ import annotations

from typing import Any

from silobridge.errors import BoundaryError


def _texts(request: dict[str, Any], key: str) -> list[str]:
    texts = request[key]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise BoundaryError("bad audit request", where="model.audit", fix=f"send {{'{key}': [str, ...]}}")
    return texts


def answer(side, party, request: dict[str, Any]) -> dict[str, Any]:
    from silobridge.models.causal import continuation_nll, next_token_top1

    if "next_tokens" in request:
        texts = _texts(request, "next_tokens")
        if party.black_box:
            return {"next_tokens": None}
        lm = side.language_models().get("lm") or party.lm  # the untuned LM where one is listed
        return {"next_tokens": next_token_top1(lm, texts).tolist()}
    if "watermark" in request:
        texts = _texts(request, "watermark")
        lengths = request.get("max_tokens") or [None]
        if party.black_box or party.lm.watermark is None:
            return {"watermark": None}
        from silobridge.privacy.watermark import Detector

        det = Detector(party.lm, party.lm.watermark)
        return {"watermark": {str(n): [None if z != z else z for z in det.z(texts, n).tolist()] for n in lengths}}
    prefix, cands = request.get("prefix"), request.get("candidates")
    if not isinstance(prefix, str) or not isinstance(cands, list) or not all(isinstance(c, str) for c in cands):
        raise BoundaryError("bad audit request", where="model.audit",
                            fix="send {'prefix': str, 'candidates': [str, ...]}")
    return {"lms": {name: continuation_nll(lm, prefix, cands).tolist()
                    for name, lm in side.language_models().items()}}
