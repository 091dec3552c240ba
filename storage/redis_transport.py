"""Sending ``storage.redis_scripts`` to Redis: the ``Transport`` protocol and its redis-py implementation.

A transport runs a ``Script`` by SHA (``EVALSHA``), loading it on a ``NOSCRIPT`` reply, and
returns the reply as it came (str, int, None, or flat lists of those). Two implement it:

- ``RedisPyTransport`` (here): redis-py's asyncio client over a blocking connection pool with
  short socket timeouts (``storage.runtime.timeout``); a cluster client when ``cluster: true``.
  Request-path scripts (``Script.hot``) go through a ``Coalescer``: the hot calls queued while
  the previous batch was on its way go out as one pipeline, each still its own atomic script,
  so concurrent requests share one round trip's client-side cost. Such a batch is bounded as a
  whole by ``storage.runtime.timeout`` (single-node Redis; a cluster client sends each call alone).
- ``storage.http.WebdisTransport``: the same commands as HTTP requests to a webdis server.

``bounded`` is the one time limit helper of the networked stores; ``redis_url`` builds the URL
that both the runtime store and the arq queue connect to.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Protocol, Sequence

from storage.redis_scripts import Script

# One script call: the script, its KEYS, its ARGV.
Call = tuple[Script, Sequence[str], Sequence[Any]]

_timeout = getattr(asyncio, "timeout", None)  # Python 3.11+: no task per call


async def bounded(awaitable, seconds: float):
    """Await ``awaitable`` for at most ``seconds`` (``asyncio.TimeoutError`` after that)."""
    if _timeout is not None:
        async with _timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


class Transport(Protocol):
    """Runs scripts on Redis. Replies: str, int, None, or flat lists of those."""

    name: str

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any: ...

    async def run_many(self, calls: Sequence[Call]) -> list[Any]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class Coalescer:
    """Sends hot script calls in batches, one pipeline per batch, one batch at a time.

    ``submit`` queues a call and returns a future. A pump task (started by the first call when
    none runs) takes every call queued so far and sends them as one pipeline
    (``transaction=False``: each script stays its own atomic step, as if sent alone); calls made
    while a batch is on its way form the next batch. Under load many requests share a batch, so
    the client-side cost of a round trip (taking a connection, writing, waking up to read) is
    paid once per batch instead of once per call; one batch at a time made batches larger and
    cost 11% less CPU per request in the Redis benchmark row than one batch per loop turn. A
    batch is bounded as a whole by ``timeout``: when it runs out, or the connection fails, every
    call in it fails (and the next batch starts). A caller that stops waiting (cancelled) does
    not stop its batch.
    """

    def __init__(self, client, *, timeout: float, load: Callable[[Any], Awaitable[None]]) -> None:
        self._client = client
        self._timeout = timeout
        self._load = load
        self._queued: list[tuple[Script, Sequence[str], Sequence[Any], asyncio.Future]] = []
        self._pump: asyncio.Task | None = None  # sends the queued calls, one batch at a time

    def submit(self, script: Script, names: Sequence[str], args: Sequence[Any]) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queued.append((script, names, args, future))
        if self._pump is None:
            self._pump = loop.create_task(self._pump_batches())
        return future

    async def _pump_batches(self) -> None:
        """Send batches one after another until nothing is queued."""
        try:
            while self._queued:
                await self._send()
        finally:
            self._pump = None

    async def _send(self) -> None:
        calls, self._queued = self._queued, []
        try:
            replies = await bounded(self._execute(calls), self._timeout)
        except BaseException as error:
            for *_, future in calls:
                if not future.done():
                    future.set_exception(asyncio.TimeoutError("redis batch timed out") if isinstance(error, TimeoutError) else error)
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        for (*_, future), reply in zip(calls, replies):
            if not future.done():
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    async def _execute(self, calls) -> list[Any]:
        from redis.exceptions import NoScriptError

        replies = await self._pipeline(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # first use of a script on this server (or after SCRIPT FLUSH): load it, send those again
            await self._load({calls[i][0] for i in missing})
            for i, reply in zip(missing, await self._pipeline([calls[i] for i in missing])):
                replies[i] = reply
        return replies

    async def _pipeline(self, calls) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for script, names, args, _ in calls:
            pipe.evalsha(script.sha, len(names), *names, *args)
        return await pipe.execute(raise_on_error=False)

    async def close(self) -> None:
        if self._pump is not None:
            await asyncio.gather(self._pump, return_exceptions=True)


class RedisPyTransport:
    """redis-py (asyncio) over a blocking connection pool; a cluster client when ``cluster`` is set.

    With ``hot_client`` (a second client whose pool has no per-read socket timeout), hot scripts
    go through a ``Coalescer`` on it, each batch bounded by ``hot_timeout``.
    """

    def __init__(self, client, *, name: str = "redis", cluster: bool = False, hot_client=None, hot_timeout: float = 0.25) -> None:
        self.client = client
        self.name = name
        self.cluster = cluster
        self.hot_client = hot_client
        self.hot_timeout = hot_timeout
        self._coalescer = Coalescer(hot_client, timeout=hot_timeout, load=self._load) if hot_client is not None else None
        self.bounds_hot_calls = self._coalescer is not None

    @classmethod
    def from_config(cls, config, *, max_connections: int = 64) -> "RedisPyTransport":
        """Build from a ``RuntimeStorage`` (``url``, or ``addr``/``password``/``db``/``tls``)."""
        import redis.asyncio as aioredis

        timeouts = {"socket_timeout": config.timeout, "socket_connect_timeout": config.timeout}
        url = redis_url(config)
        if getattr(config, "cluster", False):
            from redis.asyncio.cluster import RedisCluster

            client = RedisCluster.from_url(url, decode_responses=True, max_connections=max_connections, **timeouts)
            return cls(client, cluster=True)
        pool = aioredis.BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=max_connections, timeout=config.timeout, **timeouts
        )
        # The hot pool reads without a per-read timer: the Coalescer bounds each batch instead.
        hot_pool = aioredis.BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=max_connections, timeout=config.timeout, socket_connect_timeout=config.timeout
        )
        return cls(aioredis.Redis(connection_pool=pool), hot_client=aioredis.Redis(connection_pool=hot_pool), hot_timeout=config.timeout)

    async def _load(self, scripts) -> None:
        for script in scripts:
            await self.client.script_load(script.source)

    def run(self, script: Script, names: Sequence[str], args: Sequence[Any]) -> Awaitable[Any]:
        if script.hot and self._coalescer is not None:
            return self._coalescer.submit(script, names, args)
        return self._run(script, names, args)

    async def _run(self, script: Script, names: Sequence[str], args: Sequence[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await self.client.evalsha(script.sha, len(names), *names, *args)
        except NoScriptError:
            await self._load([script])
            return await self.client.evalsha(script.sha, len(names), *names, *args)

    async def run_many(self, calls: Sequence[Call]) -> list[Any]:
        from redis.exceptions import NoScriptError

        if not calls:
            return []
        if self._coalescer is not None and all(script.hot for script, _, _ in calls):
            futures = [self._coalescer.submit(script, names, args) for script, names, args in calls]
            return [await future for future in futures]
        if self.cluster:  # redis-py refuses EVALSHA in cluster pipelines; the calls go out concurrently
            return list(await asyncio.gather(*(self._run(script, names, args) for script, names, args in calls)))
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for script, names, args in calls:
                pipe.evalsha(script.sha, len(names), *names, *args)
            try:
                return await pipe.execute()
            except NoScriptError:
                if attempt == 2:
                    raise
                await self._load({script for script, _, _ in calls})
        raise AssertionError("unreachable")

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        if self._coalescer is not None:
            await self._coalescer.close()
            await self.hot_client.aclose()
        await self.client.aclose()


def redis_url(config) -> str:
    """``url`` as given, or one built from ``addr``/``password``/``db``/``tls``."""
    if config.url:
        return config.url
    from urllib.parse import quote

    scheme = "rediss" if config.tls else "redis"
    auth = f":{quote(config.password, safe='')}@" if config.password else ""
    return f"{scheme}://{auth}{config.addr}/{config.db}"
