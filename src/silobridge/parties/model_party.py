"""The model party: owns the LM. :class:`ModelParty` is one session's view of it, as a strategy's model
side sees it (the task, the LM loaded on first use, caches, the meter); the service that hosts the
sessions and talks to the other party is :mod:`silobridge.parties.model_server`."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from silobridge.data.task import TaskSpec
from silobridge.errors import BoundaryError, ModelError
from silobridge.models.lm import (CausalLM, Meter, build_prompt, load_lm, score_labels, score_with_context,
                                 truncate_texts)
from silobridge.models.remote import OpenAILM, is_remote
from silobridge.parties.batching import ScoreBatcher
from silobridge.privacy.watermark import with_watermark
from silobridge.settings import LMConfig, TaskKind

log = logging.getLogger("silobridge.model")
OPEN, CLOSE, EVALUATE = "open", "close", "evaluate"


class Received:
    """The protocol parameters a model side received: reading any other option of the strategy's
    config is an error (what the model side uses must have crossed, and be in the ledger)."""

    def __init__(self, config: Any, names: tuple[str, ...]):
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_names", frozenset(names))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(type(self._config), name, None)
        if isinstance(attr, property):
            return attr.fget(self)
        if name not in self._names:
            raise BoundaryError(f"the model side read option '{name}', which the data side does not send",
                                where="strategy.model_params", fix=f"add '{name}' to the strategy's model_params")
        return getattr(self._config, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("received parameters are read-only")


def black_box_strategies() -> list[str]:
    """Strategies that need only text and log-probs from the LM (they run against an OpenAI-compatible server)."""
    from silobridge.strategies import all_strategies

    return sorted(n for n, cls in all_strategies().items() if cls.black_box)


class ModelParty:
    """One session's model party, as a strategy's model side sees it: the task, the LM (its own copy,
    loaded on first use), the cache setting and directory, and the meter."""

    name = "model"

    def __init__(self, task: TaskSpec, kind: TaskKind, lm: LMConfig, cache_dir: Path):
        self.task, self.kind = task, kind
        self._lm_config = lm
        self.cache = lm.cache
        self.cache_dir = cache_dir
        self.meter = Meter()
        self._lm: CausalLM | None = None
        self._remote: OpenAILM | None = None
        self.batcher: ScoreBatcher | None = None  # set by the server while a batchable operation runs

    @property
    def black_box(self) -> bool:
        """Whether the LM is reached over an OpenAI-compatible API (text and log-probs, no weights)."""
        return is_remote(self._lm_config.path)

    @property
    def remote(self) -> OpenAILM:
        if self._remote is None:
            self._remote = OpenAILM.connect(self._lm_config.path, self._lm_config.api_key_env)
            self._remote.meter = self.meter
        return self._remote

    def lm_identity(self) -> str:
        """What caches key on: the weights' digest, or for a black-box LM its name and address."""
        return f"remote:{self.remote.name}" if self.black_box else self.lm.digest()

    def score_labels(self, texts: list[str], user_template: str, label_words: list[str], max_text_tokens: int,
                     batch_size: int, desc: str, shots: tuple[tuple[str, str], ...] = ()):
        """The LM's label log-probs for ``texts``: from the score cache (``lm.cache``), else batched with
        other sessions' concurrent requests when the server allows it, else scored here (or, for a
        black-box LM, by its server)."""
        if self.black_box:
            return self.remote.score_labels(texts, user_template, label_words, max_text_tokens, shots)
        if self.batcher is not None and not self.cache:
            return self.batcher.score(self.lm, texts, user_template, label_words, max_text_tokens, batch_size,
                                      desc, shots)
        return score_labels(self.lm, texts, user_template, label_words, max_text_tokens, batch_size, desc,
                            cache_dir=self.cache_dir if self.cache else None, shots=shots)

    def score_with_context(self, texts: list[str], user_template: str, label_words: list[str],
                           shots_each: list[tuple[tuple[str, str], ...]], max_text_tokens: int, batch_size: int,
                           desc: str) -> np.ndarray:
        """:meth:`score_labels` where each text brings its own demonstrations (never cached or co-batched:
        the prompts differ per text)."""
        if self.black_box:
            return self.remote.score_labels(texts, user_template, label_words, max_text_tokens, shots_each=shots_each)
        return score_with_context(self.lm, texts, user_template, label_words, shots_each, max_text_tokens,
                                  batch_size, desc)

    def truncate(self, texts: list[str], max_tokens: int) -> list[str]:
        """Each text cut to ``max_tokens`` of the LM's tokens (the server's, for a black-box LM)."""
        if self.black_box:
            return self.remote.truncate(texts, max_tokens)
        return truncate_texts(self.lm, texts, max_tokens)

    def memo_texts(self, what: str, key: list, compute: Callable[[], list[str]]) -> tuple[list[str], bool]:
        """With ``lm.cache``, texts the LM produced for ``key`` (its weights' digest first) are kept in the
        cache and served again (billed as cached calls), so a rerun that changes only data-side
        settings does not redo them. Returns (texts, cached?)."""
        if not self.cache:
            return compute(), False
        mark = self._lm_config
        wm = [["watermark", mark.watermark_key, mark.watermark_gamma, mark.watermark_bias]] if mark.watermark else []
        digest = hashlib.sha256(json.dumps([self.lm_identity(), *wm, *key]).encode()).hexdigest()[:20]
        path = self.cache_dir / f"{what}-{digest}.json"
        try:
            texts = json.loads(path.read_text())["texts"]
            if isinstance(texts, list) and all(isinstance(t, str) for t in texts):
                self.meter.cached += len(texts)
                return texts, True
            log.warning("ignoring a damaged cache entry %s; computing it again", path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a damaged cache entry %s (%s); computing it again", path, exc)
        texts = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"texts": texts}))
        os.replace(tmp, path)
        return texts, False

    def generate_replies(self, users: list[str], max_new_tokens: int, temperature: float, top_p: float,
                         batch_size: int, seed: int, desc: str) -> list[str]:
        """One sampled reply per user message, the chat template applied (by the server, for a black-box LM)."""
        if self.black_box:
            return self.remote.generate(users, max_new_tokens, temperature, top_p, seed)
        from silobridge.models.generate import generate

        prompts = [build_prompt(self.lm, u) for u in users]
        return generate(self.lm, prompts, max_new_tokens, temperature, top_p, batch_size, seed=seed, desc=desc)

    @property
    def lm(self) -> CausalLM:
        """The LM, loaded on first use (strategies that never ask for it never pay for it)."""
        if self.black_box:
            raise ModelError(f"this needs the LM's weights, and {self._lm_config.path} is a black box (text and "
                             "log-probs only)", where="lm.path",
                             fix=f"use a local LM for this strategy, or one of: {', '.join(black_box_strategies())}")
        if self._lm is None:
            c = self._lm_config
            self._lm = with_watermark(load_lm(c.path, c.threads, c.dtype, c.device), c)
            self._lm.meter = self.meter
        return self._lm

    @property
    def lm_loaded(self) -> bool:
        return self._lm is not None

    def placement(self) -> dict[str, str]:
        """Where and in what precision the LM runs (as resolved from lm.device / lm.dtype)."""
        from silobridge.models.device import resolve

        if self.black_box:
            return {"device": f"remote ({self.remote.name})", "dtype": "unknown"}
        device, dtype = resolve(self._lm_config.dtype, self._lm_config.device)
        return {"device": str(device), "dtype": str(dtype).removeprefix("torch.")}


__all__ = ["ModelParty", "Received", "black_box_strategies"]
