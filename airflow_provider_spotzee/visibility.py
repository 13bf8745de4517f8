"""Are these contacts visible in Spotzee yet? One decision shared by the sensor's poke and the trigger."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence

from airflow_provider_spotzee.config import ClientConfig
from airflow_provider_spotzee.models import Contact
from airflow_provider_spotzee.transport import SpotzeeTransport

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
    :class:`~airflow_provider_spotzee.transport.RetryableError` when Spotzee keeps failing (callers treat
    that as "try again later", never as "missing").
    """
    from airflow_provider_spotzee.hooks.spotzee import fetch_user

    gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)
    async with SpotzeeTransport(config) as transport:

        async def check(external_id: str) -> bool:
            async with gate:
                return is_visible(await fetch_user(transport, external_id), since)

        visible = await asyncio.gather(*(check(i) for i in external_ids))
    return [i for i, ok in zip(external_ids, visible) if not ok]
