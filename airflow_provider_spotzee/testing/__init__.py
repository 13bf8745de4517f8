"""A local, faithful Spotzee API emulator for tests and benchmarks.

Quick start::

    from airflow_provider_spotzee.testing import EmulatorConfig, run_emulator

    with run_emulator(EmulatorConfig(plan="professional")) as emu:
        ...  # point a client at emu.base_url with emu.api_key; assert on emu.ledger_summary()

See ``docs/emulator.md``.
"""

from airflow_provider_spotzee.testing.app import EmulatorApp, create_app
from airflow_provider_spotzee.testing.config import (
    CURRENT_VERSION,
    DEFAULT_API_KEY,
    PLANS,
    READONLY_API_KEY,
    SUPPORTED_VERSIONS,
    ApiKey,
    EmulatorConfig,
    FaultConfig,
    Plan,
)
from airflow_provider_spotzee.testing.server import SpotzeeEmulator, run_emulator, start_emulator

__all__ = [
    "CURRENT_VERSION",
    "DEFAULT_API_KEY",
    "PLANS",
    "READONLY_API_KEY",
    "SUPPORTED_VERSIONS",
    "ApiKey",
    "EmulatorApp",
    "EmulatorConfig",
    "FaultConfig",
    "Plan",
    "SpotzeeEmulator",
    "create_app",
    "run_emulator",
    "start_emulator",
]
