"""Helpers shared by the integration tests."""

from __future__ import annotations

import json


def connection_env(monkeypatch, emulator, conn_id: str = "spotzee_default", **extra) -> None:
    conn = emulator.connection_json()
    conn = json.loads(conn) if isinstance(conn, str) else dict(conn)
    conn["extra"] = {**(conn.get("extra") or {}), **extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


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
