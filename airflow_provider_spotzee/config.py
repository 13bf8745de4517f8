"""From an Airflow connection to a :class:`ClientConfig`: the one place connection fields are read.

The sync hook, the async hook (triggers) and the emulator helpers all go through
:func:`client_config_from_connection`, so they agree on every rule below.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow_provider_spotzee.api_facts import CURRENT_API_VERSION, PLANS, is_api_version
from airflow_provider_spotzee.exceptions import SpotzeeConfigError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://apix.spotzee.com/api/client"
DEFAULT_PATH = "/api/client"
CLIENT_TYPE = "sdk-python"

Plan = Literal["starter", "professional", "enterprise"]
Transport = Literal["httpx", "asyncio"]
TRANSPORTS = ("httpx", "asyncio")



#: Extras a spotzee connection understands. Anything else is ignored with a warning (never sent).
KNOWN_EXTRAS = frozenset(
    {"api_version", "plan", "requests_per_second", "timeout", "max_in_flight", "max_retries", "max_wait",
     "transport"}
)


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    api_key: str = field(repr=False)
    api_version: str | None = CURRENT_API_VERSION
    plan: Plan = "starter"
    requests_per_second: float = PLANS["starter"].write_rps
    read_requests_per_second: float = PLANS["starter"].read_rps
    timeout: float = 30.0
    max_in_flight: int = 16
    max_retries: int = 8
    max_wait: float = 60.0
    #: This worker's fair part of the key's write budget when it shares the key with others that are
    #: busy too (``1/N`` for N partitions); the pacer never takes less while others are present. ``None``:
    #: unknown, take the share of the key's use this worker already has.
    fair_share: float | None = None
    #: ``httpx`` (the default) or ``asyncio``: the provider's own HTTP/1.1 client on asyncio streams, about
    #: half the client CPU per request (docs/performance.md); a proxy in the environment keeps httpx.
    #: ``None``: the ``SPOTZEE_TRANSPORT`` environment variable decides, else httpx.
    transport: Transport | None = None


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_base_url(host: str | None, port: int | None = None, schema: str | None = None) -> str:
    """Connection host → base URL.

    - empty: the production URL;
    - a full URL (``http://127.0.0.1:8089/api/client``): taken as is;
    - a bare host name: ``https://<host>[:port]/api/client`` (``http://`` for loopback hosts, where the
      emulator runs); ``schema``, when set, replaces the path.

    HTTPS is required for every host that is not loopback.
    """
    host = (host or "").strip()
    if not host:
        url = DEFAULT_BASE_URL
    elif "://" in host:
        url = host
    else:
        scheme = "http" if _is_loopback(host) else "https"
        netloc = f"{host}:{port}" if port else host
        path = "/" + schema.strip("/") if schema else DEFAULT_PATH
        url = f"{scheme}://{netloc}{path}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpotzeeConfigError("Spotzee base URL must be an http(s) URL such as " + DEFAULT_BASE_URL)
    if parts.username or parts.password:
        raise SpotzeeConfigError("Spotzee base URL must not carry credentials; put the API key in the password")
    if parts.scheme != "https" and not _is_loopback(parts.hostname):
        raise SpotzeeConfigError(
            f"Spotzee base URL for host {parts.hostname!r} must use https; plain http is only allowed "
            "for loopback hosts (the local emulator)"
        )
    return url.rstrip("/")


def check_api_key(api_key: str | None) -> str:
    key = (api_key or "").strip()
    if not key:
        raise SpotzeeConfigError("The Spotzee connection has no API key: put the sk_… project key in the password field")
    if not key.startswith("sk_"):
        raise SpotzeeConfigError(
            "The Spotzee API key in the connection's password does not start with 'sk_': use a secret "
            "project key (sk_…), not a publishable key or another credential"
        )
    return key


def _number(extras: dict[str, Any], name: str, kind: type, minimum: float, default: Any) -> Any:
    """An extra as ``kind``, at least ``minimum``; ``default`` when it is absent or empty."""
    raw = extras.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise SpotzeeConfigError(f"Spotzee connection extra {name!r} must be a number") from None
    if value < minimum:
        raise SpotzeeConfigError(f"Spotzee connection extra {name!r} must be at least {minimum}")
    return value


def _api_version(value: Any) -> str:
    if value in (None, ""):
        return CURRENT_API_VERSION
    text = str(value).strip()
    if not is_api_version(text):
        raise SpotzeeConfigError(f"Spotzee connection extra 'api_version' must be a date such as {CURRENT_API_VERSION}")
    return text


def _transport(value: Any) -> Transport | None:
    if value in (None, ""):
        return None
    if value not in TRANSPORTS:
        raise SpotzeeConfigError(f"Spotzee connection extra 'transport' must be one of {list(TRANSPORTS)}")
    return value


def client_config_from_connection(conn: Any, **overrides: Any) -> ClientConfig:
    """Build a :class:`ClientConfig` from an Airflow ``Connection``. ``overrides`` (non-None) win."""
    extras = conn.extra_dejson if hasattr(conn, "extra_dejson") else json.loads(conn.extra or "{}")
    unknown = sorted(set(extras) - KNOWN_EXTRAS)
    if unknown:
        log.warning("Ignoring unknown Spotzee connection extras %s (known: %s)", unknown, sorted(KNOWN_EXTRAS))
    plan = str(extras.get("plan") or "starter").lower()
    if plan not in PLANS:
        raise SpotzeeConfigError(f"Spotzee connection extra 'plan' must be one of {sorted(PLANS)}")
    budget = PLANS[plan]
    settings: dict[str, Any] = {
        "base_url": resolve_base_url(conn.host, conn.port, conn.schema),
        "api_key": check_api_key(conn.password),
        "api_version": _api_version(extras.get("api_version")),
        "plan": plan,
        "requests_per_second": _number(extras, "requests_per_second", float, 0.1, budget.write_rps),
        "read_requests_per_second": budget.read_rps,
        "timeout": _number(extras, "timeout", float, 0.1, 30.0),
        "max_in_flight": _number(extras, "max_in_flight", int, 1, 16),
        "max_retries": _number(extras, "max_retries", int, 0, 8),
        "max_wait": _number(extras, "max_wait", float, 0.1, 60.0),
        "transport": _transport(extras.get("transport")),
    }
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return ClientConfig(**settings)
