"""Helpers shared by the integration tests."""

from __future__ import annotations


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
