"""Helpers shared by the integration tests."""

from __future__ import annotations

import contextlib
import socket
import threading


def connection_env(monkeypatch, emulator, conn_id: str = "spotzee_default", **extra) -> None:
    for name, value in emulator.airflow_env(conn_id, **extra).items():
        monkeypatch.setenv(name, value)


def users(n: int, start: int = 0, **fields) -> list[dict]:
    return [
        {
            "external_id": f"u-{i}",
            "email": f"user{i}@example.com",
            "phone": "+61400123456",
            "timezone": "Australia/Sydney",
            "locale": "en-AU",
            "data": {"n": i},
            **fields,
        }
        for i in range(start, start + n)
    ]


class RefusingPort:
    """A loopback TCP port bound but not listening: every connection to it is refused at once."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/api/client"

    def close(self) -> None:
        self.sock.close()


class BlinkingProxy:
    """A loopback TCP proxy in front of ``target`` (host, port) that can go away for a while:
    :meth:`outage` drops every open connection and closes the listening socket (new connections are
    refused) for ``seconds``, then listens on the same port again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.outages = 0
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._listen()
        self.url = f"http://127.0.0.1:{self.port}/api/client"

    def _listen(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(128)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # the listener was closed (an outage, or the end)
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._conns.discard(source)
                self._conns.discard(sink)

    def _drop_all(self) -> None:
        self._server.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def outage(self, seconds: float) -> None:
        """Start an outage now (returns at once); listening resumes after ``seconds``."""
        self.outages += 1
        self._drop_all()
        timer = threading.Timer(seconds, lambda: None if self._closed else self._listen())
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        self._closed = True
        self._drop_all()
