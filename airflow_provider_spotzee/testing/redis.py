"""A throw-away Redis server on 127.0.0.1, for tests and benchmarks that need a real broker (the Celery
executor's queue).

Needs ``redis-server`` (Debian: ``apt-get install redis-server``); :func:`server_binary` tells whether it
is there. No persistence (no RDB snapshots, no AOF), data in a temporary directory that is removed when the
context exits, the server stopped by its pid (``SIGTERM``, then ``SIGKILL``). Like
:mod:`airflow_provider_spotzee.testing.postgres` it never touches a Redis the machine already runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    pid: int

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def ping(self, timeout: float = 2.0) -> bool:
        """``PING`` over a plain socket (RESP): True when the server answers ``+PONG``."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def server_binary() -> str | None:
    """The ``redis-server`` executable, or ``None``."""
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(p, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server(*, start_timeout: float = 30.0) -> Iterator[RedisServer]:
    binary = server_binary()
    if binary is None:
        raise RuntimeError("redis-server not installed (Debian package 'redis-server')")
    root = tempfile.mkdtemp(prefix="spotzee-redis-")
    port = _free_port()
    log = open(os.path.join(root, "redis.log"), "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", root, "--save", "", "--appendonly", "no",
         "--protected-mode", "yes", "--daemonize", "no", "--logfile", ""],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        server = RedisServer("127.0.0.1", port, proc.pid)
        deadline = time.monotonic() + start_timeout
        while not server.ping(timeout=0.5):
            if proc.poll() is not None:
                tail = Path(root, "redis.log").read_bytes()[-2000:].decode(errors="replace")
                raise RuntimeError(f"redis-server exited ({proc.returncode}): {tail}")
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server did not answer PING")
            time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
