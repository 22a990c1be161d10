"""The auditor's attacks on what a run deployed (omniscient: it knows which records were private).

Canary exposure of every causal LM the model party deploys (the Secret Sharer): each planted secret's loss
after the canary's prefix is ranked among reference secrets of the same format that no record holds; the
LMs are asked through the transport's audit hook (measurement, not protocol: not in the ledgers).

Membership inference on the data party's deployed SM — the model its inference clients query: members are
the private records it was trained on (canaries included), non-members as many held-out test records. Two
attacks: the loss threshold, and offline LiRA with reference SMs of the same kind trained on *other* held-out
test records (the ones not attacked), so the references saw neither members nor attacked non-members. The
attack never crosses the boundary and never feeds a prediction; its seconds are reported."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from silobridge.data.task import LabelledTexts
from silobridge.data.splits import CANARY_PREFIX, SECRET_SPACE_BITS, random_secrets
from silobridge.privacy.attacks import (exposure, extrapolated_exposure, lira_offline, logit_confidence, loss_scores,
                                        mia_report)
from silobridge.settings import AuditConfig


def deployed_sm(side: Any) -> Any | None:
    """The local classifier a strategy's data side deploys, if any (LM-served strategies have none)."""
    sm = getattr(side, "sm", None)
    return sm if callable(getattr(sm, "predict_proba", None)) else None


def sm_membership(sm: Any, new_sm: Callable[[int], Any], members: LabelledTexts, heldout: LabelledTexts,
                  n_classes: int, audit: AuditConfig, seed: int, references: int) -> dict[str, Any]:
    """Both attacks on ``sm``; the headline is the stronger one (higher AUC). ``new_sm(i)`` builds the i-th
    untrained reference SM; ``references`` of them (0: the loss threshold alone)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, 15])
    order = rng.permutation(len(heldout))
    n = min(len(members), len(heldout) // 2 if references else len(heldout))
    out_set, ref_pool = heldout.subset(order[:n]), heldout.subset(order[n:])
    eye = np.eye(n_classes)
    p_in, p_out = sm.predict_proba(members.texts), sm.predict_proba(out_set.texts)
    attacks = {"loss": mia_report(loss_scores(p_in, members.labels), loss_scores(p_out, out_set.labels),
                                  audit.mia_boot, rng)}
    refs = min(references, len(ref_pool) // 2)
    if refs:
        size = min(len(members), len(ref_pool))
        conf_in, conf_out = [], []
        for i in range(refs):
            train = ref_pool.subset(rng.choice(len(ref_pool), size, replace=False))
            ref = new_sm(seed * 1000 + i).fit(train.texts, eye[train.labels])
            conf_in.append(logit_confidence(ref.predict_proba(members.texts), members.labels))
            conf_out.append(logit_confidence(ref.predict_proba(out_set.texts), out_set.labels))
        attacks["lira_offline"] = mia_report(
            lira_offline(logit_confidence(p_in, members.labels), np.array(conf_in)),
            lira_offline(logit_confidence(p_out, out_set.labels), np.array(conf_out)), audit.mia_boot, rng)
    best = max(attacks, key=lambda k: attacks[k]["auc"])
    return {"target": "data party's deployed SM", "attacks": attacks, "best": best, "references": refs,
            "seconds": round(time.perf_counter() - t0, 3)}


def canary_exposure(ask: Callable[[dict], dict], secrets: list[str], references: int, seed: int) -> dict[str, Any]:
    """Exposure of each planted secret under each LM ``ask`` reaches (``ask(request) -> {'lms': {name:
    losses}}``), ranked among ``references`` random secrets of the canary format."""
    t0 = time.perf_counter()
    planted = set(secrets)
    refs = [s for s in random_secrets(np.random.default_rng([seed, 16]), references) if s not in planted]
    reply = ask({"prefix": CANARY_PREFIX, "candidates": [f" {s}." for s in list(secrets) + refs]})
    lms = {}
    for name, losses in reply["lms"].items():
        losses = np.asarray(losses, dtype=float)
        canary, ref = losses[:len(secrets)], losses[len(secrets):]
        per = [exposure(c, ref) for c in canary]
        ext = [extrapolated_exposure(c, ref, SECRET_SPACE_BITS) for c in canary]
        lms[name] = {"exposure": [round(p["exposure"], 3) for p in per], "rank": [p["rank"] for p in per],
                     "max": round(max(p["exposure"] for p in per), 3),
                     "mean": round(float(np.mean([p["exposure"] for p in per])), 3),
                     "extrapolated": [round(e, 2) for e in ext], "extrapolated_max": round(max(ext), 2)}
    return {"lms": lms, "canaries": len(secrets), "candidates": len(refs) + 1,
            "max_measurable": round(float(np.log2(len(refs) + 1)), 3), "space_bits": SECRET_SPACE_BITS,
            "seconds": round(time.perf_counter() - t0, 3)}


def extraction(ask: Callable[[dict], dict], data_lms: dict[str, Any], texts: list[str]) -> dict[str, Any] | None:
    """Extraction fidelity: top-1 next-token agreement of each LM the data party holds (an emulator it
    received) with the model party's LM, on held-out texts (``None``: a black-box LM)."""
    from silobridge.models.causal import next_token_top1
    from silobridge.privacy.attacks import agreement

    t0 = time.perf_counter()
    theirs = ask({"next_tokens": texts})["next_tokens"]
    if theirs is None:
        return None
    theirs = np.asarray(theirs)
    agree = {name: round(agreement(next_token_top1(lm, texts), theirs), 4) for name, lm in data_lms.items()}
    return {"agreement": agree, "tokens": int(len(theirs)), "texts": len(texts),
            "seconds": round(time.perf_counter() - t0, 3)}


