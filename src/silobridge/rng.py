"""Each party owns its random state. Library code draws from the process-wide generators (torch's,
numpy's legacy one, Python's ``random``: LoRA initialisation, sampling, shuffles); a party swaps its
own state in while it works and back out when it is done, so two parties sharing a process draw
exactly what they would draw in two processes."""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch


def _get() -> tuple:
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _set(state: tuple) -> None:
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])


class PartyRNG:
    """A party's generators, seeded once; use :meth:`scope` around everything the party computes."""

    def __init__(self, seed: int):
        outside = _get()
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        self._state = _get()
        _set(outside)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        outside = _get()
        _set(self._state)
        try:
            yield
        finally:
            self._state = _get()
            _set(outside)
