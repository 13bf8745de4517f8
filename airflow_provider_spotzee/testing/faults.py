"""Seedable fault injection. One ``random.Random(seed)`` drives the fault decisions, a second one
(derived from the same seed) the latency jitter, so the fault sequence does not depend on latency
settings. Random numbers are drawn only for faults whose rate is above zero."""

from __future__ import annotations

import math
import random
from typing import Any

from airflow_provider_spotzee.testing.config import FaultConfig


class FaultInjector:
    def __init__(self, config: FaultConfig, seed: int | None, now: float) -> None:
        self.config = config
        self.seed = seed
        self._rng = random.Random(seed)
        self._jitter = random.Random(None if seed is None else seed + 7919)
        self.storm_until = now + config.storm_seconds if config.storm_seconds > 0 else 0.0

    def update(self, now: float, **changes: Any) -> FaultConfig:
        seed_given = "seed" in changes
        seed = changes.pop("seed", None)
        self.config = self.config.updated(**changes)
        if "storm_seconds" in changes:
            s = self.config.storm_seconds
            self.storm_until = now + s if s > 0 else 0.0
        if seed_given:
            self.seed = seed
            self._rng = random.Random(seed)
            self._jitter = random.Random(None if seed is None else seed + 7919)
        return self.config

    def view(self, now: float) -> dict[str, Any]:
        data: dict[str, Any] = self.config.to_dict()
        data["seed"] = self.seed
        data["storm_remaining_seconds"] = round(max(0.0, self.storm_until - now), 3)
        return data

    def storm_retry_after(self, now: float) -> int:
        """Seconds left in a 429 storm (0 when none is running)."""
        if self.storm_until > now:
            return max(1, math.ceil(self.storm_until - now))
        return 0

    def server_error(self) -> int:
        """0, or the 5xx status to inject (500 or 503)."""
        rate = self.config.error_rate
        if rate > 0 and self._rng.random() < rate:
            return 500 if self._rng.random() < 0.5 else 503
        return 0

    def forced_in_progress(self) -> bool:
        rate = self.config.in_progress_rate
        return rate > 0 and self._rng.random() < rate

    def drop_after_apply(self) -> bool:
        rate = self.config.drop_after_apply_rate
        return rate > 0 and self._rng.random() < rate

    def item_error(self) -> bool:
        rate = self.config.item_error_rate
        return rate > 0 and self._rng.random() < rate

    def latency_seconds(self) -> float:
        cfg = self.config
        ms = cfg.latency_ms
        if cfg.latency_jitter_ms > 0:
            ms += self._jitter.uniform(0.0, cfg.latency_jitter_ms)
        return ms / 1000.0
