"""Past this machine, by simulation: 25 and 100 workers on one Enterprise key (2,500 write requests/s).

The same kind of discrete-event simulation as ``test_pacer.py``: each worker is a real :class:`Pacer` with
``max_in_flight`` (16) request slots; a request reaches the emulator's own :class:`RateLimiter` half a
round trip (50 ms) after its token, and the answer with the rate headers comes back half a round trip
later. No sockets and no sleeping: simulated time, a seeded RNG, so every figure is exact and repeatable.

The deployment it stands for (``docs/deploying.md``):

- N mapped partitions (``partitions(N)``, so each pacer's fair share is 1/N) start at random moments over
  the first 30 s, as a busy scheduler and a pool of Celery or Kubernetes workers start them;
- 10 % of them are killed at a random moment of the steady state and restarted 5 s later (a new process:
  a new pacer, resuming from its checkpoint); requests in flight when it dies still reach the server;
- the key is shared with a foreign client (another integration) sending 20 % of the budget at a constant
  rate, whatever the headers say.

What must hold, measured from the moment every worker is running plus one window until the end:
aggregate ≥ 0.90 × what the foreign client leaves of the ceiling; ≤ 2 % of the workers' requests answered
429; and no worker below half its fair share (what is left / workers alive) in two consecutive 10 s windows
of its life.

``python tests/unit/test_pacer_scale.py [PNG]`` draws ``docs/performance-pacer-sim.png`` from the same runs.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_spotzee.pacing import Pacer
from airflow_provider_spotzee.testing.config import PLANS
from airflow_provider_spotzee.testing.ratelimit import RateLimiter

ENTERPRISE = PLANS["enterprise"]
CEILING = ENTERPRISE.write  # 2,500 write requests per second
WINDOW = Pacer.WINDOW  # the server's sliding window, 10 s
RTT = 0.05
SLOTS = 16  # the transport's default max_in_flight
START_SPREAD = 30.0
FOREIGN_SHARE = 0.20
KILLED_SHARE = 0.10
RESTART_AFTER = 5.0
END = 90.0
SEED = 20261202


@dataclass
class Life:
    """One process of a worker: from its start (or restart) until it ends or is killed."""

    start: float
    end: float
    pacer: Pacer | None = None
    in_flight: int = 0
    scheduled: bool = False


@dataclass
class SimWorker:
    lives: list[Life]
    accepted: list[float] = field(default_factory=list)
    throttled: int = 0
    answered: int = 0


@dataclass
class Outcome:
    workers: list[SimWorker]
    foreign_accepted: list[float]
    foreign_throttled: int
    measure_from: float
    kills: list[float]

    # ---------------------------------------------------------------------------------------- figures

    @property
    def left(self) -> float:
        """What the foreign client leaves of the ceiling (requests/s) over the measured span."""
        span = END - self.measure_from
        return CEILING - sum(1 for t in self.foreign_accepted if t >= self.measure_from) / span

    @property
    def aggregate(self) -> float:
        span = END - self.measure_from
        return sum(1 for w in self.workers for t in w.accepted if t >= self.measure_from) / span

    @property
    def throttled_share(self) -> float:
        answered = sum(w.answered for w in self.workers)
        return sum(w.throttled for w in self.workers) / max(1, answered)

    def alive(self, t: float) -> int:
        return sum(1 for w in self.workers for life in w.lives if life.start <= t < life.end)

    def starvation(self) -> tuple[int, float]:
        """(the longest run of consecutive windows a worker spent below half its fair share, the lowest
        window rate over fair share seen). Windows are 10 s of one process's life, from its start."""
        longest, lowest = 0, float("inf")
        foreign_rate = len(self.foreign_accepted) / END
        for worker in self.workers:
            times = sorted(worker.accepted)
            for life in worker.lives:
                run, k = 0, 0
                while life.start + (k + 1) * WINDOW <= min(life.end, END):
                    a, b = life.start + k * WINDOW, life.start + (k + 1) * WINDOW
                    got = _count(times, a, b) / WINDOW
                    alive = sum(self.alive(a + s * 1.0) for s in range(int(WINDOW))) / WINDOW
                    fair = (CEILING - foreign_rate) / max(1.0, alive)
                    lowest = min(lowest, got / fair)
                    run = run + 1 if got < 0.5 * fair else 0
                    longest = max(longest, run)
                    k += 1
        return longest, lowest

    def series(self, step: float = 1.0) -> dict[str, list[tuple[float, float]]]:
        """Requests/s accepted per ``step``: the workers together, and the foreign client."""
        def per(times: list[float]) -> list[tuple[float, float]]:
            counts: dict[int, int] = {}
            for t in times:
                counts[int(t // step)] = counts.get(int(t // step), 0) + 1
            return [((b + 1) * step, counts.get(b, 0) / step) for b in range(int(END // step))]
        return {"workers": per([t for w in self.workers for t in w.accepted]), "foreign": per(self.foreign_accepted)}


def _count(times: list[float], a: float, b: float) -> int:
    return bisect.bisect_left(times, b) - bisect.bisect_left(times, a)


def simulate(n: int, *, seed: int = SEED) -> Outcome:
    rng = random.Random(seed + n)
    starts = sorted(rng.uniform(0.0, START_SPREAD) for _ in range(n))
    measure_from = starts[-1] + WINDOW
    workers = [SimWorker([Life(start, END)]) for start in starts]
    kills = []
    for index in rng.sample(range(n), max(1, round(KILLED_SHARE * n))):
        dies = rng.uniform(measure_from, END - 2 * WINDOW)
        first = workers[index].lives[0]
        first.end = dies
        workers[index].lives.append(Life(dies + RESTART_AFTER, END))
        kills.append(dies)

    now = [0.0]

    def clock() -> float:  # the pacers' clock is the simulation's
        return now[0]

    limiter = RateLimiter()
    seq = itertools.count()
    events: list[tuple[float, int, str, int, int, Any]] = []
    for w_index, worker in enumerate(workers):
        for l_index, life in enumerate(worker.lives):
            heapq.heappush(events, (life.start, next(seq), "start", w_index, l_index, None))
    foreign_every = 1.0 / (FOREIGN_SHARE * CEILING)
    heapq.heappush(events, (0.0, next(seq), "foreign", -1, 0, None))
    foreign_accepted: list[float] = []
    foreign_throttled = 0

    while events:
        t, _, kind, w_index, l_index, payload = heapq.heappop(events)
        if t >= END:
            break
        now[0] = t
        if kind == "foreign":
            decision = limiter.check("key", "write", "enterprise", ENTERPRISE, t)
            if decision.allowed:
                foreign_accepted.append(t)
            else:
                foreign_throttled += 1
            heapq.heappush(events, (t + foreign_every, next(seq), "foreign", -1, 0, None))
            continue
        if kind == "arrive":  # reaches the server even when its sender died meanwhile
            decision = limiter.check("key", "write", "enterprise", ENTERPRISE, t)
            heapq.heappush(events, (t + RTT / 2, next(seq), "answer", w_index, l_index, decision))
            continue
        worker = workers[w_index]
        life = worker.lives[l_index]
        if t >= life.end:
            continue  # this process is dead: its answers go nowhere, it sends nothing more
        if kind == "start":
            life.pacer = Pacer(CEILING * 0.98, fair_share=1 / n, clock=clock)
            kind = "try"
        pacer = life.pacer
        assert pacer is not None
        if kind == "answer":
            life.in_flight -= 1
            worker.answered += 1
            headers = {"x-ratelimit-limit": str(payload.limit), "x-ratelimit-remaining": str(payload.remaining),
                       "x-ratelimit-reset": str(payload.reset)}
            pacer.observe(headers, 200 if payload.allowed else 429)
            if payload.allowed:
                worker.accepted.append(t)
            else:
                worker.throttled += 1
                pacer.pause(payload.retry_after)
            if life.scheduled:
                continue
            kind = "try"
        if kind == "try":
            life.scheduled = False
            while life.in_flight < SLOTS:
                wait = pacer.take()
                if wait > 0:
                    heapq.heappush(events, (t + wait, next(seq), "try", w_index, l_index, None))
                    life.scheduled = True
                    break
                life.in_flight += 1
                heapq.heappush(events, (t + RTT / 2, next(seq), "arrive", w_index, l_index, None))
    return Outcome(workers, foreign_accepted, foreign_throttled, measure_from, sorted(kills))


_RUNS: dict[int, Outcome] = {}


def run(n: int) -> Outcome:
    if n not in _RUNS:
        _RUNS[n] = simulate(n)
    return _RUNS[n]


def figures(n: int) -> str:
    out = run(n)
    longest, lowest = out.starvation()
    bins = [y for x, y in out.series()["workers"] if x > out.measure_from]
    return (f"{n} workers: aggregate {out.aggregate:,.0f} req/s = {out.aggregate / out.left:.3f} x what is left "
            f"({out.left:,.0f}); 429 {out.throttled_share:.2%} of the workers' requests, foreign "
            f"{out.foreign_throttled / max(1, out.foreign_throttled + len(out.foreign_accepted)):.2%}; longest "
            f"starved run {longest} window(s), lowest window {lowest:.2f} x fair share; 1 s bins after "
            f"{out.measure_from:.0f} s from {min(bins):,.0f} to {max(bins):,.0f} req/s")


@pytest.mark.parametrize("n", [25, 100])
def test_aggregate_holds_90_percent_of_what_the_foreign_client_leaves(n):
    out = run(n)
    print(figures(n))
    assert len(out.kills) == max(1, round(KILLED_SHARE * n))
    assert out.aggregate >= 0.90 * out.left, figures(n)


@pytest.mark.parametrize("n", [25, 100])
def test_at_most_2_percent_of_requests_are_answered_429(n):
    assert run(n).throttled_share <= 0.02, figures(n)


@pytest.mark.parametrize("n", [25, 100])
def test_no_worker_starves_below_half_its_fair_share_for_more_than_one_window(n):
    longest, _ = run(n).starvation()
    assert longest <= 1, figures(n)


def test_the_simulation_is_deterministic():
    a, b = simulate(25), simulate(25)
    assert [len(w.accepted) for w in a.workers] == [len(w.accepted) for w in b.workers]
    assert a.kills == b.kills and a.foreign_throttled == b.foreign_throttled


def plot(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 8), dpi=110, sharex=True)
    for ax, n in zip(axes, (25, 100)):
        out = run(n)
        series = out.series()
        xs, ys = zip(*series["workers"])
        ax.plot(xs, ys, "-", color="tab:blue", linewidth=1.5, label=f"{n} workers together (1 s bins)")
        fx, fy = zip(*series["foreign"])
        ax.plot(fx, fy, "-", color="tab:gray", linewidth=1.0, label="foreign client (20 % of the budget)")
        ax.axhline(CEILING, color="tab:red", linewidth=1.2, label=f"Enterprise ceiling {CEILING:,.0f} req/s")
        ax.axhline(out.left, color="tab:orange", linewidth=1.0, label=f"left by the foreign client {out.left:,.0f}")
        ax.axhline(0.9 * out.left, color="tab:orange", linewidth=1.0, linestyle="--", label="target 0.90 × that")
        ax.axvline(out.measure_from, color="black", linewidth=0.8, linestyle=":", label="measured from here")
        for i, t in enumerate(out.kills):
            ax.axvspan(t, t + RESTART_AFTER, color="tab:purple", alpha=0.08,
                       label="a worker killed (restarted 5 s later)" if i == 0 else None)
        _, lowest = out.starvation()
        ax.set_title(f"{n} workers on one key, starts over {START_SPREAD:.0f} s: aggregate "
                     f"{out.aggregate / out.left:.3f} × what is left, {out.throttled_share:.2%} 429, "
                     f"lowest window {lowest:.2f} × fair share", fontsize=9)
        ax.set_ylabel("write requests/s accepted")
        ax.set_ylim(0, max(CEILING * 1.15, max(ys) * 1.05))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7, ncol=2)
    axes[-1].set_xlabel("simulated seconds")
    fig.suptitle("Simulation: Pacer × the emulator's limiter, Enterprise (2,500 write req/s), 50 ms RTT, "
                 "16 slots per worker", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "docs" / \
        "performance-pacer-sim.png"
    for count in (25, 100):
        print(figures(count))
    print(f"wrote {plot(target)}")
