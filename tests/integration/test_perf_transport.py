"""Both transports (httpx, the default, and the opt-in asyncio client) through the real hook: the same bytes
and idempotency keys on the wire, the same outcomes under chaos, the same fail-fast when nothing listens,
and answers framed every way HTTP/1.1 allows (Content-Length, chunked, the connection's end)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest

from airflow_provider_spotzee.exceptions import SpotzeeConnectError
from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from airflow_provider_spotzee.transport import TRANSPORT_ENV, TRANSPORTS
from tests.reliability.test_chaos import _run as chaos_run


@pytest.fixture(params=TRANSPORTS)
def transport(request, monkeypatch):
    monkeypatch.setenv(TRANSPORT_ENV, request.param)
    return request.param


class _Recorder(BaseHTTPRequestHandler):
    """Answers ``POST /api/client/users/batch`` per item, framed as the server's ``framing`` says, and keeps
    every request's method, path, key and body."""

    seen: ClassVar[list[tuple[str, str, str | None, bytes]]] = []
    framing = "length"
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.command, self.path, self.headers.get("Idempotency-Key"), body))
        items = json.loads(body)
        answer = json.dumps({"results": [{"index": i, "external_id": item.get("external_id"), "state": "created"}
                                         for i, item in enumerate(items)]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(answer) // 2
            for part in (answer[:half], answer[half:], b""):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        elif self.framing == "close":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    conn = {"conn_type": "spotzee", "host": f"http://127.0.0.1:{server.server_port}/api/client",
            "password": "sk_test_recorder", "extra": {"plan": "enterprise", "max_retries": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT", json.dumps(conn))
    _Recorder.seen = []
    yield _Recorder
    server.shutdown()
    server.server_close()


def _records(n: int) -> list[dict]:
    return [{"external_id": f"u-{i}", "email": f"u{i}@example.com", "phone": "+61400123456", "locale": "en_AU",
             "data": {"i": i, "note": "é"}} for i in range(n)]


def test_both_transports_put_the_same_bytes_and_keys_on_the_wire(recorder, monkeypatch):
    wires = {}
    for kind in TRANSPORTS:
        monkeypatch.setenv(TRANSPORT_ENV, kind)
        recorder.seen = []
        result = SpotzeeHook().upsert_users(_records(250), idempotency_namespace="same-bytes")
        assert result.succeeded == 250 and result.requests == 3
        wires[kind] = sorted(recorder.seen)
    assert wires["httpx"] == wires["asyncio"]
    assert all(key and key.startswith("spz1-") for _m, _p, key, _b in wires["httpx"])


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_every_framing_of_an_answer(recorder, transport, framing, monkeypatch):
    monkeypatch.setattr(_Recorder, "framing", framing)
    result = SpotzeeHook().upsert_users(_records(230), idempotency_namespace=f"framing-{framing}")
    assert (result.succeeded, result.dead_lettered, result.retries) == (230, 0, 0)


def test_chaos_on_each_transport(emulator, monkeypatch, transport):
    report = chaos_run(emulator, monkeypatch, 1500)
    assert report["users"]["succeeded"] == 1500


def test_nothing_listening_fails_fast_on_each_transport(monkeypatch, transport):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = {"conn_type": "spotzee", "host": f"http://127.0.0.1:{port}/api/client", "password": "sk_test_x"}
    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT", json.dumps(conn))
    with pytest.raises(SpotzeeConnectError, match="Connection refused"):
        SpotzeeHook().upsert_users(_records(10), idempotency_namespace="refused")


def _one_shot_server(reply: bytes | None, *, close: bool) -> tuple[int, threading.Event]:
    """A socket that reads one request and then writes ``reply`` (None: nothing) and closes or goes quiet."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(65536)
            if reply is not None:
                conn.sendall(reply)
            if not close:
                done.wait(5)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], done


@pytest.mark.parametrize(
    ("reply", "close", "error", "headers"),
    [
        (None, False, httpx.ReadTimeout, None),  # nothing answers: the one timeout fires while reading
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", True, httpx.RemoteProtocolError, None),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", True, httpx.RemoteProtocolError, None),
        (b"SPDY/3 200 OK\r\n\r\n", True, httpx.RemoteProtocolError, None),
        ((b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many\r\nRetry-After: 2\r\nX-A: 1\r\nx-a: 2\r\n"
         b"Content-Length: 2\r\n\r\n{}"), False, None, {"retry-after": "2", "X-A": "1, 2"}),
    ],
    ids=["silent", "short-body", "bad-header-line", "not-http", "interim-then-answer"],
)
def test_asyncio_wire_on_a_misbehaving_socket(reply, close, error, headers):
    """What the opt-in client raises is what httpx would raise (so classify and the retries treat both the
    same), and the headers it reads answer in any case, repeated ones joined."""
    import asyncio
    import ssl

    from airflow_provider_spotzee.transport import _Wire

    port, done = _one_shot_server(reply, close=close)
    wire = _Wire(f"http://127.0.0.1:{port}/api/client", {"User-Agent": "t"}, 0.5, 0.5, ssl.create_default_context)

    async def one():
        try:
            return await wire.request("POST", "/users/batch", b"[]", None, None)
        finally:
            await wire.aclose()

    try:
        if error is not None:
            with pytest.raises(error):
                asyncio.run(one())
        else:
            status, answer, body = asyncio.run(one())
            assert (status, body) == (429, b"{}")
            assert {name: answer.get(name) for name in headers} == headers
            assert answer["RETRY-AFTER"] == "2" and "x-a" in answer and answer.get("absent") is None
    finally:
        done.set()
