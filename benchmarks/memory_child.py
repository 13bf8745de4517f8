"""Child process for scenario 4: peak RSS growth of ``hook.upsert_users`` over a lazy generator.

Run by ``benchmarks.scenarios.memory`` with ``AIRFLOW_CONN_SPOTZEE_DEFAULT`` pointing at an emulator.
A fresh process per size, so one run's allocator high-water mark cannot hide the next one's. Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import psutil

from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from benchmarks.common import quiet_logs, users
from benchmarks.rss import PeakRss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--deadline", type=float, required=True)
    args = parser.parse_args()
    quiet_logs()
    me = psutil.Process()
    hook = SpotzeeHook()
    # Warm up every import and lazily built schema on 200 users outside the measured range.
    warmup = hook.upsert_users(users(args.start + args.users, 200), idempotency_namespace="mem-warmup")
    meter = PeakRss()  # VmHWM since the start (reset there) and 50 ms samples; the larger wins
    base = meter.start()
    started = time.perf_counter()
    result = hook.upsert_users(users(args.start, args.users, deadline=time.monotonic() + args.deadline),
                               idempotency_namespace="mem")
    elapsed = time.perf_counter() - started
    memory = meter.stop()
    peak_rss = meter.peak_of("main")
    print(json.dumps({
        "users_requested": args.users,
        "submitted": result.submitted,
        "succeeded": result.succeeded,
        "warmup_succeeded": warmup.succeeded,
        "elapsed_s": round(elapsed, 2),
        "items_per_s": round(result.submitted / elapsed, 1),
        "rss_before_mb": round(base / 2**20, 1),
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "peak_growth_mb": round((peak_rss - base) / 2**20, 1),
        "peak_source": memory["peak_source"],
        "rss_after_mb": round(me.memory_info().rss / 2**20, 1),
    }))


if __name__ == "__main__":
    main()
