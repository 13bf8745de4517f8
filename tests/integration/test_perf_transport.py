"""Both transports (httpx, the default, and the opt-in asyncio client) through the real hook: the same bytes
and idempotency keys on the wire, the same outcomes under chaos, the same fail-fast when nothing listens,
and answers framed every way HTTP/1.1 allows (Content-Length, chunked, the connection's end)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

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
