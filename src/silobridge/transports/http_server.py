"""The model party as an HTTP service: a thin FastAPI layer over :class:`ModelServer`'s bytes-in /
bytes-out API. It adds what a network needs and nothing else: an API key, a request size limit,
typed errors as JSON with meaningful status codes, and replies streamed in chunks.

Endpoints (all but ``/health`` need ``Authorization: Bearer <key>``)::

    GET  /health                          {"status": "ok", ...}
    POST /v1/sessions                     body: encoded 'open' carrier   -> encoded reply
    POST /v1/sessions/{sid}/ops/{op}      body: encoded carrier, header X-Silobridge-Seq: <int>
    GET  /v1/stats                        the service's counters (open sessions, batched scoring)
    GET  /v1/sessions/{sid}/ledger        the session's ledger (JSON list)
    GET  /v1/sessions/{sid}/report        a closed session's report (JSON object)
    POST /v1/sessions/{sid}/audit         the auditor's canary-candidate losses (JSON; measurement, not protocol)
    GET  /v1/models, POST /v1/completions, POST /v1/chat/completions
                                          the OpenAI-compatible API (when started with a completion engine)

Errors: ``{"error": to_wire(exc) | {"message", "code"}}`` with 401 (key), 403 (policy), 400 (malformed request), 404
(unknown session or route), 413 (too large), 422 (config / data / model), 500 (crash)."""
from __future__ import annotations

import hmac
import json
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from silobridge import __version__
from silobridge.errors import (ERROR_TYPES, AuthError, BoundaryError, ConfigError, DataError, ModelError,
                               PolicyViolation, RemoteError, SilobridgeError, to_wire)

if TYPE_CHECKING:
    import uvicorn

    from silobridge.parties.model_server import ModelServer
    from silobridge.serving.engine import CompletionEngine

log = logging.getLogger("silobridge.http")

CHUNK = 1 << 20  # replies leave in 1 MiB slices of the one encoded payload
SEQ_HEADER = "X-Silobridge-Seq"
OCTETS = "application/octet-stream"
NOT_FOUND_WHERE = frozenset({"model.session", "model.ledger", "model.report",  # ModelServer's "no such ..."
                             "openai.model"})


class PayloadTooLarge(BoundaryError):
    """A request body over the model party's limit (sent as a BoundaryError with status 413)."""


# --- errors as JSON --------------------------------------------------------------------------------
def status_for(exc: SilobridgeError) -> int:
    """The HTTP status a typed error is sent with."""
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, PolicyViolation):
        return 403
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, BoundaryError):
        return 404 if exc.where in NOT_FOUND_WHERE else 400
    if isinstance(exc, (ConfigError, DataError, ModelError)):
        return 422
    return 500


def error_response(exc: SilobridgeError, status: int | None = None) -> JSONResponse:
    """``{"error": to_wire(exc)}``; a subclass the client cannot know is sent as its nearest known base.
    The connection is closed after it: the request body may be unread (refused early)."""
    body = to_wire(exc)
    body["type"] = next(c.__name__ for c in type(exc).__mro__ if ERROR_TYPES.get(c.__name__) is c)
    status = status or status_for(exc)
    body |= {"message": str(exc), "code": status}  # what OpenAI clients read
    return JSONResponse({"error": body}, status_code=status, headers={"Connection": "close"})


