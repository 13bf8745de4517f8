"""Integration fixtures: a SpotzeeHook wired to the emulator through an AIRFLOW_CONN_* variable."""

from __future__ import annotations

import pytest

from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from tests.integration.helpers import connection_env


@pytest.fixture
def hook(monkeypatch, emulator) -> SpotzeeHook:
    connection_env(monkeypatch, emulator)
    return SpotzeeHook()
