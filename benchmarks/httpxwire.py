"""Issue 19's "a thin transport of its own" way of driving httpx, measured and not shipped: the hook's
``httpx.AsyncClient``s keep their API, but send through an ``httpx.AsyncBaseTransport`` on the provider's
own HTTP/1.1 client (``transport._Wire``) instead of httpcore. It shows what httpx's client layer costs
on its own, next to the default (httpx + httpcore) and the opt-in ``transport="asyncio"`` (the wire without
httpx). Plain HTTP on loopback only: enough for the emulator, not a general transport.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from airflow_provider_spotzee import transport as spotzee_transport


class WireTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over one ``_Wire`` (its own keep-alive connections)."""

    def __init__(self, wire: spotzee_transport._Wire) -> None:
        self.wire = wire

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers.raw
                   if name.lower() not in (b"host", b"content-length")}
        status, answer, content = await self.wire.request(
            request.method, request.url.raw_path.decode("ascii"), request.content or None, headers, None)
        return httpx.Response(status, headers=answer, content=content, request=request)

    async def aclose(self) -> None:
        await self.wire.aclose()


@contextlib.contextmanager
def httpx_on_own_wire() -> Iterator[None]:
    """While open, every hook's httpx clients send through :class:`WireTransport`."""
    cls = spotzee_transport.SpotzeeTransport
    original = cls._new_client

    def new_client(self: Any) -> httpx.AsyncClient:
        config = self.config
        url = httpx.URL(config.base_url)
        wire = spotzee_transport._Wire(f"{url.scheme}://{url.host}:{url.port}", {}, config.timeout,
                                       min(10.0, config.timeout), self._tls_context)
        client = httpx.AsyncClient(base_url=config.base_url, headers=self._headers, transport=WireTransport(wire),
                                   timeout=httpx.Timeout(config.timeout, connect=min(10.0, config.timeout)),
                                   follow_redirects=False)
        self._clients.append(client)
        return client

    cls._new_client = new_client  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls._new_client = original  # type: ignore[method-assign]
