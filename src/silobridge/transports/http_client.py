"""The data party's side of the HTTP transport: the same encoded carriers as the in-process
transport, sent to a model party started with ``silobridge serve``.

Retries are bounded and only where resending is safe: a connection that could not be made (the
request never left), and for ``call``/``ledger``/``report`` also a connection dropped mid-request (the server
answers a repeated ``seq`` with the reply it already computed). ``open`` is retried only when the
connection could not be made, since a second 'open' would start a second session."""
from __future__ import annotations

import json
import logging
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from silobridge import __version__
from silobridge.errors import BoundaryError, ConfigError, RemoteError, SilobridgeError, from_wire
from silobridge.transports.base import Transport

log = logging.getLogger("silobridge.http")

SEQ_HEADER = "X-Silobridge-Seq"
CONNECT_TIMEOUT = 10.0
SMALL_BODY = 1 << 16  # bodies above this are checked against the service's limit first
ERROR_BODY_LIMIT = 64 * 1024
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # the request never left
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)  # the connection broke mid-request


class HttpTransport(Transport):
    """Talks to a model-party HTTP service at ``url`` with ``api_key``.

    ``verify``: True (system CAs), False (no check: testing only), or the path of a CA bundle or of
    the server's self-signed certificate. ``timeout``: seconds to wait for a reply (operations can
    take minutes); connecting gives up after 10 s. ``retries``: how many times a safe-to-resend
    request is sent again after a connection failure (waits ``backoff``, 2x``backoff``, ...)."""

    kind = "http"

    def __init__(self, url: str, api_key: str, *, verify: str | bool = True, timeout: float = 3600.0,
                 retries: int = 3, backoff: float = 0.5, max_reply_bytes: int = 2**33):
        self.url = _check_url(url)
        if not api_key:
            raise ConfigError("the API key for the model party is empty", where="api key",
                              fix="set the key the model party was started with (see `silobridge serve`)")
        if retries < 0 or timeout <= 0:
            raise ConfigError(f"bad retries={retries} / timeout={timeout}", where="HttpTransport",
                              fix="retries >= 0 and timeout > 0")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.max_reply_bytes = max_reply_bytes
        self._server_limit: int | None = None  # the service's request limit, read from /health when first needed
        self._client = httpx.Client(
            base_url=self.url, verify=_ssl_context(verify), follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"silobridge/{__version__}",
                     "Accept-Encoding": "identity"})

    # --- the Transport API -----------------------------------------------------------------------
    def open(self, payload: bytes) -> bytes:
        return self._send("POST", "/v1/sessions", payload, resend_if_dropped=False)

    def call(self, session: str, seq: int, op: str, payload: bytes) -> bytes:
        path = f"/v1/sessions/{quote(session, safe='')}/ops/{quote(op, safe='')}"
        return self._send("POST", path, payload, headers={SEQ_HEADER: str(int(seq))})

    def ledger(self, session: str) -> list[dict]:
        return self._json(f"/v1/sessions/{quote(session, safe='')}/ledger")

    def report(self, session: str) -> dict:
        return self._json(f"/v1/sessions/{quote(session, safe='')}/report")

    def audit(self, session: str, request: dict) -> dict:
        body = json.dumps(request).encode()
        reply = self._send("POST", f"/v1/sessions/{quote(session, safe='')}/audit", body)
        return json.loads(reply)

    def health(self) -> dict[str, Any]:
        """The service's ``/health`` answer (no key needed); raises if it is unreachable."""
        return self._json("/health")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "HttpTransport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_size(self, size: int, what: str) -> None:
        """Refuse a body the service would refuse, before sending it: a server that answers 413 early and
        closes the connection can otherwise reach a client still uploading as a dropped connection."""
        if self._server_limit is None:
            limit = self.health().get("max_bytes")
            self._server_limit = int(limit) if isinstance(limit, int) and limit > 0 else 0
        if self._server_limit and size > self._server_limit:
            raise BoundaryError(f"{what}: {size:,} bytes exceeds the model party's limit of {self._server_limit:,}",
                                where="--model-url", fix="send smaller batches (the service's policy.max_bytes)")

    # --- one request, retried where safe -----------------------------------------------------------
    def _json(self, path: str) -> Any:
        body = self._send("GET", path)
        try:
            return json.loads(body)
        except ValueError:
            raise BoundaryError(f"GET {path} answered something that is not JSON", where="--model-url",
                                fix="check that the URL points at `silobridge serve`") from None

    def _send(self, method: str, path: str, payload: bytes | None = None, *, headers: dict[str, str] | None = None,
              resend_if_dropped: bool = True) -> bytes:
        """Send one request; returns the reply body, or raises the server's typed error."""
        if payload is not None and not isinstance(payload, bytes):
            payload = bytes(payload)
        if payload is not None and len(payload) > SMALL_BODY:
            self._check_size(len(payload), f"{method} {path}")
        for attempt in range(self.retries + 1):
            try:
                return self._once(method, path, payload, headers)
            except httpx.TimeoutException as exc:
                if not isinstance(exc, NOT_SENT) or attempt == self.retries:
                    raise self._failure(exc, method, path) from exc
            except httpx.TransportError as exc:
                safe = isinstance(exc, NOT_SENT) or (resend_if_dropped and isinstance(exc, DROPPED))
                if not safe or _is_tls_error(exc) or attempt == self.retries:
                    raise self._failure(exc, method, path) from exc
            wait = self.backoff * 2**attempt
            log.warning("%s %s: connection failed (attempt %d of %d); retrying in %.1f s", method, path,
                        attempt + 1, self.retries + 1, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, payload: bytes | None, headers: dict[str, str] | None) -> bytes:
        extra = dict(headers or {})
        if payload is not None:
            extra["Content-Type"] = "application/octet-stream"
        with self._client.stream(method, path, content=payload, headers=extra) as response:
            if response.status_code != 200:
                raise _error_from(response, self.url)
            return self._download(response)

    def _download(self, response: httpx.Response) -> bytes:
        """The reply body, read in streaming mode and joined once into one bytes object."""
        declared = response.headers.get("content-length")
        size = int(declared) if declared and declared.isascii() and declared.isdigit() else None
        if size is not None and size > self.max_reply_bytes:
            raise BoundaryError(f"the reply of {size:,} bytes exceeds this side's limit of {self.max_reply_bytes:,}",
                                where="--model-url", fix="raise max_reply_bytes or ask for smaller replies")
        chunks, got = [], 0
        for chunk in response.iter_raw():
            got += len(chunk)
            if got > (size if size is not None else self.max_reply_bytes):
                raise BoundaryError(f"the reply is longer than announced ({got:,}+ bytes)", where="--model-url")
            chunks.append(chunk)
        if size is not None and got != size:
            raise httpx.RemoteProtocolError(f"reply truncated: {got:,} of {size:,} bytes")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _failure(self, exc: httpx.HTTPError, method: str, path: str) -> SilobridgeError:
        """A connection-level failure as a typed error that names the URL and what to check."""
        where = "--model-url"
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, NOT_SENT):
            return RemoteError(f"{method} {path}: no complete answer from {self.url} within {self.timeout:.0f} s "
                               f"({type(exc).__name__})", where=where,
                               fix="the operation may still be running: raise the timeout, or check the model "
                                   "party's log")
        if _is_tls_error(exc):
            return BoundaryError(f"TLS with {self.url} failed: {exc}", where=where,
                                 fix="pass the server's certificate or CA bundle as verify=PATH (or use the URL "
                                     "scheme the server was started with)")
        hint = " (if the server uses TLS, use an https:// URL)" if self.url.startswith("http://") else ""
        return BoundaryError(f"{method} {path}: cannot reach the model party at {self.url}: "
                             f"{type(exc).__name__}: {exc or 'connection failed'}", where=where,
                             fix=f"check the URL, that `silobridge serve` is running there, and the network{hint}")


