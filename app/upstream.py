"""The upstream HTTP client: one pooled aiohttp session per process.

It knows bytes and headers, not JSON shapes. Transport failures become ``UpstreamError`` with
``Outcome.CONNECT`` or ``Outcome.TIMEOUT``; HTTP statuses are returned for the adapter to judge.
Error text is built from the exception class only, never from a URL or header, so nothing
secret can reach a message.

No answer is read past ``max_response_bytes`` (``server.max_upstream_response_mb``): a larger
body, error body or stream fails the attempt (``Outcome.SERVER_ERROR``, a message naming the
limit), so one upstream cannot make a process hold hundreds of megabytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator, Mapping

import aiohttp

from adapters.base import Outcome, UpstreamError, UpstreamRequest

# Upper bound on connecting, separate from the request budget, so a black-holed host fails fast.
CONNECT_TIMEOUT = 10.0


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


def too_large(limit: int) -> UpstreamError:
    return UpstreamError(
        Outcome.SERVER_ERROR, None, f"the upstream's answer is larger than {limit // (1 << 20)} MB (server.max_upstream_response_mb); it was not read"
    )


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ``too_large`` as soon as it (or its announced length) passes ``limit``."""
    length = response.content_length
    if length is not None:  # announced: read it at once (the common case), or refuse before reading
        if length > limit:
            raise too_large(limit)
        return await response.read()
    pieces: list[bytes] = []
    size = 0
    async for piece in response.content.iter_any():
        size += len(piece)
        if size > limit:
            raise too_large(limit)
        pieces.append(piece)
    return b"".join(pieces)


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

    def __init__(self, response: aiohttp.ClientResponse, limit: int) -> None:
        self._response = response
        self._limit = limit
        self.status = response.status
        self.headers = response.headers

    async def read(self) -> bytes:
        try:
            return await read_capped(self._response, self._limit)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise _transport_error(error) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        size = 0
        try:
            async for chunk in self._response.content.iter_any():
                size += len(chunk)
                if size > self._limit:
                    raise too_large(self._limit)
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise _transport_error(error) from None

    def close(self) -> None:
        self._response.close()


class UpstreamClient:
    def __init__(self, *, max_response_bytes: int = 32 << 20) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.max_response_bytes = max_response_bytes

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
                body = await read_capped(response, self.max_response_bytes)
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
        return UpstreamStream(response, self.max_response_bytes)
