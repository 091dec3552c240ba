"""Remote runtime state over HTTP: the Redis scripts of ``storage.redis_scripts``, sent to a webdis server.

webdis (a small HTTP front for Redis) runs ``POST /`` with a body ``COMMAND/arg1/arg2...`` and
answers ``{"COMMAND": reply}``. Arguments are percent-encoded, with ``.`` encoded too because
webdis reads a dot as a format suffix. A Redis error comes back as ``[false, "ERR ..."]``, and
webdis answers 503 when it cannot reach Redis. webdis flattens nested replies badly, which is
why every script in ``storage.redis_scripts`` returns flat arrays.

The logic is ``RedisStore``'s; only the transport differs, so the contract holds unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence
from urllib.parse import quote

import aiohttp
import orjson

from storage.base import StoreUnavailable
from storage.redis import RedisStore
from storage.redis_scripts import Script
from storage.redis_transport import Call


class ScriptMissing(Exception):
    pass


class WebdisError(Exception):
    """Redis answered an error through webdis (the message is Redis's, never a credential)."""


def encode_command(*args: Any) -> bytes:
    return "/".join(quote(str(arg), safe="").replace(".", "%2E") for arg in args).encode()


class WebdisTransport:
    name = "http"

    def __init__(self, url: str, *, timeout: float, max_connections: int = 64) -> None:
        self.url = url.rstrip("/") + "/"
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def command(self, *args: Any) -> Any:
        try:
            async with self._client().post(self.url, data=encode_command(*args)) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise StoreUnavailable(f"webdis unreachable ({type(error).__name__})") from None
        if status != 200:
            raise StoreUnavailable(f"webdis answered HTTP {status}")
        try:
            (reply,) = orjson.loads(raw).values()
        except (orjson.JSONDecodeError, ValueError, AttributeError):
            raise StoreUnavailable("webdis sent a reply that is not a one-command JSON object") from None
        if isinstance(reply, list) and reply and reply[0] is False:
            message = str(reply[1]) if len(reply) > 1 else "error"
            if message.startswith("NOSCRIPT"):
                raise ScriptMissing(message)
            raise WebdisError(message)
        return reply

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self.command("EVALSHA", script.sha, len(keys), *keys, *args)
        except ScriptMissing:
            await self.command("SCRIPT", "LOAD", script.source)
            return await self.command("EVALSHA", script.sha, len(keys), *keys, *args)

    async def run_many(self, calls: Sequence[Call]) -> list[Any]:
        return list(await asyncio.gather(*(self.run(script, keys, args) for script, keys, args in calls)))

    async def ping(self) -> bool:
        reply = await self.command("PING")
        return reply == [True, "PONG"] or reply == "PONG"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def open_http_store(config) -> RedisStore:
    """A ``RedisStore`` speaking to the webdis endpoint ``config.url``."""
    return RedisStore(WebdisTransport(config.url, timeout=config.timeout))
