"""Child process for scenario 4: peak RSS growth of ``hook.upsert_users`` over a lazy generator.

Run by ``benchmarks.scenarios.memory`` with ``AIRFLOW_CONN_SPOTZEE_DEFAULT`` pointing at an emulator.
A fresh process per size, so one run's allocator high-water mark cannot hide the next one's. Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time

import psutil

from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from benchmarks.common import quiet_logs, users
from benchmarks.rss import reset_peak, vm_hwm


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
    gc.collect()
    base = me.memory_info().rss
    hwm_reset = reset_peak()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], me.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    result = hook.upsert_users(users(args.start, args.users, deadline=time.monotonic() + args.deadline),
                               idempotency_namespace="mem")
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    # VmHWM is the kernel's exact peak, but only since the reset above; without a reset it would include
    # the import phase, so fall back to the 50 ms samples.
    peak_rss = max(peak[0], vm_hwm()) if hwm_reset else peak[0]
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
        "peak_source": "VmHWM since reset + 50 ms samples" if hwm_reset else "50 ms samples",
        "rss_after_mb": round(me.memory_info().rss / 2**20, 1),
    }))


if __name__ == "__main__":
    main()
