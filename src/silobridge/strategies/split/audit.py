"""The model party's inversion attack on split learning's crossing activations, with model code around
the math of :mod:`silobridge.privacy.inversion`: the attacker runs the LM's bottom blocks (which it
owns: it sent them) on public text through the same release mechanism (it knows the clip and the noise
level), fits a linear inverter on those activations, and applies it to the activations that crossed.
At cut 0 it also tries the nearest embedding row."""
from __future__ import annotations

import time

import numpy as np
import torch

from silobridge.boundary import Activations, Weights
from silobridge.errors import DataError
from silobridge.privacy.inversion import chance, fit_linear_inverter, nearest_embedding, recovery
from silobridge.privacy.noise import numpy_rng
from silobridge.strategies.split.blocks import encode, pack, pad, rebuild_bottom, release


def real_positions(packed: np.ndarray) -> np.ndarray:
    """The activations of the real (unpadded) tokens of packed batches, (n, d), row by row."""
    return packed[..., :-1][packed[..., -1] == 1]


@torch.no_grad()
def released_batches(bottom: torch.nn.Module, tok, texts: list[str], clip: float, sigma: float, max_tokens: int,
                     batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``texts`` through ``bottom`` and the release mechanism, packed as they would cross."""
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    seqs = encode(tok, texts, max_tokens)
    out = []
    for s in range(0, len(seqs), batch_size):
        ids, mask = pad(seqs[s:s + batch_size], pad_id)
        h = bottom(input_ids=ids, attention_mask=mask).last_hidden_state
        released, _ = release(h, mask, clip, sigma, rng)
        out.append(pack(released, mask))
    return out


def token_ids(tok, texts: list[str], max_tokens: int) -> np.ndarray:
    """The token ids of ``texts`` as the split strategy encodes them, concatenated in order."""
    return np.asarray([i for s in encode(tok, texts, max_tokens) for i in s], dtype=np.int64)


def invert(bottom: torch.nn.Module, tok, public: list[str], crossed: list[np.ndarray], true_ids: np.ndarray, *,
           clip: float, noise_std: float, max_tokens: int, batch_size: int = 16, cut_layer: int,
           seed: int | None = None) -> dict[str, float | int | None]:
    """Token recovery on the activations that ``crossed`` (packed batches whose real positions hold
    ``true_ids``, in order): the linear inverter fitted on ``public`` texts released with the same
    mechanism (the attacker's own noise: ``seed``), and at cut 0 the nearest embedding row."""
    target = np.concatenate([real_positions(b) for b in crossed]) if crossed else np.zeros((0, 0))
    if len(target) != len(true_ids) or len(target) == 0:
        raise DataError(f"{len(target)} crossing positions for {len(true_ids)} true token ids", where="invert",
                        fix="pass the packed batches of exactly the texts whose token ids are given")
    mine = released_batches(bottom, tok, public, clip, noise_std * clip, max_tokens, batch_size, numpy_rng(seed))
    pub_acts = np.concatenate([real_positions(b) for b in mine])
    pub_ids = token_ids(tok, public, max_tokens)
    inverter = fit_linear_inverter(pub_acts, pub_ids)
    out: dict[str, float | int | None] = {
        "positions": int(len(true_ids)), "public_positions": int(len(pub_ids)),
        "linear_recovery": recovery(inverter.predict(target), true_ids),
        "chance": chance(pub_ids, true_ids),
        "nearest_embedding_recovery": None}
    if cut_layer == 0:
        emb = bottom.get_input_embeddings().weight.detach().float().cpu().numpy()
        out["nearest_embedding_recovery"] = recovery(nearest_embedding(target, emb), true_ids)
    return out


class InversionAudit:
    """The omniscient auditor's view of a split run, kept as a gate observer: the bottom blocks as they
    crossed and the released activations of the test texts (sent for inference, in order). After the run,
    :meth:`attack` plays the model party's inversion attack on them (:func:`invert`)."""

    name = "inversion"

    def __init__(self, config):
        self.config = config
        self.bottom: Weights | None = None
        self.batches: list[np.ndarray] = []

    def __call__(self, entry, carrier, payload: bytes) -> None:
        if entry.sender == "model" and isinstance(carrier, Weights) and "cut_layer" in carrier.meta:
            self.bottom = carrier
        elif entry.sender == "data" and isinstance(carrier, Activations) \
                and carrier.exposure == "inference_activations":
            self.batches.append(carrier.values)

    def attack(self, test_texts: list[str], public_texts: list[str], seed: int) -> dict | None:
        """Token recovery from the test texts' crossing activations (None: nothing crossed to attack)."""
        if self.bottom is None or not self.batches or not public_texts:
            return None
        t0 = time.perf_counter()
        c = self.config
        tok, bottom = rebuild_bottom(self.bottom)  # the attacker's copy: exactly what it sent
        out = invert(bottom, tok, public_texts, self.batches, token_ids(tok, test_texts, c.max_tokens), clip=c.clip,
                     noise_std=c.noise_std, max_tokens=c.max_tokens, batch_size=c.batch_size,
                     cut_layer=c.cut_layer, seed=seed)
        best = max(x for x in (out["linear_recovery"], out["nearest_embedding_recovery"]) if x is not None)
        return out | {"recovery": best, "attack_texts": len(public_texts), "seconds": time.perf_counter() - t0}
