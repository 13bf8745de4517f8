"""The pacer against the emulator's own sliding-window limiter, in simulated time.

A discrete-event simulation: each worker is a :class:`Pacer` with a few request slots; a request
reaches the limiter half a round trip after its token and the answer (with the rate headers) comes
back half a round trip later. No sockets and no sleeping, so the figures are exact and the test is
fast; the real thing is measured by the scale-out benchmark.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import pytest

from airflow_provider_spotzee.pacing import Pacer
from airflow_provider_spotzee.testing.config import PLANS
from airflow_provider_spotzee.testing.ratelimit import RateLimiter

STARTER = PLANS["starter"]
CEILING = STARTER.write  # requests per second


@dataclass
class Worker:
    pacer: Pacer
    start: float
    batches: int
    accepted: list[float] = field(default_factory=list)
    throttled: int = 0
    finished: float | None = None


def simulate(workers: list[Worker], *, slots: int = 8, rtt: float = 0.05, headers: bool = True,
             until: float = 3_600.0) -> RateLimiter:
    now = [0.0]
    limiter = RateLimiter()
    seq = itertools.count()
    events: list[tuple[float, int, str, int, object]] = []
    for w_index, worker in enumerate(workers):
        worker.pacer._clock = lambda: now[0]
        worker.pacer._updated = worker.start
        for _ in range(slots):
            heapq.heappush(events, (worker.start, next(seq), "try", w_index, None))
    pending = [w.batches for w in workers]  # batches not yet taken by a slot
    while events:
        t, _, kind, w_index, payload = heapq.heappop(events)
        assert t < until, "the simulation did not finish"
        now[0] = t
        worker = workers[w_index]
        if kind == "try":
            if pending[w_index] == 0:
                continue
            wait = worker.pacer.take()
            if wait > 0:
                heapq.heappush(events, (t + wait, next(seq), "try", w_index, None))
                continue
            pending[w_index] -= 1
            heapq.heappush(events, (t + rtt / 2, next(seq), "arrive", w_index, None))
        elif kind == "arrive":
            decision = limiter.check("key", "write", "starter", STARTER, t)
            heapq.heappush(events, (t + rtt / 2, next(seq), "answer", w_index, decision))
        else:
            decision = payload
            sent = {k.decode(): v.decode() for k, v in decision.headers()} if headers else {}  # type: ignore[attr-defined]
            worker.pacer.observe(sent, 200 if decision.allowed else 429)  # type: ignore[attr-defined]
            if decision.allowed:  # type: ignore[attr-defined]
                worker.accepted.append(t)
                if len(worker.accepted) == worker.batches:
                    worker.finished = t
            else:
                worker.throttled += 1
                worker.pacer.pause(decision.retry_after)  # type: ignore[attr-defined]
                pending[w_index] += 1  # the transport retries it
            heapq.heappush(events, (t, next(seq), "try", w_index, None))
    return limiter


def sustained(times: list[float], lo: float = 0.1, hi: float = 0.9) -> float:
    """Accepted requests per second between the moments lo and hi of them had been accepted."""
    times = sorted(times)
    a, b = times[int(len(times) * lo)], times[int(len(times) * hi) - 1]
    return (int(len(times) * hi) - 1 - int(len(times) * lo)) / (b - a)


def test_alone_on_the_key_it_paces_at_98_percent_without_429s():
    worker = Worker(Pacer(CEILING * 0.98), start=0.0, batches=3_000)
    simulate([worker])
    assert worker.throttled == 0
    assert 0.97 * CEILING <= sustained(worker.accepted) <= 0.985 * CEILING
    assert not worker.pacer.shared


@pytest.mark.parametrize(("stagger", "overall"), [(0.0, 0.90), (0.7, 0.88), (2.5, 0.80), (6.0, 0.80)])
def test_eight_partitions_on_one_key_share_it_near_the_ceiling(stagger, overall):
    """Eight mapped partitions (fair share 1/8) starting together or one after another, as a scheduler
    starts them: together they hold the shared target without 429s. Starts spread over many seconds
    cost some budget: a newcomer takes only its fair share in its first window."""
    workers = [Worker(Pacer(CEILING * 0.98, fair_share=1 / 8), start=i * stagger, batches=1_250)
               for i in range(8)]
    simulate(workers)
    accepted = [t for w in workers for t in w.accepted]
    throttled = sum(w.throttled for w in workers)
    end = max(w.finished for w in workers)  # type: ignore[type-var]
    assert throttled <= 0.002 * len(accepted)
    assert sustained(accepted) >= 0.88 * CEILING
    assert len(accepted) / end >= overall * CEILING  # including start-up and the last worker's tail


@pytest.mark.parametrize("stagger", [0.0, 2.5])
def test_workers_that_do_not_know_of_each_other_still_share_the_key(stagger):
    workers = [Worker(Pacer(CEILING * 0.98), start=i * stagger, batches=1_250) for i in range(8)]
    simulate(workers)
    accepted = [t for w in workers for t in w.accepted]
    end = max(w.finished for w in workers)  # type: ignore[type-var]
    assert sum(w.throttled for w in workers) <= 0.01 * len(accepted)
    assert len(accepted) / end >= 0.85 * CEILING


def test_a_static_split_loses_the_budget_of_partitions_not_yet_running():
    """Why the pacers share through the headers instead of each taking a fixed 1/8: with starts 2.5 s
    apart (a busy scheduler) a fixed split leaves much of the budget unused."""
    fixed = [Worker(Pacer(CEILING * 0.98 / 8), start=i * 2.5, batches=1_250) for i in range(8)]
    simulate(fixed)
    accepted = [t for w in fixed for t in w.accepted]
    assert len(accepted) / max(w.finished for w in fixed) < 0.70 * CEILING  # type: ignore[type-var]


def test_the_last_worker_left_takes_the_whole_budget():
    early = Worker(Pacer(CEILING * 0.98), start=0.0, batches=400)
    late = Worker(Pacer(CEILING * 0.98), start=1.0, batches=4_000)
    simulate([early, late])
    assert early.finished is not None and late.finished is not None
    tail = [t for t in late.accepted if t > early.finished + 2 * Pacer.WINDOW]
    assert sustained(tail) >= 0.95 * CEILING
    assert not late.pacer.shared


def test_without_rate_headers_it_falls_back_to_backing_off_on_429s():
    workers = [Worker(Pacer(CEILING * 0.98), start=0.0, batches=600) for _ in range(3)]
    simulate(workers, headers=False)
    accepted = [t for w in workers for t in w.accepted]
    assert len(accepted) == 1_800  # everything lands, slower and with 429s, but it lands


def test_a_lost_probe_does_not_stall_the_pacer():
    now = [0.0]
    pacer = Pacer(98.0, clock=lambda: now[0])
    assert pacer.take() == 0.0  # the probe
    assert pacer.take() > 0  # waiting for its answer
    pacer.answered()  # it failed without headers
    now[0] += 0.02
    assert pacer.take() == 0.0
