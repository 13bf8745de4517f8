"""Scale out on a real distributed executor: 8 mapped partitions of the CRM sync on one key, run by the
scheduler through the CeleryExecutor on two Celery workers, one of which is SIGKILLed (with its task
processes) while its partitions are sending.

What must hold: the run succeeds; both workers took partitions; the killed partitions are retried on the
other worker and resume from their checkpoints; the emulator's ledger shows every valid row applied
exactly once (none missing, none twice); every bad row is in the failure files exactly once across the
tries, the files being in ``[spotzee] failures_base``, the directory both workers reach.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from airflow_provider_spotzee.testing.crm import PLACES, seed_crm
from benchmarks.celery import PARTITIONS, celery_deployment

pytestmark = [pytest.mark.dags, pytest.mark.timeout(420)]

ROWS = 120_000


def bad_rows_by_partition(crm: Path) -> dict[int, set[int]]:
    """``{partition: {index in its stream}}`` of every row ``seed_crm`` made bad on purpose, in the order a
    partition reads them (``pk % 8``, by ``updated_at, pk``): the positions its failures must carry."""
    bad: dict[int, set[int]] = {p: set() for p in range(PARTITIONS)}
    with sqlite3.connect(crm) as db:
        rows = db.execute("SELECT pk, id, email_address, phone_e164, timezone FROM customers "
                          "ORDER BY updated_at, pk").fetchall()
    position = dict.fromkeys(range(PARTITIONS), 0)
    for pk, ident, email, phone, tz in rows:
        part = pk % PARTITIONS
        zone, _, phone_fmt = PLACES[pk % len(PLACES)]
        good = (ident == f"cust-{pk:07d}" and (email or "").endswith(f".{pk}@example.com")
                and phone == phone_fmt.format(pk % 10_000) and tz == zone)
        if not good:
            bad[part].add(position[part])
        position[part] += 1
    return bad


def test_celery_workers_share_one_key_and_survive_a_killed_worker(celery_ready, emulator, tmp_path):
    started = time.monotonic()
    crm = tmp_path / "crm.db"
    kinds = seed_crm(crm, ROWS)
    good = kinds["good"]
    expected_bad = bad_rows_by_partition(crm)
    assert sum(len(v) for v in expected_bad.values()) == ROWS - good

    with celery_deployment(crm, emulator, print, keep_logs=tmp_path / "logs") as deployment:
        ready = time.monotonic() - started
        deployment.trigger()
        victim, survivor = deployment.workers

        # SIGKILL worker-a (and its task processes) while its partitions are sending: once a quarter of the
        # rows are in, with both workers busy
        deadline = time.monotonic() + 180
        while emulator.ledger_summary()["contacts"] < good // 4:
            deployment.check_alive()
            assert deployment.run_state() not in ("success", "failed"), "the run ended before the kill"
            assert time.monotonic() < deadline, f"no progress: {deployment.states()}"
            time.sleep(0.2)
        killed_parts = sorted(victim.tries())
        at_kill = emulator.ledger_summary()["contacts"]
        assert killed_parts and deployment.states().get("running", 0) >= 2, deployment.states()
        victim.kill()
        print(f"killed {victim.name} at {at_kill:,} of {good:,} contacts; its partitions {killed_parts}")

        state = deployment.wait_run(300, print)
        tasks = deployment.task_instances()
        summaries = deployment.summaries()
        tries = {w.name: w.tries() for w in deployment.workers}
        files = deployment.failure_files()
        failure_lines = {path: [json.loads(line) for line in path.read_text().splitlines()] for path in files}
    took = time.monotonic() - started
    print(f"deployment ready after {ready:.0f} s; whole test {took:.0f} s; tries per worker {tries}")

    assert state == "success", tasks
    # both workers took partitions, four each (concurrency 4); the killed ones ran again on the survivor
    assert all(1 in t for t in tries[victim.name].values()) and len(tries[victim.name]) == len(killed_parts)
    first_on_survivor = [p for p, t in tries[survivor.name].items() if 1 in t]
    assert first_on_survivor and sorted(killed_parts + first_on_survivor) == list(range(PARTITIONS))
    for part in killed_parts:
        assert max(tries[survivor.name][part]) >= 2, (part, tries)
        # the retry resumed after the killed try's last checkpoint instead of starting over
        assert (summaries[part]["resumed_from_index"] or 0) > 0, summaries[part]
    assert {t[0]: t[1] for t in tasks} == dict.fromkeys(range(PARTITIONS), "success")

    # the ledger: every valid row applied exactly once, none missing
    ledger = emulator.ledger_summary()
    assert ledger["contacts"] == good, ledger
    assert ledger["upsert_applications"] == good and ledger["contacts_upserted_more_than_once"] == 0, ledger
    assert sum(s["sent_ok"] for s in summaries.values()) == good
    assert all(s["balanced"] for s in summaries.values())

    # every bad row in the failure output exactly once across the tries, in the directory both workers reach
    assert len(files) == PARTITIONS, files
    for path, lines in failure_lines.items():
        part = int(path.name.split(".")[1])
        indexes = [line["index"] for line in lines]
        assert len(indexes) == len(set(indexes)), f"{path.name}: a bad row appears twice"
        assert set(indexes) == expected_bad[part], f"{path.name}: bad rows missing or extra"
        assert summaries[part]["failures_path"] == str(path)
    print(f"429s: {emulator.stats()['requests'].get('POST /users/batch', {}).get('429', 0)}")
