"""Contact lookups, and "are these contacts visible in Spotzee yet?": one decision shared by the sensor's
poke and the trigger. The hook's reads use :func:`fetch_user` from here too (this module imports the
transport, never the hook, so both can import it without a cycle)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from airflow_provider_spotzee.config import ClientConfig
from airflow_provider_spotzee.exceptions import SpotzeeConfigError
from airflow_provider_spotzee.models import Contact
from airflow_provider_spotzee.transport import SpotzeeTransport, api_error

LOOKUP_CONCURRENCY = 8


def parse_since(value: str | dt.datetime | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def is_visible(contact: Contact | None, since: dt.datetime | None) -> bool:
    """Present, and (when ``since`` is given) updated at or after it, so an update is seen, not only a create."""
    if contact is None:
        return False
    if since is None:
        return True
    return contact.updated_at is not None and contact.updated_at >= since


def normalise_ids(external_ids: Iterable[object] | str | None) -> list[str]:
    if external_ids is None:
        return []
    if isinstance(external_ids, str):
        external_ids = [external_ids]
    seen: dict[str, None] = {}
    for value in external_ids:
        if value is not None and str(value).strip():
            seen[str(value).strip()] = None
    return list(seen)


async def missing_contacts(config: ClientConfig, external_ids: Sequence[str], since: dt.datetime | None) -> list[str]:
    """The ids (in input order) not yet visible. Lookups are paced by the read budget and run a few at a time.

    Raises :class:`~airflow_provider_spotzee.exceptions.SpotzeeAuthError` on 401/403 and
    :class:`~airflow_provider_spotzee.exceptions.SpotzeeRetriesExhausted` when Spotzee keeps failing
    (callers treat that as "try again later", never as "missing").
    """
    gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)
    async with SpotzeeTransport(config) as transport:

        async def check(external_id: str) -> bool:
            async with gate:
                return is_visible(await fetch_user(transport, external_id), since)

        visible = await asyncio.gather(*(check(i) for i in external_ids))
    return [i for i, ok in zip(external_ids, visible) if not ok]


async def fetch_user(transport: SpotzeeTransport, user_id: str | int) -> Contact | None:
    """``GET /users/{userId}`` on an open transport; ``None`` on 404. Exhausted retries raise
    :class:`~airflow_provider_spotzee.exceptions.SpotzeeRetriesExhausted`."""
    path = f"/users/{user_path(user_id)}"
    response = await transport.request("GET", path)
    if response.status == 404:
        return None
    if response.status >= 300:
        raise api_error(response, f"Spotzee could not look up contact {user_id!r}")
    return Contact.model_validate(response.json())


def user_path(user_id: str | int) -> str:
    text = str(user_id).strip()
    if not text:
        raise SpotzeeConfigError("user_id must not be empty")
    return quote(text, safe="")
