"""Issue 19: the emulator's own CPU per item accepted, per write endpoint, Professional plan, 50 ms latency.

The emulator runs in its own process (``benchmarks.common.emulator``); a bare ``httpx.AsyncClient`` in this
process sends pre-serialised bodies of 100 unique realistic items (users, then events and subscription
toggles of those same contacts) with 16 requests in flight, and the emulator process's CPU time
(user + system, read with psutil on its pid) is divided by the items it accepted; each endpoint runs twice
(fresh contacts each round) and the lesser figure is kept, since other work on the box only adds. The
same-run baseline is what stdlib ``json.loads`` of the very same request bodies costs in this process: the
decoding floor any Python server pays before it does anything with an item.
``python -m benchmarks --only emulatorcpu``; ``python -m benchmarks.emulatorcpu`` runs it alone and prints
the rows.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from benchmarks.clientcpu import event, toggle
from benchmarks.common import (
    ITEMS_PER_REQUEST,
    Log,
    Row,
    ScenarioResult,
    emulator,
    expect_items,
    fresh_range,
    run_alone,
    user,
)
from benchmarks.sizes import Sizes

LATENCY_MS = 50.0
TARGET_US = 20.0
CONCURRENCY = 16
ROUNDS = 2

#: (label, path, record maker, whether the response reports per-item results)
ENDPOINTS: list[tuple[str, str, Callable[[int], dict[str, Any]], bool]] = [
    ("POST /users/batch", "/users/batch", user, True),
    ("POST /events", "/events", event, False),
    ("POST /subscriptions/batch", "/subscriptions/batch", toggle, True),
]


def _bodies(make: Callable[[int], dict[str, Any]], start: int, n: int) -> list[tuple[bytes, int]]:
    """Request bodies of up to 100 items each, with how many items each holds."""
    out = []
    for s in range(start, start + n, ITEMS_PER_REQUEST):
        batch = [make(i) for i in range(s, min(s + ITEMS_PER_REQUEST, start + n))]
        out.append((json.dumps(batch).encode(), len(batch)))
    return out


async def _send_all(base_url: str, api_key: str, path: str, bodies: list[tuple[bytes, int]],
                    per_item: bool) -> dict[str, int]:
    """Every body once (a 429 or 5xx is retried after its Retry-After, at most 5 tries); counts accepted
    items (``succeeded`` of a per-item answer, every item of a 204), requests and 429s."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=CONCURRENCY + 4, max_keepalive_connections=CONCURRENCY + 4)
    queue = list(reversed(bodies))
    counts = {"accepted": 0, "failed": 0, "requests": 0, "throttled": 0}

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            body, size = queue.pop()
            for _ in range(5):
                response = await client.post(path, content=body)
                counts["requests"] += 1
                if response.status_code == 200 and per_item:
                    answer = response.json()
                    counts["accepted"] += answer["succeeded"]
                    counts["failed"] += answer["failed"]
                    break
                if response.status_code == 204 and not per_item:
                    counts["accepted"] += size  # a 204: every valid event applied
                    break
                if response.status_code == 429:
                    counts["throttled"] += 1
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60.0,
                                 trust_env=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return counts


def _decode_floor(bodies: list[tuple[bytes, int]]) -> float:
    """CPU seconds stdlib ``json.loads`` takes for the same bodies in this process (best of 3)."""
    best = float("inf")
    for _ in range(3):
        c = time.process_time()
        for body, _ in bodies:
            json.loads(body)
        best = min(best, time.process_time() - c)
    return best


def emulatorcpu(sizes: Sizes, log: Log) -> ScenarioResult:
    """Per write endpoint: the emulator process's CPU µs per accepted item against json.loads of the same
    bodies, same run."""
    out = ScenarioResult()
    n = max(5_000, min(sizes.cpu_records, 50_000))
    details: dict[str, Any] = {"items": n, "concurrency": CONCURRENCY, "latency_ms": LATENCY_MS,
                               "plan": "professional"}
    with emulator("professional", latency_ms=LATENCY_MS) as emu:
        assert emu.pid is not None
        proc = psutil.Process(emu.pid)
        # users first; the events and toggles are of those same contacts. Each round its own contacts.
        firsts = [fresh_range(n) for _ in range(ROUNDS)]
        for label, path, make, per_item in ENDPOINTS:
            rounds: list[dict[str, Any]] = []
            for r, first in enumerate(firsts):
                bodies = _bodies(make, first, n)
                floor = _decode_floor(bodies)
                gc.collect()
                log(f"{label}, round {r + 1}/{ROUNDS}: {n:,} items, {len(bodies)} requests of {ITEMS_PER_REQUEST} "
                    f"(Professional, {LATENCY_MS:.0f} ms, {CONCURRENCY} in flight)")
                t0, w0 = proc.cpu_times(), time.perf_counter()
                counts = asyncio.run(_send_all(emu.base_url, emu.api_key, path, bodies, per_item))
                t1, wall = proc.cpu_times(), time.perf_counter() - w0
                expect_items(f"emulatorcpu {label}, round {r + 1}: items accepted", counts["accepted"], n)
                user_s, system_s = t1.user - t0.user, t1.system - t0.system
                rounds.append({"emulator_cpu_us_per_item": round((user_s + system_s) / n * 1e6, 2),
                               "of_it_system_us_per_item": round(system_s / n * 1e6, 2),
                               "json_loads_us_per_item": round(floor / n * 1e6, 2),
                               "items_per_s": round(n / wall, 1),
                               "emulator_cores_busy": round((user_s + system_s) / wall, 2), **counts})
            row = min(rounds, key=lambda x: x["emulator_cpu_us_per_item"])  # noise (other work) only adds
            details[label] = {"best": row, "rounds": rounds}
            figure = row["emulator_cpu_us_per_item"]
            each = ", ".join(f"{x['emulator_cpu_us_per_item']}" for x in rounds)
            out.rows.append(Row(
                "19", f"emulator CPU per item accepted: {label}", figure, "µs/item",
                row["json_loads_us_per_item"], "stdlib json.loads of the same bodies (this process)",
                target=f"≤ {TARGET_US:g} µs", met=figure <= TARGET_US,
                note=f"least of {ROUNDS} rounds ({each} µs) of {n:,} unique items each; {row['items_per_s']:,.0f} "
                     f"items/s, emulator {row['emulator_cores_busy']} cores busy; of it kernel (system) time "
                     f"{row['of_it_system_us_per_item']} µs; {row['throttled']} 429s"))
        summary = emu.ledger_summary()
        expect_items("emulatorcpu: contacts in the emulator", summary["contacts"], ROUNDS * n)
        expect_items("emulatorcpu: events applied", summary["events_applied"], ROUNDS * n)
        expect_items("emulatorcpu: subscription toggles applied", summary["subscription_toggles"], ROUNDS * n)
    out.details = details
    return out


if __name__ == "__main__":
    run_alone(emulatorcpu, width=60)
