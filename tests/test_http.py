"""The HTTP transport: the model party's service (FastAPI + uvicorn) and the data party's client.

Most tests use a fake server with ModelServer's bytes-in / bytes-out API (so they test the transport
alone, not strategies); servers run in background threads on ports the OS picks, and are always
stopped."""
from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from silobridge.errors import ERROR_TYPES, AuthError, BoundaryError, ConfigError, PolicyViolation, RemoteError
from silobridge.transports.http_client import HttpTransport
from silobridge.transports.http_server import build_server

KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAGIC = b"SBC1"
CARRIER = MAGIC + bytes(range(256)) * 4
LIMIT = 16 << 20


# --- a fake model party -------------------------------------------------------------------------------
class FakeServer:
    """ModelServer's API without strategies: bodies must start with the carrier magic; 'open' names a
    session; ops echo, answer big replies, sleep, or raise chosen errors; a repeated seq gets the
    same reply; ``runs`` counts executions per (session, seq)."""

    def __init__(self, max_bytes: int = LIMIT):
        self.max_bytes = max_bytes
        self.sessions: dict[str, dict] = {}
        self.runs: collections.Counter = collections.Counter()
        self.reports: dict[str, dict] = {}
        self.opened = 0
        self._lock = threading.Lock()

    @staticmethod
    def _carrier(payload: bytes, where: str) -> bytes:
        assert isinstance(payload, bytes)
        if payload[:4] != MAGIC:
            raise BoundaryError("payload is not a silobridge carrier", where=where, fix="send carriers")
        return payload[4:]

    def open(self, payload: bytes) -> bytes:
        self._carrier(payload, "model.open")
        sid = uuid.uuid4().hex
        reply = MAGIC + b"session=" + sid.encode()
        with self._lock:
            self.sessions[sid] = {"last": (0, reply), "ledger": [{"seq": 0, "op": "open", "bytes": len(payload)}]}
            self.opened += 1
        return reply

    def call(self, sid: str, seq: int, op: str, payload: bytes) -> bytes:
        body = self._carrier(payload, f"model.{op}")
        with self._lock:
            s = self.sessions.get(sid)
        if s is None:
            raise BoundaryError(f"no open session '{sid}'", where="model.session", fix="open a session first")
        if seq == s["last"][0]:
            return s["last"][1]
        if seq != s["last"][0] + 1:
            raise BoundaryError(f"request {seq} is out of order", where=f"model.{op}", fix="send calls in order")
        self.runs[(sid, seq)] += 1
        out = MAGIC + self._run(op, body)
        s["last"] = (seq, out)
        s["ledger"].append({"seq": seq, "op": op, "bytes": len(payload)})
        if op == "close":
            self.reports[sid] = {"calls": len(s["ledger"]) - 1}
            del self.sessions[sid]
        return out

    def _run(self, op: str, body: bytes) -> bytes:
        if op in ("echo", "close"):
            return body
        if op == "big":
            return bytes(range(256)) * (int(body) // 256)
        if op == "slow":
            time.sleep(float(body))
            return b"done"
        if op == "policy":
            raise PolicyViolation("no_raw_text", "a private record", sender="model", receiver="data",
                                  kind="TextBatch", fix="send only public texts")
        if op == "config":
            raise ConfigError("bad option", where="strategy.k", fix="set k >= 1")
        if op == "remote":
            raise RemoteError("operation 'remote' failed", where="model.remote", fix="see the log")
        if op == "crash":
            raise RuntimeError("boom")
        raise BoundaryError(f"the model party offers no operation '{op}'", where="channel", fix="echo, big, ...")

    def report(self, sid: str) -> dict:
        if sid not in self.reports:
            raise BoundaryError(f"no report for session '{sid}' (is it closed?)", where="model.report")
        return self.reports[sid]

    def ledger(self, sid: str) -> list[dict]:
        for_sid = self.sessions.get(sid)
        if for_sid is None:
            raise BoundaryError(f"no ledger for session '{sid}'", where="model.ledger")
        return for_sid["ledger"]


# --- running servers --------------------------------------------------------------------------------
def bound_socket() -> socket.socket:
    """A socket bound to a free loopback port, not yet listening (connections to it are refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Running:
    """A uvicorn server for ``server`` in a background thread; ``stop()`` always ends it."""

    def __init__(self, server, certfile: str | None = None, keyfile: str | None = None):
        self.sock = bound_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if certfile else 'http'}://127.0.0.1:{self.port}"
        self.uv = build_server(server, "127.0.0.1", self.port, KEY, certfile, keyfile, log_level="warning")
        self.thread: threading.Thread | None = None

    def start(self, delay: float = 0.0, wait: bool = True) -> "Running":
        def run() -> None:
            time.sleep(delay)
            if not self.uv.should_exit:
                self.uv.run(sockets=[self.sock])

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while wait and not self.uv.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.uv.should_exit = True
        if self.thread is not None:
            self.thread.join(15)
            assert not self.thread.is_alive(), "server did not stop"
        self.sock.close()


@contextlib.contextmanager
def running(server, **kw):
    r = Running(server, **kw).start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def fake():
    return FakeServer()


@pytest.fixture(scope="module")
def service(fake):
    with running(fake) as r:
        yield r


@pytest.fixture
def client(service):
    with HttpTransport(service.url, KEY, retries=2, backoff=0.05) as t:
        yield t


def assert_healthy(url: str, **kw) -> None:
    r = httpx.get(f"{url}/health", timeout=5, **kw)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def error_of(r: httpx.Response) -> dict:
    """The JSON error body of an error response (asserting it is one)."""
    assert r.headers["content-type"].startswith("application/json"), r.text[:200]
    err = r.json()["error"]
    assert err["type"] in ERROR_TYPES and isinstance(err["what"], str)
    return err


def sid_of(reply: bytes) -> str:
    return reply.split(b"session=")[1].decode()


# --- endpoints, auth, round trips --------------------------------------------------------------
def test_health_needs_no_key(service):
    r = httpx.get(f"{service.url}/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["max_bytes"] == LIMIT


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"},
                                     {"Authorization": f"bearer {KEY}"}, {"Authorization": "Bearer"}])
def test_every_other_route_needs_the_key(service, headers):
    for method, path in [("POST", "/v1/sessions"), ("POST", "/v1/sessions/abc/ops/echo"),
                         ("GET", "/v1/sessions/abc/ledger"), ("GET", "/v1/sessions/abc/report")]:
        r = httpx.request(method, service.url + path, content=CARRIER if method == "POST" else None,
                          headers={**headers, "X-Silobridge-Seq": "1"})
        assert r.status_code == 401, (method, path)
        err = error_of(r)
        assert err["type"] == "AuthError" and err["where"] == "Authorization" and "Bearer" in err["fix"]


def test_wrong_key_is_a_typed_auth_error(service):
    with HttpTransport(service.url, "not-the-key", retries=0) as t:
        with pytest.raises(AuthError) as info:
            t.open(CARRIER)
    assert "Bearer" in info.value.fix


def test_round_trip_of_bytes(client, fake):
    reply = client.open(CARRIER)
    sid = sid_of(reply)
    assert client.call(sid, 1, "echo", CARRIER) == CARRIER
    assert client.call(sid, 1, "echo", CARRIER) == CARRIER  # a retry of the same seq: same reply, not re-run
    assert fake.runs[(sid, 1)] == 1
    assert [e["op"] for e in client.ledger(sid)] == ["open", "echo"]
    with pytest.raises(BoundaryError, match="is it closed"):
        client.report(sid)
    assert client.call(sid, 2, "close", MAGIC + b"{}") == MAGIC + b"{}"
    assert client.report(sid) == {"calls": 2}
    assert client.kind == "http" and client.health()["status"] == "ok"


def test_typed_errors_survive_the_trip(client, service):
    sid = sid_of(client.open(CARRIER))
    with pytest.raises(PolicyViolation) as info:
        client.call(sid, 1, "policy", CARRIER)
    exc = info.value
    assert exc.rule == "no_raw_text" and exc.where == "boundary" and exc.fix == "send only public texts"
    assert "private record" in exc.what

    cases = [("config", 422, ConfigError, "strategy.k"), ("remote", 500, RemoteError, "model.remote"),
             ("crash", 500, RemoteError, "model"), ("nope", 400, BoundaryError, "channel")]
    for op, status, cls, where in cases:
        r = httpx.post(f"{service.url}/v1/sessions/{sid}/ops/{op}", content=CARRIER,
                       headers={**AUTH, "X-Silobridge-Seq": "1"})
        assert r.status_code == status and error_of(r)["where"] == where, op
        with pytest.raises(cls) as info:
            client.call(sid, 1, op, CARRIER)
        assert type(info.value) is cls and info.value.where == where

    with pytest.raises(BoundaryError, match="out of order"):
        client.call(sid, 7, "echo", CARRIER)
    with pytest.raises(BoundaryError, match="not a silobridge carrier"):
        client.call(sid, 1, "echo", b"garbage")


def test_crash_message_and_status_codes(service):
    sid = sid_of(httpx.post(f"{service.url}/v1/sessions", content=CARRIER, headers=AUTH).content)
    seq = {"X-Silobridge-Seq": "1"}
    r = httpx.post(f"{service.url}/v1/sessions/{sid}/ops/crash", content=CARRIER, headers={**AUTH, **seq})
    assert r.status_code == 500 and "RuntimeError: boom" in error_of(r)["what"]
    r = httpx.post(f"{service.url}/v1/sessions/{sid}/ops/policy", content=CARRIER, headers={**AUTH, **seq})
    assert r.status_code == 403 and error_of(r)["rule"] == "no_raw_text"
    r = httpx.post(f"{service.url}/v1/sessions/nosuch/ops/echo", content=CARRIER, headers={**AUTH, **seq})
    assert r.status_code == 404 and error_of(r)["type"] == "BoundaryError"
    assert httpx.get(f"{service.url}/v1/sessions/nosuch/ledger", headers=AUTH).status_code == 404
    assert httpx.get(f"{service.url}/v1/sessions/{sid}/report", headers=AUTH).status_code == 404
    for bad in [None, "", "x", "-1", "1.5", "²".encode("latin-1"), b"\xd9\xa3"]:
        headers = {**AUTH} if bad is None else {**AUTH, "X-Silobridge-Seq": bad}
        r = httpx.post(f"{service.url}/v1/sessions/{sid}/ops/echo", content=CARRIER, headers=headers)
        assert r.status_code == 400 and error_of(r)["where"] == "X-Silobridge-Seq", bad
    r = httpx.post(f"{service.url}/v1/sessions", content=b"not a carrier", headers=AUTH)
    assert r.status_code == 400 and error_of(r)["where"] == "model.open"
    assert httpx.get(f"{service.url}/nowhere", headers=AUTH).status_code == 404
    r = httpx.delete(f"{service.url}/v1/sessions", headers=AUTH)
    assert r.status_code == 405 and error_of(r)["type"] == "BoundaryError"


def test_large_reply_is_streamed(client, service):
    sid = sid_of(client.open(CARRIER))
    size = 50 << 20
    t0 = time.perf_counter()
    reply = client.call(sid, 1, "big", MAGIC + str(size).encode())
    assert time.perf_counter() - t0 < 15
    assert len(reply) == size + 4 and reply[:4] == MAGIC
    assert reply[4:4 + 512] == bytes(range(256)) * 2 and reply[-256:] == bytes(range(256))
    with httpx.stream("POST", f"{service.url}/v1/sessions/{sid}/ops/big", content=MAGIC + b"0",
                      headers={**AUTH, "X-Silobridge-Seq": "1"}) as r:  # the retry: cached reply, streamed
        assert r.status_code == 200 and int(r.headers["content-length"]) == size + 4
        sizes = [len(c) for c in r.iter_raw()]
    assert sum(sizes) == size + 4 and len(sizes) > 1
    head = (f"POST /v1/sessions/{sid}/ops/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"X-Silobridge-Seq: 1\r\nContent-Length: 5\r\n\r\n")
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as s:  # a reader that gives up
        s.sendall(head.encode() + MAGIC + b"0")
        assert s.recv(1 << 20).startswith(b"HTTP/1.1 200")
    time.sleep(0.2)
    assert_healthy(service.url)
    assert client.call(sid, 2, "echo", CARRIER) == CARRIER


def test_health_answers_during_a_long_operation(client, service):
    sid = sid_of(client.open(CARRIER))
    worker = threading.Thread(target=client.call, args=(sid, 1, "slow", MAGIC + b"1.5"))
    worker.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    assert_healthy(service.url)
    assert time.perf_counter() - t0 < 0.5 and worker.is_alive()
    worker.join(10)


# --- size limit, broken clients, fuzz -------------------------------------------------------------------
def raw_request(port: int, head: str, body: bytes = b"", read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode() + body)
        if not read:
            return b""
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def test_oversized_body_is_refused_with_413(service, client):
    url = f"{service.url}/v1/sessions"
    r = httpx.post(url, content=MAGIC + bytes(LIMIT), headers=AUTH)  # Content-Length over the limit
    assert r.status_code == 413 and error_of(r)["where"] == "request body"

    def chunks():
        yield MAGIC
        for _ in range(LIMIT // (1 << 20) + 1):
            yield bytes(1 << 20)

    r = httpx.post(url, content=chunks(), headers=AUTH)  # chunked: refused once it passes the limit
    assert r.status_code == 413 and "exceeds" in error_of(r)["what"]
    head = (f"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Length: {10**12}\r\n\r\n")
    answer = raw_request(service.port, head)  # refused before any body is sent
    assert answer.startswith(b"HTTP/1.1 413") and b"exceeds" in answer
    with pytest.raises(BoundaryError, match="exceeds"):
        client.open(MAGIC + bytes(LIMIT))
    sid = sid_of(client.open(CARRIER))
    assert client.call(sid, 1, "echo", CARRIER) == CARRIER


@pytest.mark.parametrize("chunked", [False, True])
def test_client_killed_mid_upload_leaves_server_healthy(service, client, fake, chunked):
    sid = sid_of(client.open(CARRIER))
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {10_000_000}"
    head = (f"POST /v1/sessions/{sid}/ops/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"X-Silobridge-Seq: 1\r\n{framing}\r\n\r\n")
    body = (b"400\r\n" + MAGIC + bytes(1020) + b"\r\n") if chunked else MAGIC + bytes(1020)
    for abort in (False, True):  # a clean close, and a reset (RST)
        with socket.create_connection(("127.0.0.1", service.port), timeout=5) as s:
            s.sendall(head.encode() + body)
            time.sleep(0.05)
            if abort:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    time.sleep(0.2)
    assert_healthy(service.url)
    assert fake.runs[(sid, 1)] == 0  # the truncated request never reached the model party
    assert client.call(sid, 1, "echo", CARRIER) == CARRIER


def test_garbage_on_the_socket_leaves_server_healthy(service):
    for junk in (b"\x16\x03\x01\x02\x00" + bytes(100), b"GET /\xff\xfe HTTP/9\r\n\r\n", b"POST\r\n\r\n" * 3):
        with socket.create_connection(("127.0.0.1", service.port), timeout=5) as s:
            s.sendall(junk)
    assert_healthy(service.url)


HEADER_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_.:/=+", max_size=24).map(str.strip)
SEGMENT = st.text(min_size=1, max_size=16).map(lambda s: quote(s, safe=""))
SESSION = st.one_of(st.just("{SID}"), SEGMENT)  # {SID}: a session the test opened
OP = st.one_of(st.sampled_from(["echo", "close", "policy", "config"]), SEGMENT)  # ops that do not crash


@st.composite
def requests(draw):
    """A random request at one of the endpoints (or near them)."""
    method, path = draw(st.one_of(
        st.just(("POST", "/v1/sessions")),
        st.tuples(SESSION, st.sampled_from(["ledger", "report"])).map(
            lambda sr: ("GET", f"/v1/sessions/{sr[0]}/{sr[1]}")),
        st.tuples(SESSION, OP).map(lambda so: ("POST", f"/v1/sessions/{so[0]}/ops/{so[1]}")),
        st.text(alphabet=string.ascii_letters + "/._-", max_size=30).map(lambda p: ("GET", "/" + p))))
    if draw(st.integers(0, 4)) == 0:  # now and then, the wrong method
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    body = draw(st.one_of(st.binary(max_size=3000), st.binary(max_size=300).map(lambda b: MAGIC + b)))
    headers = {}
    auth = draw(st.sampled_from(["good", "good", "good", None, "Bearer wrong", "Basic x", "Bearer"]))
    if auth:
        headers["Authorization"] = f"Bearer {KEY}" if auth == "good" else auth
    seq = draw(st.one_of(st.none(), st.integers(-3, 3).map(str), st.integers(-3, 10**40).map(str), HEADER_TEXT))
    if seq is not None:
        headers["X-Silobridge-Seq"] = seq
    if draw(st.booleans()):
        headers["Content-Type"] = draw(HEADER_TEXT)
    return method, path, body, headers


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(req=requests())
def test_fuzzed_requests_get_json_4xx_never_5xx(service, req):
    method, path, body, headers = req
    if "{SID}" in path:
        sid = sid_of(httpx.post(f"{service.url}/v1/sessions", content=CARRIER, headers=AUTH).content)
        path = path.replace("{SID}", sid)
    r = httpx.request(method, service.url + path, content=body if method != "GET" else None, headers=headers,
                      timeout=10)
    assert r.status_code < 500, (req, r.text[:300])
    if r.status_code != 200:
        assert 400 <= r.status_code < 500
        error_of(r)
    assert_healthy(service.url)


# --- retries -----------------------------------------------------------------------------------------
class DropFirstProxy:
    """A TCP proxy to ``port`` that breaks its first connection: 'before' closes it after reading the
    request (the server never sees it); 'after' forwards the request but swallows the reply."""

    def __init__(self, port: int, mode: str):
        self.port_to, self.mode = port, mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.dropped = 0
        self.closed = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(None)
            first, self.dropped = self.dropped == 0, self.dropped + 1
            upstream = socket.create_connection(("127.0.0.1", self.port_to))
            if first and self.mode == "before":
                conn.recv(65536)
                conn.close()
                upstream.close()
                continue
            for a, b, swallow in ((conn, upstream, False), (upstream, conn, first)):
                t = threading.Thread(target=self._pipe, args=(a, b, swallow), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, swallow: bool) -> None:
        try:
            while data := src.recv(65536):
                if swallow:  # the reply is lost: drop both sides
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.closed = True
        self.threads[0].join(5)
        self.listener.close()


@pytest.mark.parametrize("mode", ["before", "after"])
def test_call_is_retried_after_a_dropped_connection(service, client, fake, mode):
    sid = sid_of(client.open(CARRIER))
    proxy = DropFirstProxy(service.port, mode)
    try:
        with HttpTransport(f"http://127.0.0.1:{proxy.port}", KEY, retries=2, backoff=0.05) as t:
            assert t.call(sid, 1, "echo", CARRIER) == CARRIER
        assert proxy.dropped == 2
        assert fake.runs[(sid, 1)] == 1  # run once, even when the first reply was lost
    finally:
        proxy.close()


@pytest.mark.parametrize("mode", ["before", "after"])
def test_open_is_not_resent_after_a_dropped_connection(service, fake, mode):
    proxy = DropFirstProxy(service.port, mode)
    try:
        with HttpTransport(f"http://127.0.0.1:{proxy.port}", KEY, retries=3, backoff=0.05) as t:
            opened = fake.opened
            with pytest.raises(BoundaryError, match="cannot reach") as info:
                t.open(CARRIER)
            assert info.value.where == "--model-url" and proxy.dropped == 1
            assert fake.opened == opened + (mode == "after")
            assert sid_of(t.open(CARRIER))  # the next connection works
    finally:
        proxy.close()


def test_open_is_retried_when_the_server_is_not_up_yet(fake):
    late = Running(fake)
    try:
        with HttpTransport(late.url, KEY, retries=5, backoff=0.2) as t:
            with pytest.raises(BoundaryError, match="ConnectError"):
                HttpTransport(late.url, KEY, retries=0).open(CARRIER)
            late.start(delay=0.3, wait=False)
            assert sid_of(t.open(CARRIER))
    finally:
        late.stop()


def test_bad_urls_and_settings_are_config_errors(tmp_path):
    for url in ("localhost:8765", "ftp://host/x", "", "http://", "127.0.0.1"):
        with pytest.raises(ConfigError) as info:
            HttpTransport(url, KEY)
        assert info.value.where == "--model-url"
    with pytest.raises(ConfigError, match="empty"):
        HttpTransport("http://127.0.0.1:1", "")
    with pytest.raises(ConfigError, match="not found"):
        HttpTransport("https://127.0.0.1:1", KEY, verify=str(tmp_path / "missing.pem"))
    with pytest.raises(BoundaryError, match="cannot reach"):
        HttpTransport("http://127.0.0.1:1", KEY, retries=0).health()


# --- TLS --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl CLI to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def test_tls_round_trip_and_clean_failures(fake, tls_files):
    cert, key = tls_files
    with running(fake, certfile=cert, keyfile=key) as r:
        assert r.url.startswith("https://")
        with HttpTransport(r.url, KEY, verify=cert) as t:
            sid = sid_of(t.open(CARRIER))
            assert t.call(sid, 1, "echo", CARRIER) == CARRIER
        t0 = time.perf_counter()
        with HttpTransport(r.url, KEY, retries=3, backoff=1.0) as t:  # system CAs do not trust it: no retry
            with pytest.raises(BoundaryError, match="TLS") as info:
                t.call(sid, 2, "echo", CARRIER)
        assert time.perf_counter() - t0 < 1.0 and "verify" in info.value.fix
        with HttpTransport(r.url.replace("https://", "http://"), KEY, retries=1, backoff=0.05) as t:
            with pytest.raises(BoundaryError, match="cannot reach") as info:
                t.call(sid, 2, "echo", CARRIER)
        assert "https://" in info.value.fix
        assert_healthy(r.url, verify=_ctx(cert))


def _ctx(cert: str):
    import ssl

    return ssl.create_default_context(cafile=cert)


# --- the `serve` command ---------------------------------------------------------------------------
@pytest.fixture
def serve_app():
    import typer

    from silobridge.cli.serve import serve_cmd

    app = typer.Typer()
    app.command("serve")(serve_cmd)
    app.command("other")(lambda: None)  # two commands, so "serve" is addressed by name as in the real CLI
    return app


def test_serve_help_lists_every_option(serve_app):
    from typer.testing import CliRunner

    result = CliRunner().invoke(serve_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for opt in ("--host", "--port", "--api-key-env", "--lm", "--config", "--set", "--cache", "--no-cache", "--home",
                "--tls-cert", "--tls-key"):
        assert opt in result.output, opt


def test_serve_refuses_a_missing_key(serve_app, monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.delenv("SB_TEST_KEY", raising=False)
    result = CliRunner().invoke(serve_app, ["serve", "--api-key-env", "SB_TEST_KEY"])
    assert result.exit_code == 2 and "SB_TEST_KEY is not set" in result.output
    result = CliRunner().invoke(serve_app, ["serve", "--api-key-env", "s3cr3t-k3y!"])
    assert result.exit_code == 2 and "--api-key-env" in result.output and "s3cr3t" not in result.output
    monkeypatch.delenv("SILOBRIDGE_API_KEY", raising=False)
    result = CliRunner().invoke(serve_app, ["serve"])  # the default variable, unset
    assert result.exit_code == 2 and "SILOBRIDGE_API_KEY is not set" in result.output


def test_serve_builds_the_model_server(serve_app, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from silobridge.transports import http_server

    seen = {}
    monkeypatch.setattr(http_server, "serve", lambda server, host, port, key, **kw: seen.update(
        server=server, host=host, port=port, key=key, **kw))
    monkeypatch.setenv("SB_TEST_KEY", KEY)
    result = CliRunner().invoke(serve_app, ["serve", "--api-key-env", "SB_TEST_KEY", "--port", "9999", "--cache",
                                            "--home", str(tmp_path), "--set", "policy.max_bytes=12345"])
    assert result.exit_code == 0, result.output
    server = seen["server"]
    assert seen["key"] == KEY and seen["port"] == 9999 and seen["certfile"] is None
    assert server.max_bytes == 12345 and server.lm_config.cache is True and server.home == tmp_path
    result = CliRunner().invoke(serve_app, ["serve", "--api-key-env", "SB_TEST_KEY", "--tls-cert",
                                            str(tmp_path / "none.pem"), "--tls-key", str(tmp_path / "k.pem")])
    assert result.exit_code == 2 and "--tls-cert" in result.output
    result = CliRunner().invoke(serve_app, ["serve", "--api-key-env", "SB_TEST_KEY", "--log-level", "loud"])
    assert result.exit_code == 2 and "--log-level" in result.output


SERVE_SCRIPT = ("import typer; from silobridge.cli.serve import serve_cmd; app = typer.Typer(); "
                "app.command('serve')(serve_cmd); app.command('x')(lambda: None); app()")


def test_serve_process_end_to_end(tmp_path):
    """The real command and ModelServer in a subprocess: health, auth, a typed error, clean stop."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "SB_TEST_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT, "serve", "--api-key-env", "SB_TEST_KEY", "--port",
                             str(port), "--home", str(tmp_path), "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        with HttpTransport(url, KEY, retries=0) as t:
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert t.health()["status"] == "ok"
                    break
                except BoundaryError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
                    time.sleep(0.1)
            with pytest.raises(BoundaryError, match="no open session"):
                t.call("abc", 1, "echo", CARRIER)
            with pytest.raises(BoundaryError, match="not a silobridge carrier"):
                t.open(b"hello")
        with HttpTransport(url, "wrong-key", retries=0) as t, pytest.raises(AuthError):
            t.ledger("abc")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert proc.returncode == 0, proc.stdout.read().decode()



# --- the real model party -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_service(tmp_path_factory):
    from silobridge.parties.model_server import ModelServer
    from silobridge.settings import LMConfig, PolicyConfig

    server = ModelServer(LMConfig(), PolicyConfig(max_bytes=1 << 20), root=tmp_path_factory.mktemp("model-party"))
    with running(server) as r:
        yield r


def _open_request() -> bytes:
    from silobridge.boundary import Config

    return Config(values={"strategy": "sm-only", "kind": "classify", "task": {"name": "t"}, "params": {},
                          "seed": 0}).encode()


@st.composite
def damaged(draw):
    """An encoded 'open' carrier, damaged: truncated, bytes flipped, junk appended, or random bytes."""
    good = _open_request()
    how = draw(st.sampled_from(["truncate", "flip", "append", "random"]))
    if how == "truncate":
        return good[:draw(st.integers(0, len(good) - 1))]
    if how == "flip":
        out = bytearray(good)
        for i in draw(st.lists(st.integers(0, len(good) - 1), min_size=1, max_size=8)):
            out[i] ^= draw(st.integers(1, 255))
        return bytes(out)
    if how == "append":
        return good + draw(st.binary(min_size=1, max_size=64))
    return draw(st.binary(max_size=2000))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=damaged(), op=st.sampled_from(["open", "open", "open", "echo", "close", "evaluate"]))
