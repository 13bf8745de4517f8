"""Pacing below a key's rate budget: :class:`Pacer`, one per direction (writes, reads) per transport.

Pure timing logic (no I/O besides ``asyncio.sleep`` in :meth:`Pacer.acquire`); the transport feeds it
the server's rate headers. ``tests/unit/test_pacer.py`` simulates several of them in simulated time.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Callable, Mapping

from airflow_provider_spotzee.api_facts import RATE_WINDOW_SECONDS


class Pacer:
    """Paces requests below the key's budget, alone or with other workers on the same key.

    A token bucket at ``rate`` req/s with a small bucket (so the 10 s sliding window can never be
    overrun by a burst). The server's headers steer it: ``X-RateLimit-Limit`` − ``X-RateLimit-Remaining``
    is what *every* client of the key used in the window, and the pacer knows what it sent itself in the
    same window. Alone on the key it paces at ``rate`` (0.98 × the plan). When others use the key too
    (mapped partitions, another DAG) it takes its share of a shared target (:data:`SHARED_TARGET` × the
    window's limit): its current rate over everybody's, or, with a ``fair_share`` (``1/N`` partitions),
    exactly that unless clearly fewer workers are busy. Past the target every worker brakes, to a stop at
    the limit. Before the first response it sends one probe and waits for the answer, so eight workers
    starting together do not burst. When ``X-RateLimit-Remaining`` runs low every sender waits
    ``X-RateLimit-Reset``; a 429 pauses everybody for ``Retry-After``. Without rate headers (another
    server) it falls back to AIMD on 429s. ``tests/unit/test_pacer.py`` simulates several of them.
    """

    #: A shared key's window is filled to this fraction of its limit: the margin absorbs a newcomer's
    #: ramp-up and responses that are one round trip old.
    SHARED_TARGET = 0.94
    #: Alone on the key it fills the window to this fraction (= its own pacing ceiling).
    ALONE_TARGET = 0.98
    #: The server's sliding window (api-facts: 10 s).
    WINDOW = RATE_WINDOW_SECONDS
    #: A worker that has no share yet (a newcomer) still sends this often, so it can grow one.
    MIN_RATE = 1.0
    #: Rates are measured over this many seconds.
    RECENT = 3.0
    PROBE_TIMEOUT = 2.0

    def __init__(self, rate: float, *, fair_share: float | None = None, low_water: int = 2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = rate
        self.rate = rate
        self.fair_share = fair_share or 0.0
        self.low_water = low_water
        self.shared = False
        self._clock = clock
        # 150 ms of tokens: enough to catch up after a short stall (a descheduled VM, a GC pause), small
        # enough that 10 s at the paced rate plus a full bucket stays under the 10 s window's limit
        self.capacity = max(1.0, rate * 0.15)
        self._tokens = 1.0  # the probe; the bucket fills at the paced rate from there
        self._updated = clock()
        self._paused_until = 0.0
        self._sent: deque[float] = deque()  # this pacer's sends in the last WINDOW seconds
        self._others: deque[tuple[float, int]] = deque()  # (when, others' window count), RECENT seconds
        self._first: float | None = None
        self._informed = False
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while (wait := self.take()) > 0:
                await asyncio.sleep(wait)

    def take(self) -> float:
        """Take a token and return 0, or return how long to wait before asking again."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        if self._first is not None and not self._informed and now - self._first < self.PROBE_TIMEOUT:
            return 0.02  # the probe is out: wait for the server's word on the key's usage
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens < 1.0 - 1e-9:  # (float dust must not turn into a zero-length wait)
            return max(0.001, (1.0 - self._tokens) / self.rate)
        self._tokens = max(0.0, self._tokens - 1.0)
        if self._first is None:
            self._first = now
        self._sent.append(now)
        return 0.0

    def answered(self) -> None:
        """The probe came back without rate headers (a transport error): stop waiting for them."""
        self._informed = True

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str], status: int) -> None:
        self._informed = True
        if status == 429:
            if self._sent:
                self._sent.pop()  # refused requests do not count against the window
            self._set_rate(max(self.ceiling * 0.1, self.rate * 0.7))
            return
        try:
            limit, remaining = int(headers["x-ratelimit-limit"]), int(headers["x-ratelimit-remaining"])
        except (KeyError, ValueError):
            self._set_rate(min(self.ceiling, self.rate + self.ceiling * 0.01))  # no headers: AIMD
            return
        self._share(limit, remaining)
        try:
            reset = float(headers.get("x-ratelimit-reset", ""))
        except ValueError:
            return
        if remaining <= self.low_water and 0 < reset <= 60:
            self.pause(reset)

    def _share(self, limit: int, remaining: int) -> None:
        now = self._clock()
        sent = self._sent
        while sent and sent[0] <= now - self.WINDOW:
            sent.popleft()
        own = len(sent)
        others = max(0, limit - remaining - own)  # in-flight requests make this an underestimate
        history = self._others
        history.append((now, others))
        while len(history) > 1 and history[1][0] <= now - self.RECENT:
            history.popleft()
        # In its first window this pacer's count is exact, so any other use is another worker; later,
        # own sends just out of its window may still be in the server's, so a few are tolerated.
        age = max(1e-3, now - (self._first if self._first is not None else now))
        self.shared = others > (0 if age < self.WINDOW else max(3, 0.01 * limit))
        target = (self.SHARED_TARGET if self.shared else self.ALONE_TARGET) * limit
        # Rates now rather than window averages, so that a worker that stops (or starts) shows at once.
        # Own: exact, over RECENT seconds. Others: their window count over the time this pacer has seen
        # (an overestimate when they started earlier: this pacer then yields), or, once a falling count
        # shows that some of them stopped, what the count did over RECENT seconds plus what left.
        own_recent = bisect.bisect_right(sent, now) - bisect.bisect_right(sent, now - self.RECENT)
        own_rate = own_recent / min(self.RECENT, age)
        others_rate = others / min(self.WINDOW, age)
        then, others_then = history[0]
        span = now - then
        if span >= self.RECENT / 2:
            others_rate = min(others_rate, max(0.0, (others - others_then) / span + others_then / self.WINDOW))
        share = own_rate / (own_rate + others_rate) if own_rate else 0.0
        if self.fair_share and (share < 1.5 * self.fair_share or age < self.WINDOW):
            # Noisy estimates around the fair share would, floored at it, add up to more than the whole
            # budget; take more only when clearly fewer workers are busy (one started late or finished),
            # and not in the first window, whose counts are too young to say.
            share = self.fair_share
        # Any 10 s of sends must fit the window, so together the workers send at most target / window;
        # this pacer sends its share of that (its part of the key's current use).
        rate = share * target / self.WINDOW
        used = own + others
        if self.shared and used > target:
            # The shares are estimates (and fair shares are floors), so together they can overshoot:
            # brake as the window fills past the target, to a stop at the limit, instead of running
            # into 429s (each one pauses the worker that gets it for a whole second).
            rate *= max(0.0, (limit - used) / max(1.0, limit - target))
        self._set_rate(min(self.ceiling, max(self.MIN_RATE, rate)))

    def _set_rate(self, rate: float) -> None:
        if rate != self.rate:
            now = self._clock()  # settle the tokens earned at the old rate first
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self.rate = rate
            self.capacity = max(1.0, rate * 0.15)
            self._tokens = min(self._tokens, self.capacity)
