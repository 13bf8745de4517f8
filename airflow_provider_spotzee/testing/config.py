"""Emulator configuration: plans, API keys, fault settings and the top-level :class:`EmulatorConfig`.

Plain dataclasses (no pydantic) so that building a config is cheap and the process-mode emulator can
receive it as JSON (:meth:`EmulatorConfig.to_dict` / :meth:`EmulatorConfig.from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_spotzee.api_facts import CURRENT_API_VERSION, IDEMPOTENCY_TTL_SECONDS
from airflow_provider_spotzee.api_facts import PLANS as CLIENT_PLANS

#: The version the emulator serves by default: the API's current one (``api_facts``).
CURRENT_VERSION = CURRENT_API_VERSION
#: The emulator's choice of older versions it also accepts (all behave alike), plus the current one.
SUPPORTED_VERSIONS = frozenset({"2025-09-15", "2026-01-20", CURRENT_API_VERSION})

DEFAULT_API_KEY = "sk_test_emulator"
READONLY_API_KEY = "sk_test_readonly"

PROJECT_ID = 42


@dataclass(frozen=True)
class Plan:
    """Request budget of one plan, in requests per second (enforced over the API's sliding window).

    The emulator's own type (field names ``read``/``write`` are part of its configuration API, JSON
    included); the documented numbers come from :data:`airflow_provider_spotzee.api_facts.PLANS`."""

    read: float
    write: float
    burst: float


#: The documented plans (api-facts.md), from the one table the client paces by.
PLANS: dict[str, Plan] = {
    name: Plan(read=budget.read_rps, write=budget.write_rps, burst=budget.burst)
    for name, budget in CLIENT_PLANS.items()
}


@dataclass(frozen=True)
class ApiKey:
    """A secret key the emulator accepts. ``plan=None`` means "the emulator's configured plan"."""

    key: str
    plan: str | None = None
    permissions: tuple[str, ...] = ("read", "write")
    default_version: str = CURRENT_VERSION

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def __repr__(self) -> str:  # never print the secret itself
        return f"ApiKey(key='{self.key[:8]}…', plan={self.plan!r}, permissions={self.permissions!r})"


def default_api_keys() -> list[ApiKey]:
    return [ApiKey(DEFAULT_API_KEY), ApiKey(READONLY_API_KEY, permissions=("read",))]


@dataclass(frozen=True)
class FaultConfig:
    """What the emulator injects. All rates are probabilities in [0, 1]; zero disables a fault.

    - ``error_rate``: 5xx before anything is applied (half 500 ``internal_error``, half 503
      ``service_unavailable``), on reads and writes.
    - ``drop_after_apply_rate``: a successful write is applied and its idempotency record stored, then
      the connection is closed without a response (the client sees a transport error).
    - ``latency_ms`` + ``latency_jitter_ms``: every API response is delayed by
      ``latency_ms + uniform(0, latency_jitter_ms)`` (asyncio.sleep: the loop keeps serving).
    - ``storm_seconds``: from the moment it is set, every write gets 429 ``rate_limited`` for that many
      seconds (emulator clock).
    - ``in_progress_rate``: a write carrying an Idempotency-Key gets a forced 409
      ``idempotency_in_progress``.
    - ``item_error_rate``: in ``POST /users/batch`` and ``POST /subscriptions/batch`` a valid item fails
      with the transient per-item code ``internal_error`` and is not applied.
    """

    error_rate: float = 0.0
    drop_after_apply_rate: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    storm_seconds: float = 0.0
    in_progress_rate: float = 0.0
    item_error_rate: float = 0.0

    RATES = ("error_rate", "drop_after_apply_rate", "in_progress_rate", "item_error_rate")
    DURATIONS = ("latency_ms", "latency_jitter_ms", "storm_seconds")

    def __post_init__(self) -> None:
        for name in self.RATES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1")
        for name in self.DURATIONS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1e9:
                raise ValueError(f"{name} must be a non-negative number")

    def updated(self, **changes: Any) -> FaultConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes the emulator's behaviour.

    ``plans`` lets tests add a custom (e.g. tiny) plan next to the three documented ones; ``plan`` names
    the plan used by keys whose own ``plan`` is ``None``.

    ``numeric_user_ids_first``: a path ``{userId}`` made only of ASCII digits (``GET /users/{userId}``,
    ``PATCH /users/{userId}/subscriptions``) is looked up as a numeric contact id first, then as an
    external_id. Off by default: the external_id is tried first (Spotzee's pages do not say which wins;
    the switch lets a client be tested against both readings).
    """

    plan: str = "starter"
    rate_limits: bool = True
    async_delay_seconds: float = 0.5
    seed: int | None = 0
    faults: FaultConfig = field(default_factory=FaultConfig)
    api_keys: tuple[ApiKey, ...] = field(default_factory=lambda: tuple(default_api_keys()))
    plans: dict[str, Plan] = field(default_factory=lambda: dict(PLANS))
    project_id: int = PROJECT_ID
    idempotency_ttl_seconds: float = IDEMPOTENCY_TTL_SECONDS
    max_body_bytes: int = 10 * 1024 * 1024
    numeric_user_ids_first: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.faults, dict):
            object.__setattr__(self, "faults", FaultConfig(**self.faults))
        keys = tuple(ApiKey(**k) if isinstance(k, dict) else k for k in self.api_keys)
        for k in keys:
            if isinstance(k.permissions, list):
                keys = tuple(dataclasses.replace(x, permissions=tuple(x.permissions)) for x in keys)
                break
        object.__setattr__(self, "api_keys", keys)
        plans = {name: Plan(**p) if isinstance(p, dict) else p for name, p in self.plans.items()}
        object.__setattr__(self, "plans", plans)
        if self.plan not in plans:
            raise ValueError(f"unknown plan {self.plan!r}; known: {', '.join(sorted(plans))}")
        for k in keys:
            if k.plan is not None and k.plan not in plans:
                raise ValueError(f"API key plan {k.plan!r} is not a known plan")
            if k.default_version not in SUPPORTED_VERSIONS:
                raise ValueError(f"API key default version {k.default_version!r} is not supported")
        if not keys:
            raise ValueError("at least one API key is required")
        if isinstance(self.async_delay_seconds, bool) or not self.async_delay_seconds >= 0:
            raise ValueError("async_delay_seconds must be >= 0")
        for name in ("rate_limits", "numeric_user_ids_first"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a boolean")  # noqa: TRY004 - a config value error

    @property
    def api_key(self) -> str:
        """The first read+write key (what clients should use)."""
        for k in self.api_keys:
            if k.can("write"):
                return k.key
        return self.api_keys[0].key

    def plan_for(self, key: ApiKey) -> tuple[str, Plan]:
        name = key.plan or self.plan
        return name, self.plans[name]

    def updated(self, **changes: Any) -> EmulatorConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown config setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "rate_limits": self.rate_limits,
            "async_delay_seconds": self.async_delay_seconds,
            "seed": self.seed,
            "faults": self.faults.to_dict(),
            "api_keys": [
                {
                    "key": k.key,
                    "plan": k.plan,
                    "permissions": list(k.permissions),
                    "default_version": k.default_version,
                }
                for k in self.api_keys
            ],
            "plans": {name: dataclasses.asdict(p) for name, p in self.plans.items()},
            "project_id": self.project_id,
            "idempotency_ttl_seconds": self.idempotency_ttl_seconds,
            "max_body_bytes": self.max_body_bytes,
            "numeric_user_ids_first": self.numeric_user_ids_first,
        }

    def public_dict(self) -> dict[str, Any]:
        """Like :meth:`to_dict` but with the keys masked (for the admin API and logs)."""
        data = self.to_dict()
        for k in data["api_keys"]:
            k["key"] = k["key"][:8] + "…"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmulatorConfig:
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)