def _install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as JSON: typed errors, FastAPI's own (unknown route, bad method) and crashes."""

    @app.exception_handler(SilobridgeError)
    async def typed(request: Request, exc: SilobridgeError) -> JSONResponse:
        if status_for(exc) >= 500:
            log.warning("%s %s answered %d: %s", request.method, request.url.path, status_for(exc), exc)
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        what = f"{request.method} {request.url.path}: {exc.detail}"
        return error_response(BoundaryError(what, where="http", fix="see the endpoints in silobridge.transports."
                                                                     "http_server"), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(BoundaryError(f"malformed request: {exc.errors()}", where="http"), 400)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s crashed", request.method, request.url.path, exc_info=exc)
        return error_response(_as_remote(exc))


def _as_remote(exc: Exception) -> RemoteError:
    return RemoteError(f"the model party failed: {type(exc).__name__}: {exc}", where="model",
                       fix="see the model party's log")


async def _blocking(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking ModelServer call in the threadpool (so /health stays responsive); an unexpected
    exception is logged with its traceback here and becomes a RemoteError."""
    try:
        return await run_in_threadpool(fn, *args)
    except SilobridgeError:
        raise
    except Exception as exc:
        log.exception("%s failed", getattr(fn, "__qualname__", fn))
        raise _as_remote(exc) from exc


# --- requests and replies --------------------------------------------------------------------------
def _key_checker(api_key: str) -> Callable[[Request], None]:
    expected = f"Bearer {api_key}".encode()

    def require_key(request: Request) -> None:
        """Refuse a missing or wrong ``Authorization: Bearer <key>`` (constant-time comparison)."""
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            raise AuthError("missing or wrong API key" if given else "missing API key", where="Authorization",
                            fix="send 'Authorization: Bearer <key>' with the key the model party was started with")

    return require_key


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes: from its
    Content-Length before reading anything, or while reading a chunked body."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _is_count(declared):
            raise BoundaryError(f"bad Content-Length {declared[:40]!r}", where="Content-Length",
                                fix="send the body's length in bytes")
        _check_limit(int(declared), limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            _check_limit(len(body), limit)
    except ClientDisconnect:
        log.info("client disconnected during the upload to %s (%d bytes received)", request.url.path, len(body))
        raise BoundaryError("the client disconnected during the upload", where="http") from None
    return bytes(body)


def _is_count(text: str) -> bool:
    """Whether a header value is a plain non-negative decimal integer (ASCII digits only)."""
    text = text.strip()
    return 0 < len(text) <= 30 and text.isascii() and text.isdigit()


def _check_limit(size: int, limit: int) -> None:
    if size > limit:
        raise PayloadTooLarge(f"request body of {size:,}+ bytes exceeds the model party's limit of {limit:,}",
                              where="request body", fix="send smaller batches (policy.max_bytes of the model party)")


def _seq(request: Request) -> int:
    raw = request.headers.get(SEQ_HEADER)
    if raw is None or not _is_count(raw):
        raise BoundaryError(f"missing or bad {SEQ_HEADER} header ({(raw or '')[:40]!r})", where=SEQ_HEADER,
                            fix="send the request's ledger sequence number, an integer >= 0")
    return int(raw)


def reply(payload: bytes) -> Response:
    """The encoded reply; large ones are streamed as memoryview slices of the one payload."""
    if len(payload) <= CHUNK:
        return Response(content=bytes(payload), media_type=OCTETS)

    async def chunks() -> AsyncIterator[memoryview]:
        view = memoryview(payload)
        for start in range(0, len(view), CHUNK):
            yield view[start:start + CHUNK]

    return StreamingResponse(chunks(), media_type=OCTETS, headers={"Content-Length": str(len(payload))})


# --- the app -------------------------------------------------------------------------------------
def create_app(server: "ModelServer", api_key: str, engine: "CompletionEngine | None" = None) -> FastAPI:
    """The HTTP service for ``server`` (anything with ModelServer's ``open``/``call``/``ledger``/``report``
    and ``max_bytes``); with ``engine``, also the OpenAI-compatible API (silobridge.serving.openai_api)."""
    if not api_key:
        raise ConfigError("the API key is empty", where="api_key", fix="start the service with a non-empty key")
    app = FastAPI(title="silobridge model party", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)
    _install_error_handlers(app)
    auth = [Depends(_key_checker(api_key))]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, without a key."""
        return {"status": "ok", "service": "silobridge-model-party", "version": __version__,
                "max_bytes": server.max_bytes}

    @app.post("/v1/sessions", dependencies=auth)
    async def open_session(request: Request) -> Response:
        """Open a session from the encoded 'open' carrier."""
        payload = await read_body(request, server.max_bytes)
        return reply(await _blocking(server.open, payload))

    @app.post("/v1/sessions/{sid}/ops/{op}", dependencies=auth)
    async def call(sid: str, op: str, request: Request) -> Response:
        """Run operation ``op`` of session ``sid`` (retry-safe by the sequence number)."""
        seq = _seq(request)
        payload = await read_body(request, server.max_bytes)
        return reply(await _blocking(server.call, sid, seq, op, payload))

    @app.get("/v1/stats", dependencies=auth)
    async def stats() -> dict[str, Any]:
        """The service's counters (open sessions, scoring requests batched, OpenAI-API completions)."""
        out = server.stats() if hasattr(server, "stats") else {}
        return out | ({"completions": engine.stats_dict()} if engine is not None else {})

    if engine is not None:
        from silobridge.serving.openai_api import install

        install(app, engine, auth, read_body, server.max_bytes)

    @app.get("/v1/sessions/{sid}/ledger", dependencies=auth)
    async def ledger(sid: str) -> JSONResponse:
        """The model party's ledger of session ``sid``."""
        return JSONResponse(await _blocking(server.ledger, sid))

    @app.post("/v1/sessions/{sid}/audit", dependencies=auth)
    async def audit(sid: str, request: Request) -> JSONResponse:
        """The auditor's measurement on open session ``sid`` (losses of canary candidates)."""
        body = await read_body(request, server.max_bytes)
        try:
            req = json.loads(body)
        except ValueError:
            raise BoundaryError("the audit request is not JSON", where="model.audit",
                                fix="send {'prefix': str, 'candidates': [str, ...]}") from None
        return JSONResponse(await _blocking(server.audit, sid, req if isinstance(req, dict) else {}))

    @app.get("/v1/sessions/{sid}/report", dependencies=auth)
    async def report(sid: str) -> JSONResponse:
        """The model party's report of the closed session ``sid``."""
        return JSONResponse(await _blocking(server.report, sid))

    return app


def build_server(server: "ModelServer", host: str, port: int, api_key: str, certfile: str | None = None,
                 keyfile: str | None = None, log_level: str = "info",
                 engine: "CompletionEngine | None" = None) -> "uvicorn.Server":
    """A uvicorn server for the app (TLS when both ``certfile`` and ``keyfile`` are given); not started."""
    import uvicorn

    if bool(certfile) != bool(keyfile):
        raise ConfigError("TLS needs both a certificate and its private key", where="--tls-cert/--tls-key",
                          fix="pass both --tls-cert and --tls-key, or neither for plain HTTP")
    if not certfile and not _is_loopback(host):
        log.warning("serving plain HTTP on %s: the API key and every carrier cross the network unencrypted; "
                    "use --tls-cert/--tls-key (or a TLS proxy)", host)
    config = uvicorn.Config(create_app(server, api_key, engine), host=host, port=port, log_level=log_level,
                            ssl_certfile=certfile, ssl_keyfile=keyfile, server_header=False, lifespan="off")
    return uvicorn.Server(config)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(server: "ModelServer", host: str = "127.0.0.1", port: int = 8765, api_key: str = "",
          certfile: str | None = None, keyfile: str | None = None, log_level: str = "info",
          engine: "CompletionEngine | None" = None) -> None:
    """Serve ``server`` (and, with ``engine``, the OpenAI-compatible API) over HTTP(S) until interrupted."""
    build_server(server, host, port, api_key, certfile, keyfile, log_level, engine).run()


__all__ = ["create_app", "build_server", "serve", "status_for", "PayloadTooLarge"]
