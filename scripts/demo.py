"""The one-command demo: the CRM sync DAG through real Airflow against the local Spotzee emulator.

1. seeds a SQLite CRM (10,000 customers, ~2 % deliberately bad rows) under ``.demo/``;
2. starts the emulator in its own process (Starter budget, a little latency, a few injected 5xx and
   dropped connections so retries are visible);
3. runs ``airflow dags test spotzee_crm_sync 2026-11-25`` in a private AIRFLOW_HOME: a manual run of
   that logical date has the data interval [2026-11-24, 2026-11-25), the day the CRM is seeded with,
   whatever today's date is;
4. prints the reconciliation and checks it against the emulator's ledger; exits non-zero if anything
   does not balance or nothing was read. Safe to run twice in a row; leaves no process behind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from airflow_provider_spotzee.testing import EmulatorConfig, FaultConfig, run_emulator
from airflow_provider_spotzee.testing.crm import SEED_DAY, SEED_RUN_DATE, seed_crm

DAG_ID = "spotzee_crm_sync"
RUN_DATE = SEED_RUN_DATE  # a manual run's data interval: [SEED_DAY, SEED_DAY + 1), the seeded day
ROOT = Path(__file__).resolve().parent.parent
SUMMARY_LINE = re.compile(r"Spotzee users_batch summary: (\{.*?\})")


def airflow_env(home: Path, crm: Path, spotzee_conn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_SPOTZEE_DEFAULT": spotzee_conn,
        "AIRFLOW_CONN_CRM_DB": json.dumps({"conn_type": "sqlite", "host": str(crm)}),
    })
    return env


def airflow(env: dict[str, str], *args: str, log: Path) -> subprocess.CompletedProcess[str]:
    airflow_bin = str(Path(sys.executable).with_name("airflow"))
    with log.open("w") as handle:
        return subprocess.run([airflow_bin, *args], env=env, stdout=handle, stderr=subprocess.STDOUT, text=True,
                              check=False, timeout=1800)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="customers in the CRM (default 10,000)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--error-rate", type=float, default=0.02)
    parser.add_argument("--drop-rate", type=float, default=0.01)
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1: a demo that reads nothing shows nothing")

    work = args.workdir.resolve()
    home, crm = work / "airflow", work / "crm.db"
    work.mkdir(parents=True, exist_ok=True)
    kinds = seed_crm(crm, args.rows, day=SEED_DAY)
    bad = sum(v for k, v in kinds.items() if k != "good")
    print(f"CRM       : {crm} ({args.rows:,} customers updated on {SEED_DAY}, {bad} deliberately bad: "
          + ", ".join(f"{k}={v}" for k, v in kinds.items() if k != "good") + ")")

    faults = FaultConfig(latency_ms=args.latency_ms, latency_jitter_ms=args.latency_ms,
                         error_rate=args.error_rate, drop_after_apply_rate=args.drop_rate)
    with run_emulator(EmulatorConfig(plan="starter", seed=42, faults=faults), mode="process") as emu:
        print(f"Emulator  : {emu.base_url} (Starter: 100 write req/s; latency {args.latency_ms:.0f} ms; "
              f"{args.error_rate:.0%} 5xx, {args.drop_rate:.0%} dropped after apply)")
        env = airflow_env(home, crm, emu.connection_json())
        if not (home / "airflow.db").exists():
            print("Airflow   : initialising the metadata database (first run only) ...", flush=True)
            done = airflow(env, "db", "migrate", log=work / "db_migrate.log")
            if done.returncode:
                print(f"airflow db migrate failed; see {work / 'db_migrate.log'}")
                return 1
        print(f"Airflow   : airflow dags test {DAG_ID} {RUN_DATE}  (log: {work / 'dags_test.log'})", flush=True)
        started = time.monotonic()
        run = airflow(env, "dags", "test", DAG_ID, RUN_DATE, log=work / "dags_test.log")
        wall = time.monotonic() - started
        output = (work / "dags_test.log").read_text()
        summaries = SUMMARY_LINE.findall(output)
        ledger, stats = emu.ledger_summary(), emu.stats()

    if run.returncode or not summaries:
        print(f"\nThe DAG run failed (exit {run.returncode}); see {work / 'dags_test.log'}")
        return 1
    summary = json.loads(summaries[-1])
    return report(summary, ledger, stats, kinds, wall)


def report(summary: dict, ledger: dict, stats: dict, kinds: dict, wall: float) -> int:
    buckets = ("sent_ok", "unchanged", "invalid", "rejected", "dead_lettered")
    print("\nReconciliation (spotzee_crm_sync / upsert_users)")
    print(f"  extracted       {summary['extracted']:>8,}")
    for name in buckets:
        print(f"  {name:<15} {summary[name]:>8,}")
    total = sum(summary[n] for n in buckets)
    print(f"  {'= total':<15} {total:>8,}   {'balances' if total == summary['extracted'] else 'DOES NOT BALANCE'}")
    print(f"  requests {summary['requests']}, retries {summary['retries']}, throttled (429) {summary['throttled']}, "
          f"replayed {summary['replayed']}, {summary['items_per_second']:,.0f} items/s in the task "
          f"({wall:.1f} s wall for the whole DAG run)")
    faults = stats.get("faults", {})
    print(f"  faults injected by the emulator: {json.dumps(faults, sort_keys=True)}")
    expected_invalid = sum(v for k, v in kinds.items() if k != "good")
    checks = {
        "rows read from the CRM": summary["extracted"] > 0,
        "summary balances": total == summary["extracted"],
        "every CRM row extracted": summary["extracted"] == sum(kinds.values()),
        "every bad row reported invalid": summary["invalid"] == expected_invalid,
        "ledger: one contact per sent row": ledger["contacts"] == summary["sent_ok"],
        "ledger: each contact applied once": ledger["contacts_upserted_more_than_once"] == 0,
    }
    print("\nEmulator ledger: " + f"{ledger['contacts']:,} contacts, {ledger['upsert_applications']:,} upserts applied")
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    print(f"\nFailure list (ids and codes only) in XCom 'failures'; full list with payloads: {summary['failures_path']}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
