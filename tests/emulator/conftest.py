"""Fixtures for the emulator conformance tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_spotzee.testing import SpotzeeEmulator


@pytest.fixture
def client(emulator: SpotzeeEmulator) -> Iterator[httpx.Client]:
    """A plain httpx client for the client API, authenticated with the emulator's read+write key."""
    with httpx.Client(
        base_url=emulator.base_url,
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=30.0,
        trust_env=False,
    ) as c:
        yield c
