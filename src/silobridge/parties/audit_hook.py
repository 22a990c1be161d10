"""The model party's answers to the omniscient auditor (measurement, not protocol: no carrier, no ledger
entry, not billed), each revealing no more than an ordinary query would:

- ``{'prefix': str, 'candidates': [str]}``: each causal LM the session deploys scores the candidates after
  the prefix (summed NLL) — canary exposure;
- ``{'next_tokens': [str]}``: the LM's own top-1 next tokens over the texts — extraction fidelity;
- ``{'labels': [str], 'calibration': [str]}``: the LM's top label word for each text, as it answers a label
  query (the strategy's prompt where it has one, else the task's): uncalibrated, and (given calibration texts)
  with its label bias on those texts removed, as the strategies' default 'mean' calibration does — extraction
  fidelity of an SM distilled from it;
- ``{'watermark': [str], 'max_tokens': [int]}``: the watermark detector's z-score of each text over its
  first n tokens, for each n (the LM owner holds the key; null when its LM does not watermark)."""
from __future__ import annotations

import dataclasses
from typing import Any

from silobridge.errors import BoundaryError


def _texts(request: dict[str, Any], key: str) -> list[str]:
    texts = request[key]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise BoundaryError("bad audit request", where="model.audit", fix=f"send {{'{key}': [str, ...]}}")
    return texts


def _untuned(side, party):
    """The model party's LM as it was before this session tuned it (the untuned LM where one is listed)."""
    return side.language_models().get("lm") or party.lm


def answer(side, party, request: dict[str, Any]) -> dict[str, Any]:
    from silobridge.models.causal import continuation_nll, next_token_top1
    from silobridge.models.lm import score_labels

    if "next_tokens" in request:
        texts = _texts(request, "next_tokens")
        if party.black_box:
            return {"next_tokens": None}
        lm = _untuned(side, party)
        return {"next_tokens": next_token_top1(lm, texts).tolist()}
    if "labels" in request:
        from silobridge.strategies.prompting import Calibration, PromptConfig, calibrate, prompt_for, words_for

        texts = _texts(request, "labels")
        calib = _texts(request, "calibration") if "calibration" in request else []
        if party.black_box:  # its server would bill the queries: not measured
            return {"labels": None}
        cfg = side.config if isinstance(side.config, PromptConfig) else PromptConfig()
        words = words_for(cfg, party.task)
        lm = _untuned(side, party)
        billed = dataclasses.replace(lm.meter)
        logp = score_labels(lm, texts + calib, prompt_for(cfg, party.task, words), words, cfg.max_text_tokens,
                            cfg.batch_size, "LM labels (audit)", shots=getattr(side, "shots", ()))
        lm.meter.__dict__.update(billed.__dict__)  # measurement, not a query: the session's bill is unchanged
        own = logp[:len(texts)]
        out = {"labels": [int(i) for i in own.argmax(1)]}
        if calib:  # the strategies' own 'mean' calibration, its bias measured on the calibration texts
            fixed = calibrate(own, Calibration.MEAN, bias=logp[len(texts):].mean(0))
            out["calibrated"] = [int(i) for i in fixed.argmax(1)]
        return out
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