def _check_url(url: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"'{url}' is not an http:// or https:// URL", where="--model-url",
                          fix="give the model party's address, e.g. https://model-host:8765")
    return url.rstrip("/")


def _ssl_context(verify: str | bool) -> ssl.SSLContext | bool:
    """``verify`` as httpx wants it: a path becomes an SSL context trusting that bundle/certificate."""
    if isinstance(verify, bool):
        return verify
    path = Path(verify)
    if not path.exists():
        raise ConfigError(f"CA bundle / certificate '{verify}' not found", where="verify",
                          fix="pass the server's certificate (or its CA bundle) file, or a directory of CAs")
    try:
        if path.is_dir():
            return ssl.create_default_context(capath=str(path))
        return ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        raise ConfigError(f"cannot read '{verify}' as PEM certificates: {exc}", where="verify",
                          fix="pass a PEM certificate or CA bundle") from None


def _is_tls_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _error_from(response: httpx.Response, url: str) -> SilobridgeError:
    """The server's typed error (``{"error": {...}}``), or a BoundaryError naming the status."""
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > ERROR_BODY_LIMIT:
            break
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return from_wire(data["error"])
    snippet = bytes(body[:200]).decode("utf-8", "replace")
    return BoundaryError(f"HTTP {response.status_code} from {url} without a silobridge error: {snippet!r}",
                         where="--model-url", fix="check that the URL points at `silobridge serve`")


__all__ = ["HttpTransport"]
