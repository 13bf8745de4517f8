"""The emulator clock: real (monotonic) time plus an offset that tests can advance.

Idempotency TTLs, async visibility delays, rate-limit windows and contact timestamps all read this
clock, so ``advance_clock(86401)`` expires idempotency keys and empties rate windows at once.
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        """Seconds since the Unix epoch; never goes backwards."""
        return self._wall0 + (time.monotonic() - self._mono0) + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> float:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < 1e10:
            raise ValueError("advance_seconds must be a non-negative number")
        self._offset += float(seconds)
        return self.now()

    def reset(self) -> None:
        self._offset = 0.0


def iso(t: float) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: ``2026-04-28T05:14:00.000Z``."""
    ms = int(t * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
