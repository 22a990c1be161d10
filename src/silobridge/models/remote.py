"""A black-box LM: any server with an OpenAI-compatible API (vLLM, llama.cpp's server, ``silobridge
serve``) as the model party's LM — text and log-probs only, no weights.

``lm.path = "openai:URL"`` with URL the API base as OpenAI clients take it (``http://host:8000/v1``);
``openai:URL#MODEL`` names the served model (else the first one ``/v1/models`` lists); the API key is
read from the environment variable ``lm.api_key_env``.

Label scoring asks ``/v1/chat/completions`` for one token with its top-k log-probs (k = 20, OpenAI's
most): the server applies the model's own chat template, as the in-process LM does. A label word whose
first token is not among the top k gets the smallest log-prob returned (an upper bound), and the
result counts such answers (``outside_top_k``). Texts are cut to ``max_text_tokens`` with the server's
``/tokenize`` + ``/detokenize`` (vLLM's and silobridge's), else to that many words (stated in
``truncation``)."""
from __future__ import annotations

import concurrent.futures
import os
from dataclasses import dataclass, field

import numpy as np

from silobridge.errors import ConfigError, ModelError
from silobridge.models.lm import Meter, renormalise

TOP_K = 20
PREFIX = "openai:"


def is_remote(path: str | None) -> bool:
    return bool(path) and path.startswith(PREFIX)


@dataclass
class OpenAILM:
    base: str  # the API base, e.g. http://127.0.0.1:8000/v1
    key: str
    model: str
    meter: Meter = field(default_factory=Meter)
    concurrency: int = 8
    timeout: float = 300.0
    outside_top_k: int = 0
    truncation: str = "tokens"

    @property
    def name(self) -> str:
        return f"{self.model} at {self.base}"

    @classmethod
    def connect(cls, path: str, key_env: str, timeout: float = 300.0) -> "OpenAILM":
        url, _, model = path[len(PREFIX):].partition("#")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"'{path}' is not openai:http(s)://host:port/v1", where="lm.path",
                              fix="pass the API base as OpenAI clients take it: --lm openai:http://127.0.0.1:8000/v1")
        key = os.environ.get(key_env, "") if key_env else ""
        lm = cls(url.rstrip("/"), key, model, timeout=timeout)
        if not model:
            listed = lm._call("GET", "/models")
            try:
                lm.model = listed["data"][0]["id"]
            except (KeyError, IndexError, TypeError):
                raise ModelError(f"{url}/models lists no model", where="lm.path",
                                 fix="name the model: --lm openai:URL#MODEL") from None
        return lm

    # --- transport ---------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict | None = None, root: bool = False) -> dict:
        import httpx

        base = self.base.removesuffix("/v1") if root else self.base
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            r = httpx.request(method, base + path, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ModelError(f"cannot reach the LM server: {exc}", where=f"lm.path ({self.base})",
                             fix="start the server, or check the URL (the API base, ending in /v1)") from exc
        if r.status_code != 200:
            try:
                err = r.json().get("error", {})
                msg = err.get("message") if isinstance(err, dict) else str(err)
            except ValueError:
                msg = r.text[:200]
            where = f"lm.api_key_env ({self.base})" if r.status_code == 401 else f"lm.path ({base}{path})"
            raise ModelError(f"the LM server answered {r.status_code}: {msg}", where=where,
                             fix="set the key's variable (lm.api_key_env)" if r.status_code == 401 else
                             "check the server's log; the request was " + path)
        return r.json()

    def _chat(self, messages: list[dict], **kw) -> dict:
        reply = self._call("POST", "/chat/completions", {"model": self.model, "messages": messages, **kw})
        usage = reply.get("usage") or {}
        self.meter.calls += 1
        self.meter.tokens_in += int(usage.get("prompt_tokens", 0))
        self.meter.tokens_out += int(usage.get("completion_tokens", 0))
        return reply

    def _map(self, fn, items: list) -> list:
        with concurrent.futures.ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, items))

    # --- what strategies ask of an LM -----------------------------------------------------------------
    def truncate(self, texts: list[str], max_tokens: int) -> list[str]:
        """Each text cut to ``max_tokens`` of the server's tokens and decoded back (words, if it cannot tokenize)."""
        def cut(text: str) -> str:
            if self.truncation == "tokens":
                try:
                    ids = self._call("POST", "/tokenize", {"model": self.model, "prompt": text,
                                                           "add_special_tokens": False}, root=True)["tokens"]
                    # decoded even when short enough, as the in-process LM does (a tokenizer may normalise)
                    return self._call("POST", "/detokenize", {"model": self.model, "tokens": ids[:max_tokens]},
                                      root=True)["prompt"]
                except (ModelError, KeyError, TypeError):
                    self.truncation = "words"  # the server has no tokenizer endpoints
            return " ".join(text.split()[:max_tokens])
        return self._map(cut, texts)

    def score_labels(self, texts: list[str], user_template: str, label_words: list[str], max_text_tokens: int = 96,
                     shots: tuple[tuple[str, str], ...] = (),
                     shots_each: list[tuple[tuple[str, str], ...]] | None = None) -> np.ndarray:
        """log P(first token of each label word | chat prompt(text)) renormalised over the labels, from the
        top-k log-probs of the answer's first token: (n, k). ``shots_each``: each text's own demonstrations
        (instead of ``shots``, the same for all)."""
        each = shots_each if shots_each is not None else [shots] * len(texts)

        def one(item: tuple[str, tuple[tuple[str, str], ...]]) -> list[float]:
            text, demos = item
            history = [m for q, a in demos for m in ({"role": "user", "content": q},
                                                     {"role": "assistant", "content": a})]
            msgs = history + [{"role": "user", "content": user_template.replace("{text}", text)}]
            reply = self._chat(msgs, max_tokens=1, temperature=0, logprobs=True, top_logprobs=TOP_K)
            try:
                top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
                found = {str(t["token"]): float(t["logprob"]) for t in top}
            except (KeyError, IndexError, TypeError):
                raise ModelError("the LM server returned no top log-probs", where=f"lm.path ({self.base})",
                                 fix="use a server that supports logprobs/top_logprobs on chat completions") from None
            return label_logprobs(found, label_words)

        rows = self._map(one, list(zip(self.truncate(texts, max_text_tokens), each)))
        logp = np.array([[v for v, _ in r] for r in rows], np.float64).reshape(len(texts), len(label_words))
        self.outside_top_k += sum(not hit for r in rows for _, hit in r)
        return renormalise(logp)

    def generate(self, users: list[str], max_new_tokens: int, temperature: float, top_p: float,
                 seed: int = 0) -> list[str]:
        """One reply per user message (chat template on the server's side)."""
        def one(item: tuple[int, str]) -> str:
            i, user = item
            reply = self._chat([{"role": "user", "content": user}], max_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p, seed=seed + i)
            return str(reply["choices"][0]["message"]["content"] or "").strip()
        return self._map(one, list(enumerate(users)))


def label_logprobs(top: dict[str, float], words: list[str]) -> list[tuple[float, bool]]:
    """Each label word's log-prob from a next token's top alternatives: the word itself as a token, else
    the best token that starts it (compared without surrounding spaces, case-insensitive); absent: the
    smallest log-prob returned (an upper bound on its own), flagged False."""
    floor = min(top.values()) if top else -1e4
    out = []
    for w in words:
        w = w.strip().lower()
        exact = [lp for t, lp in top.items() if t.strip().lower() == w]
        hits = exact or [lp for t, lp in top.items() if (s := t.strip().lower()) and w.startswith(s)]
        out.append((max(hits), True) if hits else (floor, False))
    return out
