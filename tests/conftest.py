"""Shared fixtures: one thread-mode Spotzee emulator per session, reset before every test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_spotzee.testing import EmulatorConfig, SpotzeeEmulator, run_emulator


@pytest.fixture(scope="session")
def emulator_config() -> EmulatorConfig:
    """The configuration the ``emulator`` fixture restores before each test."""
    return EmulatorConfig()


@pytest.fixture(scope="session")
def emulator_session(emulator_config: EmulatorConfig) -> Iterator[SpotzeeEmulator]:
    """One emulator (thread mode) for the whole session. Prefer ``emulator``, which resets it."""
    with run_emulator(emulator_config, mode="thread") as emu:
        yield emu


@pytest.fixture
def emulator(emulator_session: SpotzeeEmulator, emulator_config: EmulatorConfig) -> SpotzeeEmulator:
    """The session emulator, reset: no contacts, ledger or stats, no faults, default config, clock offset 0."""
    emulator_session.reset(emulator_config)
    return emulator_session


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, emulator: SpotzeeEmulator):
    """A SpotzeeHook wired to the (reset) emulator through ``AIRFLOW_CONN_SPOTZEE_DEFAULT``."""
    from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook

    monkeypatch.setenv("AIRFLOW_CONN_SPOTZEE_DEFAULT", emulator.connection_json())
    return SpotzeeHook()
