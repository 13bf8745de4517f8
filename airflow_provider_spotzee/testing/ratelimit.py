"""Per-key sliding-window rate limiter (reads and writes budgeted separately).

A request is refused when the number of accepted requests in the last window (``api_facts.RATE_WINDOW_SECONDS``,
10 s) is at least ``window × rps``,
or the number in the last 1 s is at least ``burst × rps``. Refused requests are not counted. Each
(key, kind) keeps two deques of timestamps, so a check is amortised O(1).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from airflow_provider_spotzee.api_facts import RATE_WINDOW_SECONDS
from airflow_provider_spotzee.testing.config import Plan

WINDOW_SECONDS = RATE_WINDOW_SECONDS
BURST_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int
    tier: str

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
            (b"x-ratelimit-tier", self.tier.encode()),
        ]


class _Window:
    __slots__ = ("one", "ten")

    def __init__(self) -> None:
        self.ten: deque[float] = deque()
        self.one: deque[float] = deque()


class RateLimiter:
    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}

    def clear(self) -> None:
        self._windows.clear()

    def check(
        self,
        key: str,
        kind: str,
        tier: str,
        plan: Plan,
        now: float,
        *,
        consume: bool = True,
        enforce: bool = True,
    ) -> Decision:
        """Decide on one request of ``kind`` ("read"/"write"). ``consume=False`` only peeks.

        ``enforce=False`` (rate limits disabled) never refuses and reports a full budget.
        """
        rps = plan.read if kind == "read" else plan.write
        limit = int(WINDOW_SECONDS * rps)
        if not enforce:
            return Decision(True, limit, limit, 0, 0, tier)
        burst_limit = plan.burst * rps
        w = self._windows.get((key, kind))
        if w is None:
            w = self._windows[(key, kind)] = _Window()
        ten, one = w.ten, w.one
        edge = now - WINDOW_SECONDS
        while ten and ten[0] <= edge:
            ten.popleft()
        edge = now - BURST_SECONDS
        while one and one[0] <= edge:
            one.popleft()

        over_window = len(ten) >= limit
        over_burst = len(one) >= burst_limit
        if over_window or over_burst:
            wait = 0.0
            if over_window and ten:
                wait = ten[0] + WINDOW_SECONDS - now
            if over_burst and one:
                wait = max(wait, one[0] + BURST_SECONDS - now)
            retry = max(1, math.ceil(wait))
            return Decision(False, limit, max(0, limit - len(ten)), retry, retry, tier)
        if consume:
            ten.append(now)
            one.append(now)
        remaining = max(0, limit - len(ten))
        # Reset: 0 when another request would be accepted right now, else seconds until one would be.
        reset = 0
        if remaining == 0 and ten:
            reset = max(1, math.ceil(ten[0] + WINDOW_SECONDS - now))
        elif len(one) >= burst_limit and one:
            reset = max(1, math.ceil(one[0] + BURST_SECONDS - now))
        return Decision(True, limit, remaining, reset, 0, tier)
