"""The hook is a library: it leaves the process's collector and logging configuration as it found them,
and keeps httpx's per-request INFO lines (URLs with user ids) out of the log for its own requests only."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys

import httpx

from tests.integration.helpers import users


def test_a_send_does_not_freeze_the_collector(hook, emulator):
    frozen = gc.get_freeze_count()
    thresholds = gc.get_threshold()
    result = hook.upsert_users(users(250), idempotency_namespace="gc")
    assert result.succeeded == 250
    assert gc.get_freeze_count() == frozen and gc.get_threshold() == thresholds and gc.isenabled()


def test_importing_the_hook_leaves_logger_levels_alone():
    # (Airflow's own logging configuration sets httpx to WARNING in its processes: that is Airflow's
    # choice, made before the hook is imported; the hook must not add one of its own.)
    probe = (
        "import logging, gc, airflow\n"
        "levels = lambda: [logging.getLogger(n).level for n in ('httpx', 'httpcore')]\n"
        "before = levels()\n"
        "import airflow_provider_spotzee.hooks.spotzee\n"
        "print(before == levels(), gc.get_freeze_count(), len(logging.getLogger('httpx').filters))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    same, frozen, filters = out.stdout.split()
    assert (same, frozen) == ("True", "0")
    assert filters == "1"  # the filter that drops this provider's own request lines, nothing else


def test_own_request_lines_are_dropped_and_everybody_elses_kept(hook, emulator, caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="httpx")  # turned up on purpose (Airflow's default is WARNING)
    hook.upsert_users(users(3), idempotency_namespace="quiet")
    assert hook.get_user("u-1") is not None
    assert "HTTP Request" not in caplog.text and "/users/u-1" not in caplog.text
    with httpx.Client(base_url=emulator.base_url) as other:  # somebody else's httpx client, same process
        other.get("/users", params={"limit": 1})
    assert "HTTP Request: GET" in caplog.text
