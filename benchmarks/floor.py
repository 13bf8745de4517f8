"""Issue 19's floor: the least CPU per item any Python client on asyncio pays to send already-validated
items and read their answers, measured in the same run as the hook.

It is a bare HTTP/1.1 loop on ``asyncio`` streams, 16 requests in flight like the hook: the request bodies
are made before the clock starts (validation, serialisation and keys are not counted), and per request
it only writes the head and the body, reads the answer's head and its ``Content-Length`` bytes, and, for
the endpoints that answer per item, decodes the answers as the send path does (``answers.read_item_answers``,
checked against the items). No pacer, no retries, no timeouts, no bookkeeping: a lower bound, not a
client. Loopback HTTP only (the emulator).

What the send path adds above validating alone can then be read against it: a send of unique users cannot
cost less than validating them plus this floor.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_spotzee.answers import read_item_answers
from airflow_provider_spotzee.batching import canonical_body
from airflow_provider_spotzee.models import SendResult
from airflow_provider_spotzee.send import Endpoint, prepared_batches

IN_FLIGHT = 16


def request_bodies(endpoint: Endpoint, records: list[dict[str, Any]]) -> list[tuple[bytes, list[str | None]]]:
    """The request bodies the send path makes of ``records`` (all valid; its own batches), with each item's
    external_id."""
    result = SendResult.start(endpoint.name)
    bodies = [(canonical_body([item.body for item in batch]), [item.external_id for item in batch])
              for batch in prepared_batches(endpoint, records, result)]
    if result.invalid:
        raise ValueError("the floor is measured on valid records only")
    return bodies


async def send_bare(base_url: str, api_key: str, endpoint: Endpoint, bodies: list[tuple[bytes, list[str | None]]],
                    namespace: str) -> int:
    """Send every body over ``IN_FLIGHT`` keep-alive connections; returns the items answered 2xx."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    fixed = (f"{endpoint.method} {url.path.rstrip('/')}{endpoint.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
             f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\nAccept: application/json\r\n")
    queue = list(reversed(bodies))
    sent = [0]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port, limit=2**20)
        try:
            while queue:
                number = len(queue)
                body, external_ids = queue.pop()
                head = f"{fixed}Idempotency-Key: {namespace}-{number}\r\nContent-Length: {len(body)}\r\n\r\n"
                writer.write(head.encode("latin-1") + body)
                await writer.drain()
                answer_head = await reader.readuntil(b"\r\n\r\n")
                at = answer_head.lower().find(b"\r\ncontent-length:") + 17  # (none: a 204, no body)
                length = int(answer_head[at:answer_head.index(b"\r\n", at)]) if at >= 17 else 0
                answer = await reader.readexactly(length)
                if not answer_head.startswith(b"HTTP/1.1 2"):
                    raise RuntimeError(f"floor: {answer_head[:40]!r}")
                if endpoint.per_item_results:
                    read_item_answers(answer, external_ids)
                sent[0] += len(external_ids)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return sent[0]


def floor_send(base_url: str, api_key: str, endpoint: Endpoint,
               bodies: list[tuple[bytes, list[str | None]]]) -> int:
    """:func:`send_bare` on a fresh event loop (as ``hook.upsert_users`` runs one)."""
    return asyncio.run(send_bare(base_url, api_key, endpoint, bodies, f"bench-floor-{time.time_ns()}"))