def test_real_model_party_answers_damaged_carriers_with_4xx(real_service, body, op):
    url = real_service.url
    if op == "open":
        r = httpx.post(f"{url}/v1/sessions", content=body, headers=AUTH, timeout=10)
    else:
        r = httpx.post(f"{url}/v1/sessions/{uuid.uuid4().hex}/ops/{op}", content=body,
                       headers={**AUTH, "X-Silobridge-Seq": "2"}, timeout=10)
    assert 400 <= r.status_code < 500, r.text[:300]
    error_of(r)
    assert_healthy(url)


def test_a_run_over_http_matches_the_in_process_run(small_cfg, tmp_path):
    """A whole run with the model party behind HTTP: same result as in one process, ledgers agree."""
    from silobridge.bench.runner import Remote, run
    from silobridge.parties.model_server import ModelServer

    local = run("lm-zero-shot", small_cfg, tmp_path / "local")
    server = ModelServer(small_cfg.lm, small_cfg.policy, root=tmp_path / "model-party")
    with running(server) as r:
        remote = run("lm-zero-shot", small_cfg, tmp_path / "remote", remote=Remote(r.url, KEY))
        assert httpx.get(f"{r.url}/v1/stats", timeout=10).status_code == 401  # counters need the key
        stats = httpx.get(f"{r.url}/v1/stats", headers=AUTH, timeout=10).json()
        assert stats["sessions"] == 0 and stats["batching"]["requests"] == stats["batching"]["rounds"] >= 1
    assert remote["transport"]["kind"] == "http" and remote["transport"]["ledgers_agree"]
    assert remote["transport"]["model_entries"] == local["transport"]["model_entries"] > 0
    for key in ("utility", "communication", "privacy"):
        assert remote["objectives"][key] == local["objectives"][key], key
    assert (tmp_path / "remote" / "ledger.model.jsonl").read_text().count("\n") == remote["transport"]["model_entries"]
