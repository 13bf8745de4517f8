"""Request statistics: per endpoint and status, 429s, replays, injected faults, dropped items, client types."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

MAX_CLIENT_TYPES = 64


class Stats:
    def __init__(self) -> None:
        # endpoint label -> HTTP status (or "dropped" / "disconnected") -> count
        self.requests: defaultdict[str, Counter[int | str]] = defaultdict(Counter)
        self.total = 0
        self.rate_limited = 0
        self.replays = 0
        self.faults: Counter[str] = Counter()
        self.dropped_items: Counter[str] = Counter()
        self.items_received: Counter[str] = Counter()
        self.client_types: Counter[str] = Counter()

    def request(self, endpoint: str, status: int | str) -> None:
        self.requests[endpoint][status] += 1
        self.total += 1
        if status == 429:
            self.rate_limited += 1

    def client_type(self, value: str | None) -> None:
        key = value if value else "(none)"
        if key not in self.client_types and len(self.client_types) >= MAX_CLIENT_TYPES:
            key = "(other)"
        self.client_types[key] += 1

    def snapshot(self) -> dict[str, Any]:
        by_status: Counter[str] = Counter()
        for counts in self.requests.values():
            for status, n in counts.items():
                by_status[str(status)] += n
        return {
            "requests_total": self.total,
            "requests": {
                ep: {str(s): n for s, n in sorted(c.items(), key=lambda kv: str(kv[0]))}
                for ep, c in sorted(self.requests.items())
            },
            "requests_by_status": dict(sorted(by_status.items())),
            "rate_limited": self.rate_limited,
            "replays": self.replays,
            "faults": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "dropped_items": dict(self.dropped_items),
            "dropped_items_total": sum(self.dropped_items.values()),
            "items_received": dict(self.items_received),
            "client_types": dict(self.client_types),
        }
