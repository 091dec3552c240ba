"""The upstream HTTP client: one pooled aiohttp session per process.

It knows bytes and headers, not JSON shapes. Transport failures become ``UpstreamError`` with
``Outcome.CONNECT`` or ``Outcome.TIMEOUT``; HTTP statuses are returned for the adapter to judge.
Error text is built from the exception class only, never from a URL or header, so nothing
secret can reach a message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator, Mapping

import aiohttp

from adapters.base import UpstreamError, UpstreamRequest
from adapters.base import Outcome

# Upper bound on connecting, separate from the request budget, so a black-holed host fails fast.
CONNECT_TIMEOUT = 10.0


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _transport_error(error: BaseException) -> UpstreamError:
    if isinstance(error, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamError(Outcome.TIMEOUT, None, "upstream timed out")
    if isinstance(error, aiohttp.ClientConnectorError):
        return UpstreamError(Outcome.CONNECT, None, "cannot connect to upstream")
    if isinstance(error, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return UpstreamError(Outcome.CONNECT, None, "upstream closed the connection")
    return UpstreamError(Outcome.CONNECT, None, f"upstream connection failed ({type(error).__name__})")


class UpstreamStream:
    """An open streaming response. Iterate ``chunks()``; always ``close()``."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise _transport_error(error) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise _transport_error(error) from None

    def close(self) -> None:
        self._response.close()


class UpstreamClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            headers={"user-agent": "coo-llm"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("UpstreamClient.start() was not awaited")
        return self._session

    async def send(self, request: UpstreamRequest, headers: Mapping[str, str], *, timeout: float) -> UpstreamResponse:
        """Send and read the whole answer within ``timeout`` seconds."""
        limits = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, CONNECT_TIMEOUT))
        try:
            async with self.session.request(
                request.method, request.url, data=request.body, headers=headers, timeout=limits
            ) as response:
                body = await response.read()
                return UpstreamResponse(response.status, response.headers, body)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise _transport_error(error) from None

    async def open_stream(self, request: UpstreamRequest, headers: Mapping[str, str], *, timeout: float) -> UpstreamStream:
        """Send and return once the status line arrives; each later read may wait ``timeout``."""
        limits = aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, CONNECT_TIMEOUT), sock_read=timeout)
        try:
            response = await self.session.request(
                request.method, request.url, data=request.body, headers=headers, timeout=limits
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise _transport_error(error) from None
        return UpstreamStream(response)
