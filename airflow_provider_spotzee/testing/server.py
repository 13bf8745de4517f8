"""Starting and stopping the emulator, and the :class:`SpotzeeEmulator` handle tests talk to.

Thread mode runs uvicorn on its own event loop in a daemon thread of the calling process; process mode
spawns ``python -m airflow_provider_spotzee.testing`` and learns its port from a ready file. Both bind
a socket first (``port=0`` picks a free port), listen on loopback only unless forced, and stop cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx
import uvicorn

from airflow_provider_spotzee.testing.app import ADMIN_PREFIX, API_PREFIX, create_app
from airflow_provider_spotzee.testing.config import DEFAULT_API_KEY, READONLY_API_KEY, EmulatorConfig

CONN_TYPE = "spotzee"

try:  # pragma: no cover - depends on the environment
    import uvloop

    LOOP_IMPL = "uvloop"
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]
    LOOP_IMPL = "asyncio"
try:  # pragma: no cover
    import httptools  # noqa: F401

    HTTP_IMPL = "httptools"
except ImportError:  # pragma: no cover
    HTTP_IMPL = "h11"


# -- low-level helpers shared with the CLI -------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_non_loopback: bool) -> None:
    if not is_loopback(host) and not allow_non_loopback:
        raise ValueError(
            f"refusing to listen on non-loopback host {host!r}: the emulator accepts well-known test keys; "
            "pass allow_non_loopback=True (CLI: --allow-non-loopback) to force it"
        )


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def root_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def uvicorn_config(app: Any, host: str, *, log_config: Any = None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        loop=LOOP_IMPL,
        http=HTTP_IMPL,
        ws="none",
        lifespan="off",
        log_level="warning",
        log_config=log_config,
        access_log=False,
        server_header=False,
        backlog=4096,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
    )


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run_async(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on a fresh (uvloop when available) event loop in the current thread."""
    if hasattr(asyncio, "Runner"):
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(main())
    loop = new_event_loop()  # pragma: no cover - Python 3.10
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


# -- the two ways of running it -------------------------------------------------------------------------------
class _ThreadServer:
    def __init__(self, config: EmulatorConfig, host: str, port: int) -> None:
        self.app = create_app(config)
        self.sock = bind_socket(host, port)
        self.port: int = self.sock.getsockname()[1]
        self.server = QuietServer(uvicorn_config(self.app, host))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"spotzee-emulator:{self.port}", daemon=True)
        self.pid = os.getpid()

    def _run(self) -> None:
        try:
            run_async(lambda: self.server.serve(sockets=[self.sock]))
        except BaseException as exc:  # noqa: BLE001 - surfaced by start()
            self.error = exc

    def start(self, timeout: float) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator thread did not start: {self.error!r}")
            time.sleep(0.005)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=15)
        self.sock.close()


