"""The model party's OpenAI-compatible API, the one users point their tools at: ``GET /v1/models``,
``POST /v1/completions`` (``logprobs``; ``echo`` with ``max_tokens=0`` for prompt log-probs) and
``POST /v1/chat/completions`` (``logprobs`` / ``top_logprobs``), in the response shapes vLLM returns.
Same API key as the rest of the service (401 with a JSON error body otherwise); every call is metered
into the engine's call ledger. Requests are parsed and checked here; the LM work is the engine's."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from silobridge.errors import BoundaryError
from silobridge.models.completion import cut_at_stop
from silobridge.serving.engine import Answer, CompletionEngine, Work, key_digest, new_id

MAX_ALTERNATIVES = 20  # top log-probs per token, as OpenAI allows
UNKNOWN_MODEL = "openai.model"  # an error 'where' the service answers with 404


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")  # options of other servers are accepted and ignored

    model: str
    max_tokens: int | None = Field(None, ge=0)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="one choice per prompt")
    stream: Literal[False] = False


class CompletionRequest(_Request):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(None, ge=0, le=MAX_ALTERNATIVES)
    echo: bool = False


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=0)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_ALTERNATIVES)


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    prompt: str
    add_special_tokens: bool = True


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    tokens: list[int]


def parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise BoundaryError(f"malformed request: {problems}", where="request body",
                            fix="see the OpenAI completions API (n=1, stream=false, 0 <= logprobs <= 20)") from None


class OpenAIFront:
    """Turns API requests into engine work and engine answers into OpenAI-shaped replies."""

    def __init__(self, engine: CompletionEngine):
        self.engine = engine

    @property
    def tok(self):
        return self.engine.lm.tokenizer

    def check_model(self, name: str) -> None:
        if name != self.engine.name:
            raise BoundaryError(f"the model '{name}' does not exist", where=UNKNOWN_MODEL,
                                fix=f"use model '{self.engine.name}' (GET /v1/models lists it)")

    def check_length(self, prompts: list[list[int]], max_tokens: int) -> None:
        longest = max(len(p) for p in prompts)
        if longest == 0:
            raise BoundaryError("a prompt is empty", where="prompt", fix="send at least one token")
        if longest + max_tokens > self.engine.max_model_len:
            raise BoundaryError(f"this model's maximum context length is {self.engine.max_model_len} tokens; the "
                                f"request asks for {longest} prompt + {max_tokens} completion tokens",
                                where="prompt", fix="shorten the prompt or lower max_tokens")

    def token(self, tid: int) -> str:
        return self.tok.decode([tid])

    # --- /v1/completions ---------------------------------------------------------------------------
    def completion_work(self, req: CompletionRequest) -> tuple[Work, list[str]]:
        self.check_model(req.model)
        p, ids = req.prompt, None
        if isinstance(p, str):
            texts = [p]
        elif p and all(isinstance(x, str) for x in p):
            texts = list(p)
        elif p and all(isinstance(x, int) for x in p):
            ids = [list(p)]
        elif p and all(isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in p):
            ids = [list(x) for x in p]
        else:
            raise BoundaryError("the prompt is empty or mixes kinds", where="prompt",
                                fix="send a string, a list of strings, token ids, or a list of token-id lists")
        if ids is None:
            ids = [self.tok(t)["input_ids"] for t in texts]
        else:
            vocab = len(self.tok)
            if any(not 0 <= t < vocab for x in ids for t in x):
                raise BoundaryError(f"a token id is outside the vocabulary [0, {vocab})", where="prompt",
                                    fix="send token ids of this model's tokenizer")
            texts = [self.tok.decode(x) for x in ids]
        max_tokens = 16 if req.max_tokens is None else req.max_tokens
        if max_tokens == 0 and not req.echo:
            raise BoundaryError("max_tokens=0 returns nothing without echo", where="max_tokens",
                                fix="ask for at least one token, or set echo=true for the prompt's log-probs")
        self.check_length(ids, max_tokens)
        top = req.logprobs or 0
        return Work(tuple(map(tuple, ids)), max_tokens, req.temperature, req.top_p, top, req.echo, req.seed), texts

    def completion_reply(self, req: CompletionRequest, work: Work, texts: list[str], answers: list[Answer]) -> dict:
        choices, used = [], 0
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        for i, (text, ids, a) in enumerate(zip(texts, work.prompts, answers)):
            gen_ids = a.completion.token_ids
            gen = self.tok.decode(gen_ids, skip_special_tokens=True)
            gen, stopped = cut_at_stop(gen, stops)
            finish = "stop" if stopped else a.completion.finish_reason
            tokens = [self.token(t) for t in gen_ids]
            lps, tops = list(a.completion.logprobs), list(a.completion.top)
            if stopped:  # keep the tokens that make up the text before the stop string
                n, length = 0, 0
                while n < len(tokens) and length + len(tokens[n]) <= len(gen):
                    length += len(tokens[n])
                    n += 1
                tokens, lps, tops, gen_ids = tokens[:n], lps[:n], tops[:n], gen_ids[:n]
            used += len(gen_ids)
            logprobs = None
            if req.logprobs is not None:
                all_tokens, all_lps, all_tops = tokens, lps, [self._named(t) for t in tops]
                if req.echo:
                    all_tokens = [self.token(t) for t in ids] + tokens
                    all_lps = [None, *a.prompt_logprobs] + lps
                    all_tops = [None, *[self._named(t) for t in a.prompt_top]] + all_tops
                offsets, at = [], 0
                for t in all_tokens:
                    offsets.append(at)
                    at += len(t)
                logprobs = {"text_offset": offsets, "token_logprobs": all_lps, "tokens": all_tokens,
                            "top_logprobs": all_tops if req.logprobs else [None if x is None else {} for x in all_tops]}
            choices.append({"index": i, "text": (text if req.echo else "") + gen, "logprobs": logprobs,
                            "finish_reason": finish, "stop_reason": None})
        prompt_tokens = sum(len(p) for p in work.prompts)
        return {"id": new_id("cmpl"), "object": "text_completion", "created": int(time.time()),
                "model": self.engine.name, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": used,
                          "total_tokens": prompt_tokens + used}}

    def _named(self, top: dict[int, float]) -> dict[str, float]:
        return {self.token(t): v for t, v in top.items()}

    # --- /v1/chat/completions ----------------------------------------------------------------------
    def chat_work(self, req: ChatRequest) -> Work:
        self.check_model(req.model)
        if req.top_logprobs and not req.logprobs:
            raise BoundaryError("top_logprobs needs logprobs=true", where="top_logprobs", fix="set logprobs=true")
        if not getattr(self.tok, "chat_template", None):
            raise BoundaryError(f"the model '{self.engine.name}' has no chat template", where="messages",
                                fix="use /v1/completions with a prompt, or serve a model whose tokenizer has one")
        msgs = [m.model_dump() for m in req.messages]
        ids = self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)
        ids = list(ids["input_ids"])
        limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        max_tokens = self.engine.max_model_len - len(ids) if limit is None else limit
        if max_tokens == 0:
            raise BoundaryError("max_tokens=0 leaves nothing to answer", where="max_tokens", fix="ask for >= 1 token")
        self.check_length([ids], max_tokens)
        return Work((tuple(ids),), max_tokens, req.temperature, req.top_p, req.top_logprobs or 0, False, req.seed)

    def chat_reply(self, req: ChatRequest, work: Work, answer: Answer) -> dict:
        c = answer.completion
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        text, stopped = cut_at_stop(self.tok.decode(c.token_ids, skip_special_tokens=True), stops)
        special = set(self.tok.all_special_ids)
        logprobs = None
        if req.logprobs:
            content = []
            for tid, lp, top in zip(c.token_ids, c.logprobs, c.top):
                if tid in special:
                    continue
                t = self.token(tid)
                content.append({"token": t, "logprob": lp, "bytes": list(t.encode()),
                                "top_logprobs": [{"token": self.token(k), "logprob": v,
                                                  "bytes": list(self.token(k).encode())} for k, v in top.items()]})
            logprobs = {"content": content}
        used = len(c.token_ids)
        return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
                "model": self.engine.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": logprobs,
                             "finish_reason": "stop" if stopped else c.finish_reason, "stop_reason": None}],
                "usage": {"prompt_tokens": len(work.prompts[0]), "completion_tokens": used,
                          "total_tokens": len(work.prompts[0]) + used}}


def install(app: FastAPI, engine: CompletionEngine, auth: list, read_body, max_bytes: int) -> None:
    """Add the OpenAI-compatible routes to the model party's app (``auth``: its key dependency)."""
    front = OpenAIFront(engine)

    def metered(request: Request, endpoint: str, body: bytes, reply: dict, status: int = 200) -> Response:
        out = json.dumps(reply).encode()
        usage = reply.get("usage", {})
        engine.ledger.record(endpoint=endpoint, model=engine.name, bytes_in=len(body), bytes_out=len(out),
                             prompt_tokens=usage.get("prompt_tokens", 0),
                             completion_tokens=usage.get("completion_tokens", 0), status=status,
                             client=key_digest(request.headers.get("authorization", "")))
        return Response(out, media_type="application/json", status_code=status)

    async def run(work: Work) -> list[Answer]:
        return await asyncio.wrap_future(engine.submit(work))

    @app.get("/v1/models", dependencies=auth)
    async def models(request: Request) -> Response:
        reply = {"object": "list", "data": [{"id": engine.name, "object": "model", "created": int(time.time()),
                                             "owned_by": "silobridge", "root": engine.name,
                                             "max_model_len": engine.max_model_len}]}
        return metered(request, "models", b"", reply)

    @app.post("/tokenize", dependencies=auth)
    async def tokenize(request: Request) -> Response:
        """vLLM's tokenizer endpoint: a prompt's token ids (clients use it to cut texts to a token budget)."""
        body = await read_body(request, max_bytes)
        req = parse(TokenizeRequest, body)
        front.check_model(req.model)
        ids = front.tok(req.prompt, add_special_tokens=req.add_special_tokens)["input_ids"]
        return metered(request, "tokenize", body, {"count": len(ids), "max_model_len": engine.max_model_len,
                                                   "tokens": ids, "token_strs": None})

    @app.post("/detokenize", dependencies=auth)
    async def detokenize(request: Request) -> Response:
        body = await read_body(request, max_bytes)
        req = parse(DetokenizeRequest, body)
        front.check_model(req.model)
        vocab = len(front.tok)
        if any(not 0 <= t < vocab for t in req.tokens):
            raise BoundaryError(f"a token id is outside the vocabulary [0, {vocab})", where="tokens",
                                fix="send token ids of this model's tokenizer")
        return metered(request, "detokenize", body, {"prompt": front.tok.decode(req.tokens)})

    @app.post("/v1/completions", dependencies=auth)
    async def completions(request: Request) -> Response:
        body = await read_body(request, max_bytes)
        req = parse(CompletionRequest, body)
        work, texts = await asyncio.to_thread(front.completion_work, req)
        answers = await run(work)
        return metered(request, "completions", body, await asyncio.to_thread(
            front.completion_reply, req, work, texts, answers))

    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat(request: Request) -> Response:
        body = await read_body(request, max_bytes)
        req = parse(ChatRequest, body)
        work = await asyncio.to_thread(front.chat_work, req)
        answers = await run(work)
        return metered(request, "chat.completions", body, front.chat_reply(req, work, answers[0]))