def label_extraction(ask: Callable[[dict], dict], sm: Any, texts: list[str],
                     calibration: list[str] = ()) -> dict[str, Any] | None:
    """Extraction fidelity of the data party's deployed SM: the share of held-out ``texts`` on which its
    top label is the LM's top label word (as the LM answers a label query), with the LM's label bias on the
    ``calibration`` texts (public ones) removed as the strategies' 'mean' calibration does — the LM as a data
    party would use it; without them, and beside it, uncalibrated. An SM distilled from the LM's answers should
    agree more than one trained on private labels alone (router's: the reference)."""
    from silobridge.privacy.attacks import agreement

    t0 = time.perf_counter()
    got = ask({"labels": texts} | ({"calibration": list(calibration)} if calibration else {}))
    if got["labels"] is None:  # a black-box LM
        return None
    raw = np.asarray(got["labels"])
    theirs = np.asarray(got["calibrated"]) if got.get("calibrated") is not None else raw
    mine = np.asarray(sm.predict_proba(texts)).argmax(1)
    k = int(max(theirs.max(initial=0), raw.max(initial=0), mine.max(initial=0))) + 1

    def share(x: np.ndarray) -> list[float]:
        return np.round(np.bincount(x, minlength=k) / len(x), 4).tolist()

    return {"agreement": round(agreement(mine, theirs), 4), "agreement_uncalibrated": round(agreement(mine, raw), 4),
            "lm_calibrated_on": len(calibration) if got.get("calibrated") is not None else 0, "texts": len(texts),
            "lm_label_share": share(theirs), "lm_uncalibrated_label_share": share(raw), "sm_label_share": share(mine),
            "seconds": round(time.perf_counter() - t0, 3)}


def watermark(ask: Callable[[dict], dict], generated: list[str], plain: list[str], z: float,
              lengths: tuple[int, ...] = (16, 32, 64)) -> dict[str, Any] | None:
    """The LM owner's detector on what its LM wrote for the data party (``generated``) and on as many
    texts written without the key (``plain``): mean z and the share at or above ``z``, over each text's
    first n tokens and whole (``None``: the LM does not watermark)."""
    t0 = time.perf_counter()
    plain = plain[:len(generated)]
    asked = [*lengths, None]
    got = ask({"watermark": generated + plain, "max_tokens": asked})["watermark"]
    if got is None:
        return None
    out: dict[str, Any] = {"z_threshold": z, "generated": len(generated), "plain": len(plain)}
    for n in asked:
        zs = np.array([np.nan if v is None else v for v in got[str(n)]], dtype=float)
        g, p = zs[:len(generated)], zs[len(generated):]
        out["whole" if n is None else f"first_{n}"] = {
            "generated_mean_z": round(float(np.nanmean(g)), 3), "generated_detected": round(float(np.mean(g >= z)), 4),
            "plain_mean_z": round(float(np.nanmean(p)), 3) if len(p) else None,
            "plain_flagged": round(float(np.mean(p >= z)), 4) if len(p) else None}
    return out | {"seconds": round(time.perf_counter() - t0, 3)}


def privacy_fields(mia: dict[str, Any] | None, canary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result's headline fields: null where no attack applied, never omitted. ``canary_exposure``: the
    deployed LM's largest exposure over the canaries (bits, rank among the sampled candidates)."""
    deployed = (canary or {}).get("lms", {}).get("deployed")
    out = {"canary_exposure": deployed["max"] if deployed else None}
    if mia is None:
        return out | {"mia_auc": None, "mia_auc_ci95": None, "mia_tpr_at_1pct_fpr": None, "mia_attack": None}
    a = mia["attacks"][mia["best"]]
    return out | {"mia_auc": a["auc"], "mia_auc_ci95": a["auc_ci95"], "mia_tpr_at_1pct_fpr": a["tpr_at_1pct_fpr"],
                  "mia_attack": mia["best"]}