class _ProcessServer:
    def __init__(self, config: EmulatorConfig, host: str, port: int, allow_non_loopback: bool) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="spotzee-emulator-"))
        self.ready_file = self.workdir / "ready.json"
        config_file = self.workdir / "config.json"
        config_file.write_text(json.dumps(config.to_dict()))
        config_file.chmod(0o600)
        self.stderr_path = self.workdir / "stderr.log"
        cmd = [
            sys.executable,
            "-m",
            "airflow_provider_spotzee.testing",
            "--host",
            host,
            "--port",
            str(port),
            "--config-file",
            str(config_file),
            "--ready-file",
            str(self.ready_file),
            "--parent-pid",
            str(os.getpid()),
            "--quiet",
        ]
        if allow_non_loopback:
            cmd.append("--allow-non-loopback")
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
            )
        self.pid = self.proc.pid
        self.port = 0

    def start(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.ready_file.exists():
                info = json.loads(self.ready_file.read_text())
                self.port = int(info["port"])
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.stderr_path.read_text(errors="replace")[-4000:]
                self.stop()
                raise RuntimeError(
                    f"the emulator process did not start (exit code {self.proc.returncode}):\n{err}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


# -- the handle -----------------------------------------------------------------------------------------------
class SpotzeeEmulator:
    """A running emulator: its URLs and keys, and the admin API as methods.

    ``base_url`` is what a Spotzee client uses (it includes ``/api/client``).
    """

    def __init__(
        self,
        url: str,
        api_key: str = DEFAULT_API_KEY,
        *,
        readonly_api_key: str | None = READONLY_API_KEY,
        mode: str = "attached",
        pid: int | None = None,
        stop: Callable[[], None] | None = None,
    ) -> None:
        url = url.rstrip("/")
        url = url.removesuffix(API_PREFIX)
        parsed = httpx.URL(url)
        self.root_url = url
        self.base_url = url + API_PREFIX
        self.admin_url = url + ADMIN_PREFIX
        self.host = parsed.host
        self.port = parsed.port or 80
        self.api_key = api_key
        self.readonly_api_key = readonly_api_key
        self.mode = mode
        self.pid = pid
        self._stop = stop
        self._http = httpx.Client(base_url=self.admin_url, timeout=60.0, trust_env=False)

    @classmethod
    def attach(cls, url: str, api_key: str = DEFAULT_API_KEY) -> SpotzeeEmulator:
        """A handle on an emulator started elsewhere (e.g. with the ``spotzee-emulator`` CLI)."""
        return cls(url, api_key)

    def __repr__(self) -> str:
        return f"SpotzeeEmulator(base_url={self.base_url!r}, mode={self.mode!r})"

    # lifecycle
    def stop(self) -> None:
        """Close the admin client and stop the server if this handle started it."""
        self._http.close()
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()

    def __enter__(self) -> SpotzeeEmulator:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # admin API
    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.post(path, json=body or {})
        if response.status_code == 400:
            raise ValueError(response.json().get("message", response.text))
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._get("/health")

    def stats(self) -> dict[str, Any]:
        """Requests per endpoint and status, 429s, replays, faults by kind, dropped items, client types."""
        return self._get("/stats")

    def ledger_summary(self) -> dict[str, Any]:
        return self._get("/ledger/summary")

    def _all_pages(self, path: str, key: str, page_size: int, **params: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = self._get(path, offset=len(rows), limit=page_size, **params)
            rows.extend(page[key])
            if len(page[key]) < page_size or len(rows) >= page["total"]:
                return rows

    def events(
        self,
        *,
        name: str | None = None,
        external_id: str | None = None,
        anonymous_id: str | None = None,
        duplicates_only: bool = False,
        page_size: int = 10_000,
    ) -> list[dict[str, Any]]:
        """Every applied event (optionally filtered), in application order."""
        return self._all_pages(
            "/ledger/events",
            "events",
            page_size,
            name=name,
            external_id=external_id,
            anonymous_id=anonymous_id,
            duplicates="true" if duplicates_only else None,
        )

    def contacts(self, *, page_size: int = 10_000) -> list[dict[str, Any]]:
        """Every visible contact with its ledger fields (``upserts``, ``anonymous_ids``)."""
        return self._all_pages("/ledger/contacts", "contacts", page_size)

    def contact(
        self,
        external_id: str | None = None,
        *,
        anonymous_id: str | None = None,
        id: int | None = None,
    ) -> dict[str, Any] | None:
        """One visible contact (with ledger fields) or ``None``."""
        rows = self._get("/ledger/contacts", external_id=external_id, anonymous_id=anonymous_id, id=id)[
            "contacts"
        ]
        return rows[0] if rows else None

    def subscriptions(
        self,
        *,
        contact_id: int | None = None,
        subscription_id: int | None = None,
    ) -> dict[str, Any]:
        """``{"toggles": [every applied toggle], "states": [current state per (contact, subscription)]}``."""
        return self._get(
            "/ledger/subscriptions",
            contact_id=contact_id,
            subscription_id=subscription_id,
            limit=10**9,
        )

    def faults(self) -> dict[str, Any]:
        return self._get("/faults")

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Partial update, e.g. ``set_faults(error_rate=0.1, latency_ms=50, seed=7)``."""
        return self._post("/faults", changes)

    def config(self) -> dict[str, Any]:
        return self._get("/config")

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change ``plan``, ``async_delay_seconds``, ``rate_limits`` (or ``plans``, ``idempotency_ttl_seconds``,
        ``numeric_user_ids_first``)."""
        return self._post("/config", changes)

    def clock(self) -> dict[str, Any]:
        return self._get("/clock")

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return self._post("/clock", {"advance_seconds": seconds})

    def reset(self, config: EmulatorConfig | None = None) -> dict[str, Any]:
        """Clear contacts, ledger, idempotency records, rate windows, stats, faults and the clock offset."""
        return self._post("/reset", {"config": config.to_dict()} if config is not None else {})

    # Airflow connection
    def connection_dict(self, **extra: Any) -> dict[str, Any]:
        """``{"conn_type": "spotzee", "host": base_url, "password": api_key, "extra": {"plan": ...}}``."""
        return {
            "conn_type": CONN_TYPE,
            "host": self.base_url,
            "password": self.api_key,
            "extra": {"plan": self.config()["plan"], **extra},
        }

    def connection_json(self, **extra: Any) -> str:
        """The connection as JSON, e.g. for ``AIRFLOW_CONN_SPOTZEE_DEFAULT``."""
        return json.dumps(self.connection_dict(**extra))

    def connection_uri(self, **extra: Any) -> str:
        """The connection in Airflow's URI form (as ``Connection.get_uri()`` would write it)."""
        conn = self.connection_dict(**extra)
        protocol, rest = conn["host"].split("://", 1)
        uri = f"{CONN_TYPE}://{protocol}://:{quote(conn['password'], safe='')}@{quote(rest, safe='')}"
        extras = conn["extra"]
        if extras:
            if all(isinstance(v, str) for v in extras.values()):
                uri += "/?" + urlencode(extras)
            else:
                uri += "/?" + urlencode({"__extra__": json.dumps(extras)})
        return uri

    def airflow_env(self, conn_id: str = "spotzee_default", **extra: Any) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": connection_json()}`` for ``os.environ`` / ``monkeypatch.setenv``."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json(**extra)}


def start_emulator(
    config: EmulatorConfig | None = None,
    *,
    mode: Literal["thread", "process"] = "thread",
    host: str = "127.0.0.1",
    port: int = 0,
    allow_non_loopback: bool = False,
    startup_timeout: float = 30.0,
) -> SpotzeeEmulator:
    """Start an emulator and return its handle; call ``handle.stop()`` when done (or use :func:`run_emulator`)."""
    config = config or EmulatorConfig()
    check_host(host, allow_non_loopback)
    server: _ThreadServer | _ProcessServer
    if mode == "thread":
        server = _ThreadServer(config, host, port)
    elif mode == "process":
        server = _ProcessServer(config, host, port, allow_non_loopback)
    else:
        raise ValueError("mode must be 'thread' or 'process'")
    server.start(startup_timeout)
    readonly = next((k.key for k in config.api_keys if not k.can("write")), None)
    return SpotzeeEmulator(
        root_url(host, server.port),
        config.api_key,
        readonly_api_key=readonly,
        mode=mode,
        pid=server.pid,
        stop=server.stop,
    )


@contextlib.contextmanager
def run_emulator(
    config: EmulatorConfig | None = None,
    *,
    mode: Literal["thread", "process"] = "thread",
    host: str = "127.0.0.1",
    port: int = 0,
    allow_non_loopback: bool = False,
    startup_timeout: float = 30.0,
) -> Iterator[SpotzeeEmulator]:
    """Run an emulator for the duration of a ``with`` block::

    with run_emulator(EmulatorConfig(plan="professional")) as emu:
        client = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.api_key}"})
    """
    handle = start_emulator(
        config,
        mode=mode,
        host=host,
        port=port,
        allow_non_loopback=allow_non_loopback,
        startup_timeout=startup_timeout,
    )
    try:
        yield handle
    finally:
        handle.stop()
