"""Measured runs against an emulator: the hook, a raw async client (emulator capacity) and a naive loop.

Each run checks that it moved what it set out to (every user it fed, or all it fed before its deadline;
none failed; the emulator holds exactly that many contacts) and raises otherwise: no figure from nothing.
Each expects a freshly reset emulator (``benchmarks.common.emulator``)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from airflow_provider_spotzee.hooks.spotzee import SpotzeeHook
from airflow_provider_spotzee.testing import SpotzeeEmulator
from benchmarks.common import (
    ITEMS_PER_REQUEST,
    CpuMeter,
    GcPauses,
    StatsSampler,
    expect_items,
    fresh_range,
    user,
    users,
)


def _check(what: str, emu: SpotzeeEmulator, n: int, submitted: int, succeeded: int) -> int:
    """All of the ``n`` users (or those fed before the deadline) sent and accepted, and in the emulator."""
    expect_items(f"{what}: users submitted", submitted, n, partial_ok=True)
    expect_items(f"{what}: users accepted", succeeded, submitted)
    return expect_items(f"{what}: contacts in the emulator", emu.ledger_summary()["contacts"], succeeded)


def run_hook(emu: SpotzeeEmulator, n: int, *, deadline_s: float, namespace: str,
             distinct: int | None = None, hook: SpotzeeHook | None = None) -> dict[str, Any]:
    """``hook.upsert_users`` (sync endpoint) over a lazy generator of ``n`` fresh users, sampled."""
    hook = hook or SpotzeeHook()
    _ = hook.config  # resolve the connection before the clock starts
    start = fresh_range(n)
    deadline = time.monotonic() + deadline_s
    with StatsSampler(emu) as sampler, CpuMeter(emu.pid) as cpu, GcPauses() as gcp:
        result = hook.upsert_users(users(start, n, deadline=deadline, distinct=distinct),
                                   idempotency_namespace=namespace)
    _check(f"hook.upsert_users ({namespace})", emu, n, result.submitted, result.succeeded)
    totals = sampler.totals()
    return {
        "users_requested": n,
        "submitted": result.submitted,
        "succeeded": result.succeeded,
        "failed": result.submitted - result.succeeded,
        "stopped_by_deadline": result.submitted < n,
        "elapsed_s": round(result.elapsed_seconds, 3),
        "items_per_s_overall": round(result.submitted / result.elapsed_seconds, 1) if result.elapsed_seconds else 0.0,
        "items_per_s_sustained": round(sampler.sustained(), 1),
        "client_requests": result.requests,
        "client_retries": result.retries,
        "client_throttled": result.throttled,
        "emulator_requests": totals["requests"],
        "emulator_429": totals["throttled"],
        "emulator_items": totals["items"],
        **cpu.summary(result.submitted),
        **gcp.summary(),
        "samples": [list(x) for x in sampler.samples],  # (t, items accepted, requests, 429s)
        "series": sampler.series(),
    }


async def _raw_async(base_url: str, api_key: str, bodies: list[bytes], concurrency: int, deadline: float) -> int:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    queue = list(reversed(bodies))
    sent = [0]

    async def worker(client: httpx.AsyncClient) -> None:
        while queue and time.monotonic() < deadline:
            body = queue.pop()
            for _ in range(5):  # bounded: a probe never loops forever
                response = await client.post("/users/batch", content=body)
                if response.status_code == 200:
                    sent[0] += ITEMS_PER_REQUEST
                    break
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60.0,
                                 trust_env=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return sent[0]


def run_raw_capacity(emu: SpotzeeEmulator, n: int, *, deadline_s: float, concurrency: int = 16) -> dict[str, Any]:
    """The emulator alone: pre-serialised bodies of fresh users, a bare ``httpx.AsyncClient`` with
    ``concurrency`` requests in flight, no client-side validation. (Run it with rate limits off.)"""
    start = fresh_range(n)
    bodies = [json.dumps([user(i) for i in range(s, min(s + ITEMS_PER_REQUEST, start + n))]).encode()
              for s in range(start, start + n, ITEMS_PER_REQUEST)]
    deadline = time.monotonic() + deadline_s
    with StatsSampler(emu) as sampler, CpuMeter(emu.pid) as cpu:
        sent = asyncio.run(_raw_async(emu.base_url, emu.api_key, bodies, concurrency, deadline))
    _check("raw async client", emu, n, sent, sent)
    return {
        "concurrency": concurrency,
        "submitted": sent,
        "items_per_s_overall": round(sent / cpu.wall_s, 1) if cpu.wall_s else 0.0,
        "items_per_s_sustained": round(sampler.sustained(), 1),
        **cpu.summary(sent),
        "series": sampler.series(),
    }


def run_naive(emu: SpotzeeEmulator, n: int, *, deadline_s: float) -> dict[str, Any]:
    """What a DAG author writes without the provider: a plain ``httpx.Client`` loop, 100 users per
    ``POST /users/batch``, one request at a time (honouring a 429's Retry-After, bounded)."""
    start = fresh_range(n)
    deadline = time.monotonic() + deadline_s
    sent = requests = throttled = 0
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    with CpuMeter(emu.pid) as cpu, httpx.Client(base_url=emu.base_url, headers=headers, timeout=60.0,
                                                trust_env=False) as client:
        for s in range(start, start + n, ITEMS_PER_REQUEST):
            if time.monotonic() > deadline:
                break
            batch = [user(i) for i in range(s, min(s + ITEMS_PER_REQUEST, start + n))]
            for _ in range(5):
                response = client.post("/users/batch", json=batch)
                requests += 1
                if response.status_code != 429:
                    break
                throttled += 1
                time.sleep(float(response.headers.get("retry-after", "1")))
            response.raise_for_status()
            sent += len(batch)
    _check("naive loop", emu, n, sent, sent)
    return {
        "submitted": sent,
        "requests": requests,
        "throttled": throttled,
        "items_per_s_overall": round(sent / cpu.wall_s, 1) if cpu.wall_s else 0.0,
        **cpu.summary(sent),
    }
