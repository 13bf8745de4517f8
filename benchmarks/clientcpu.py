"""Issue 19: the client's CPU per item in a real send, per endpoint, against what validating and serialising
alone cost in the same run; the event loop's longest stalls during a Professional send; Professional
items/s of one ``hook.upsert_users`` against the 50k ceiling and the emulator alone.

Every figure is process CPU time of this (the client's) process: the emulator runs in its own process, so
its speed does not count. Records are built before the clock starts (their generation is not the client's
work). A busy neighbour on the VM only ever adds time, so each endpoint is measured in 5 interleaved
rounds, each making every measure once (validate + serialise + key alone, ``json.dumps``, the floor, and a
send on each way of driving it), and the least CPU of each measure is kept. The floor
(``benchmarks/floor.py``) is a bare asyncio loop sending the same kind of items already validated, which
no client can go below. Each send starts as a worker alone on the key (see :func:`_send`). ``python -m benchmarks --only clientcpu``; ``python -m benchmarks.clientcpu`` runs it alone and
prints the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from airflow_provider_spotzee.api_facts import RATE_WINDOW_SECONDS
from airflow_provider_spotzee.send import (
    EVENTS,
    SUBSCRIPTIONS_BATCH,
    USERS_BATCH,
    Endpoint,
)
from airflow_provider_spotzee.testing import SpotzeeEmulator
from airflow_provider_spotzee.transport import TRANSPORT_ENV, TRANSPORTS
from benchmarks.common import (
    Log,
    Row,
    ScenarioResult,
    emulator,
    expect_items,
    fresh_range,
    json_baseline,
    pipeline,
    run_alone,
    user,
)
from benchmarks.floor import floor_send, request_bodies
from benchmarks.hookrun import run_raw_capacity
from benchmarks.httpxwire import httpx_on_own_wire
from benchmarks.sizes import Sizes

LATENCY_MS = 50.0
TARGET_US = 12.0
#: Interleaved rounds per endpoint, each measuring everything once (validate alone, json.dumps, the floor,
#: a send on each way); the least CPU of each measure is reported.
ROUNDS = 5
#: The diagnostic third way: httpx's client over the provider's own wire (benchmarks/httpxwire.py).
OWN_WIRE = "httpx-own-wire"
#: The floor: a bare asyncio loop sending already-validated bodies and decoding the answers (benchmarks/floor.py).
FLOOR = "floor"


def event(i: int) -> dict[str, Any]:
    """One realistic event of contact ``crm-{i}``."""
    return {"external_id": f"crm-{i:09d}", "name": ("order_placed", "page_viewed", "cart_abandoned")[i % 3],
            "created_at": f"2026-11-25T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
            "data": {"order_id": f"ord-{i}", "total": round(i * 1.37 % 1000, 2), "items": i % 7, "gift": i % 5 == 0}}


def toggle(i: int) -> dict[str, Any]:
    """One subscription toggle of contact ``crm-{i}`` (which must exist in the emulator)."""
    return {"external_id": f"crm-{i:09d}", "subscription_id": 1 + i % 3, "state": i % 3}


_SYSTEM = [0.0]  # system (kernel) CPU seconds of the last _cpu() call


def _cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Process CPU seconds (user + system, every thread) spent in ``fn``; the system part in ``_SYSTEM``
    (on loopback the kernel's TCP work for both ends of a send is charged to the sender)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    c = time.process_time()
    out = fn()
    spent = time.process_time() - c
    _SYSTEM[0] = resource.getrusage(resource.RUSAGE_SELF).ru_stime - before.ru_stime
    return spent, out


async def _with_stall_monitor(coro: Any, stalls: list[float]) -> Any:
    """Run ``coro`` while a 1 ms ticker records how late each tick wakes (= the loop held by the client)."""
    stop = False

    async def ticker() -> None:
        while not stop:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            stalls.append(time.perf_counter() - t - 0.001)

    task = asyncio.create_task(ticker())
    try:
        return await coro
    finally:
        stop = True
        await task


def _send(emu: SpotzeeEmulator, endpoint: Endpoint, records: list[dict[str, Any]], namespace: str, *,
          monitor: bool, transport: str = "httpx") -> tuple[float, Any, list[float]]:
    """One send through the hook on this thread's own loop, with ``transport`` (httpx or asyncio), as a
    worker alone on the key: the emulator's clock is first moved past the rate window, so the previous
    send's requests are out of it (in it, the pacer would rightly take them for another worker's and
    yield to it, pacing this send to a fraction of the plan). Returns (CPU s, result, loop stalls)."""
    from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook

    emu.advance_clock(RATE_WINDOW_SECONDS + 1)
    hook = SpotzeeHook()
    config = hook.config
    stalls: list[float] = []
    gc.collect()
    old = os.environ.get(TRANSPORT_ENV)
    os.environ[TRANSPORT_ENV] = transport
    try:
        coro = hook.asend(endpoint, records, idempotency_namespace=namespace, config=config)
        cpu, result = _cpu(lambda: asyncio.run(_with_stall_monitor(coro, stalls) if monitor else coro))
    finally:
        if old is None:
            os.environ.pop(TRANSPORT_ENV, None)
        else:
            os.environ[TRANSPORT_ENV] = old
    expect_items(f"clientcpu {endpoint.name} ({transport}): items accepted", result.succeeded, len(records))
    return cpu, result, stalls


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _warm_up(emu: SpotzeeEmulator, plans: list[tuple[Endpoint, Callable[[int], dict[str, Any]]]]) -> None:
    """One small send per endpoint and transport before anything is measured: what a task's first request
    imports (anyio's backend for httpx, email-validator, phonenumbers, the models' deferred builds: ~0.1 to
    0.3 s once per process) is not a per-item cost, and would otherwise fall on whichever send is first."""
    start = fresh_range(300)
    for endpoint, make in plans:
        for kind in TRANSPORTS:
            _send(emu, endpoint, [make(i) for i in range(start, start + 300)], f"bench-cpu-warm-{endpoint.name}-{kind}",
                  monitor=False, transport=kind)


def clientcpu(sizes: Sizes, log: Log) -> ScenarioResult:
    """Per endpoint: validate + serialise + key alone, json.dumps of the same records, then the same kind
    of records through ``hook.asend`` on each transport (httpx, the default; asyncio, the opt-in), in the
    same run. Then the loop's stalls in a users send on each, and the emulator alone."""
    out = ScenarioResult()
    n = max(5_000, min(sizes.netprofile_users, 50_000))
    gc.collect()
    gc.freeze()  # as the operator does for its send: Airflow's import-time heap out of the collector
    details: dict[str, Any] = {"items": n}
    plans: list[tuple[Endpoint, Callable[[int], dict[str, Any]]]] = [
        (USERS_BATCH, user), (EVENTS, event), (SUBSCRIPTIONS_BATCH, toggle)]
    with emulator("professional", latency_ms=LATENCY_MS) as emu:
        _warm_up(emu, plans)
        first = fresh_range(n)  # users, then events and toggles of those same contacts
        for endpoint, make in plans:
            alone_start = fresh_range(n)
            alone_records = [make(i) for i in range(alone_start, alone_start + n)]
            # Every measure of this endpoint in each of ROUNDS interleaved rounds, the least of each kept: a
            # busy neighbour on this VM only ever adds time, and a drift in its mood reaches all of them.
            alone: dict[str, list[float]] = {"prepare": [], "dumps": [], FLOOR: []}
            sends: dict[str, list[tuple[float, Any, float]]] = {kind: [] for kind in (*TRANSPORTS, OWN_WIRE)}
            for round_no in range(ROUNDS):
                spent, done = _cpu(partial(pipeline, alone_records, alone_start, endpoint))
                expect_items(f"clientcpu {endpoint.name}: prepared", done, n)
                alone["prepare"].append(spent)
                alone["dumps"].append(_cpu(partial(json_baseline, alone_records))[0])
                # (users: fresh ones each time, but the first send makes the contacts events and toggles use)
                start = fresh_range(n) if endpoint is USERS_BATCH else first
                bodies = request_bodies(endpoint, [make(i) for i in range(start, start + n)])  # (not timed)
                log(f"{endpoint.name}, round {round_no + 1}: {n:,} items, validated beforehand, through the floor")
                spent, moved = _cpu(partial(floor_send, emu.base_url, emu.api_key, endpoint, bodies))
                expect_items(f"clientcpu {endpoint.name}: floor", moved, n)
                alone[FLOOR].append(spent)
                for kind, tries in sends.items():
                    made_first = endpoint is USERS_BATCH and round_no == 0 and kind == TRANSPORTS[0]
                    start = first if endpoint is not USERS_BATCH or made_first else fresh_range(n)
                    records = [make(i) for i in range(start, start + n)]
                    log(f"{endpoint.name}, round {round_no + 1}: {n:,} items through hook.asend on {kind} "
                        f"(Professional, {LATENCY_MS:.0f} ms)")
                    with httpx_on_own_wire() if kind == OWN_WIRE else contextlib.nullcontext():
                        cpu_s, result, _ = _send(emu, endpoint, records, f"bench-cpu-{endpoint.name}-{kind}-{round_no}",
                                                 monitor=False, transport="httpx" if kind == OWN_WIRE else kind)
                    tries.append((cpu_s, result, _SYSTEM[0]))
            row: dict[str, Any] = {"prepare_us_per_item": round(min(alone["prepare"]) / n * 1e6, 2),
                                   "json_dumps_us_per_item": round(min(alone["dumps"]) / n * 1e6, 2),
                                   FLOOR: {"send_us_per_item": round(min(alone[FLOOR]) / n * 1e6, 2)}}
            for kind, tries in sends.items():
                sent_cpu, result, system = min(tries, key=lambda one: one[0])
                row[kind] = {"send_us_per_item": round(sent_cpu / n * 1e6, 2),
                             "all_us_per_item": [round(one[0] / n * 1e6, 2) for one in tries],
                             "of_it_system_us_per_item": round(system / n * 1e6, 2),
                             "items_per_s": round(n / result.elapsed_seconds, 1), "requests": result.requests,
                             "retries": result.retries, "throttled": result.throttled}
            details[endpoint.name] = row
            for kind in TRANSPORTS:
                figure = row[kind]["send_us_per_item"]
                out.rows.append(Row(
                    "19", f"client CPU per item in a real send: {endpoint.name}, {kind}", figure, "µs/item",
                    row["prepare_us_per_item"], "validate + serialise + key alone",
                    target=f"≤ {TARGET_US:g} µs" + (" and ≤ 1.5 ×" if endpoint is USERS_BATCH else ""),
                    met=figure <= TARGET_US and (endpoint is not USERS_BATCH or figure <= 1.5 * row["prepare_us_per_item"]),
                    note=f"{n:,} unique items, {row[kind]['items_per_s']:,.0f} items/s; of it kernel (system) time "
                         f"{row[kind]['of_it_system_us_per_item']} µs"))
            out.rows.append(Row(
                "19", f"client CPU per item in a real send: {endpoint.name}, {OWN_WIRE}", row[OWN_WIRE]["send_us_per_item"],
                "µs/item", row["prepare_us_per_item"], "validate + serialise + key alone",
                target="(diagnostic: a way of driving httpx, not shipped)",
                note="httpx.AsyncClient over an httpx transport on the provider's own HTTP/1.1 client "
                     "(benchmarks/httpxwire.py): what httpx's client layer costs without httpcore"))
            floor = row[FLOOR]["send_us_per_item"]
            out.rows.append(Row(
                "19", f"send floor, validated items (bare asyncio loop): {endpoint.name}", floor, "µs/item",
                row["prepare_us_per_item"], "validate + serialise + key alone",
                target="(diagnostic: the least any Python client on asyncio pays above validating)",
                note=f"{floor / row['prepare_us_per_item']:.2f} × validating alone; a send cannot cost less than "
                     f"validating plus this (benchmarks/floor.py)"))
            out.rows.append(Row("19", f"validate + serialise + key alone: {endpoint.name}", row["prepare_us_per_item"],
                                "µs/item", row["json_dumps_us_per_item"], "json.dumps of the same records",
                                target="≤ 3 × json.dumps",
                                met=row["prepare_us_per_item"] <= 3 * row["json_dumps_us_per_item"]))
        for kind in TRANSPORTS:
            log(f"loop stalls during a users send on {kind} (1 ms ticker)")
            start = fresh_range(n)
            _, result, stalls = _send(emu, USERS_BATCH, [user(i) for i in range(start, start + n)],
                                      f"bench-cpu-stalls-{kind}", monitor=True, transport=kind)
            details[f"stalls_ms_{kind}"] = stall = {
                "ticks": len(stalls), "p50": round(_pct(stalls, 0.5) * 1e3, 2),
                "p99": round(_pct(stalls, 0.99) * 1e3, 2), "max": round(max(stalls, default=0) * 1e3, 2)}
            out.rows.append(Row("19", f"event-loop stall in a Professional users send, {kind}: p99", stall["p99"],
                                "ms", stall["max"], "max", target="(report)",
                                note=f"{len(stalls):,} ticks of a 1 ms ticker; includes the VM's own stalls"))
    for kind in TRANSPORTS:  # items/s on a freshly reset emulator each (it slows as its store grows)
        with emulator("professional", latency_ms=LATENCY_MS) as emu:
            log(f"Professional items/s: {n:,} users on {kind}, fresh emulator")
            start = fresh_range(n)
            cpu_s, result, _ = _send(emu, USERS_BATCH, [user(i) for i in range(start, start + n)],
                                     f"bench-rate-{kind}", monitor=False, transport=kind)
            details[f"professional_{kind}"] = {"items_per_s": round(n / result.elapsed_seconds, 1),
                                               "client_cpu_us_per_item": round(cpu_s / n * 1e6, 2),
                                               "throttled": result.throttled}
    with emulator("professional", latency_ms=LATENCY_MS, rate_limits=False) as emu:
        log("the emulator alone (bare httpx client, no limits)")
        raw = run_raw_capacity(emu, n, deadline_s=sizes.phase_deadline_s)
    details["emulator_alone_items_per_s"] = raw["items_per_s_overall"]
    for kind in TRANSPORTS:
        rate = details[f"professional_{kind}"]["items_per_s"]
        out.rows.append(Row("19", f"Professional, one hook.upsert_users, {kind} (items/s)", rate, "items/s",
                            raw["items_per_s_overall"], "the emulator alone (bare httpx, no limits)",
                            target="(report; ceiling 50,000/s)", note=f"{rate / 50_000:.3f} × the 50k ceiling"))
    out.details = details
    return out


if __name__ == "__main__":
    run_alone(clientcpu)
