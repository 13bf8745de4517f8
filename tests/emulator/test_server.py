"""Running the emulator: process mode, the CLI, loopback-only binding, Airflow connections."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import unquote

import httpx
import pytest

from airflow_provider_spotzee.testing import EmulatorConfig, FaultConfig, SpotzeeEmulator, run_emulator


def _pid_alive(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists"; check its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_process_mode_starts_serves_and_stops(emulator_session):
    config = EmulatorConfig(plan="enterprise", async_delay_seconds=0, faults=FaultConfig(latency_ms=1))
    with run_emulator(config, mode="process") as emu:
        assert emu.mode == "process" and emu.pid != os.getpid() and _pid_alive(emu.pid)
        r = httpx.post(
            emu.base_url + "/users/batch",
            json=[{"external_id": "p1"}],
            headers={"Authorization": f"Bearer {emu.api_key}"},
        )
        assert r.status_code == 200 and r.headers["x-ratelimit-tier"] == "enterprise"
        assert emu.ledger_summary()["contacts"] == 1
        assert emu.faults()["latency_ms"] == 1
        pid = emu.pid
    deadline = time.monotonic() + 5
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid)
    with pytest.raises(httpx.TransportError):
        httpx.get(emu.admin_url + "/health", timeout=1)


def test_cli_prints_the_base_url_and_stops_on_sigint(tmp_path):
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_spotzee.testing",
            "--port",
            "0",
            "--plan",
            "professional",
            "--latency-ms",
            "1",
            "--error-rate",
            "0",
            "--seed",
            "1",
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        emu = SpotzeeEmulator.attach(info["base_url"])
        assert emu.health() == {"status": "ok"}
        assert emu.config()["plan"] == "professional"
        r = httpx.get(info["base_url"] + "/users", headers={"Authorization": "Bearer sk_test_emulator"})
        assert r.status_code == 200 and r.headers["x-ratelimit-tier"] == "professional"
        emu.stop()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert info["base_url"] in out and "sk_test_emulator" in out
    assert "Traceback" not in err


def test_cli_rejects_non_loopback_host():
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_spotzee.testing", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 2 and "non-loopback" in proc.stderr


def test_non_loopback_host_is_refused():
    with pytest.raises(ValueError, match="non-loopback"), run_emulator(host="0.0.0.0"):
        pass


def test_connection_json_and_uri(emulator):
    conn = json.loads(emulator.connection_json())
    assert conn == {
        "conn_type": "spotzee",
        "host": emulator.base_url,
        "password": emulator.api_key,
        "extra": {"plan": "starter"},
    }
    uri = emulator.connection_uri()
    assert uri.startswith("spotzee://http://:sk_test_emulator@127.0.0.1%3A")
    assert unquote(uri).endswith("/api/client/?plan=starter")
    env = emulator.airflow_env()
    assert json.loads(env["AIRFLOW_CONN_SPOTZEE_DEFAULT"])["host"] == emulator.base_url


def test_connection_uri_round_trips_through_airflow(emulator):
    try:
        from airflow.models.connection import Connection
    except Exception as exc:  # noqa: BLE001 - airflow not importable in this environment
        pytest.skip(f"airflow not importable: {exc}")
    conn = Connection(conn_id="spotzee_default", uri=emulator.connection_uri())
    assert (conn.conn_type, conn.host, conn.password) == ("spotzee", emulator.base_url, emulator.api_key)
    assert conn.extra_dejson == {"plan": "starter"}
