"""Usage events are counted once even when Redis ran an append but its reply never came back (a
timeout, or Redis shutting down right after the write): the batch is buffered, sent again with
the same number once Redis is reachable, and Redis skips it. A loopback proxy in front of a real
redis-server loses the replies on demand."""

from __future__ import annotations

import asyncio

from app.config import RuntimeStorage
from storage import UsageEvent, open_store
from storage.redis import RedisStore
from storage.redis_transport import RedisPyTransport

T0 = 1_800_000_000.0


class ReplyDroppingProxy:
    """Forwards every byte to Redis; while ``dropping``, Redis's answers are thrown away."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.dropping = False
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def _serve(self, client_reader, client_writer) -> None:
        redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", self.redis_port)

        async def pump(reader, writer, *, replies: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if replies and self.dropping:
                        continue
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pump(client_reader, redis_writer, replies=False), pump(redis_reader, client_writer, replies=True))

    async def close(self) -> None:
        self.server.close()


def events(tag: str, count: int) -> list[UsageEvent]:
    return [UsageEvent(at=T0, client="c", provider="p", key="p#1", model="m", prompt_tokens=1, request_id=f"{tag}-{n}") for n in range(count)]


def test_a_batch_whose_reply_was_lost_is_not_counted_twice(redis_server):
    redis_server.flush()

    async def scenario():
        proxy = ReplyDroppingProxy(redis_server.port)
        url = await proxy.start()
        store = open_store(RuntimeStorage(type="redis", url=url, timeout=0.3))
        store.probe_interval = 0.1
        direct = RedisStore(RedisPyTransport.from_config(RuntimeStorage(type="redis", url=redis_server.url, timeout=5)))
        try:
            await store.append_events(events("a", 10))
            proxy.dropping = True
            await store.append_events(events("b", 5))  # Redis appends them; the reply is lost
            assert store.degraded and store.pending_events == 5
            landed_meanwhile = [e.request_id for _, e in await direct.read_events("", limit=100)]
            await store.append_events(events("c", 3))  # while degraded: buffered behind "b"
            proxy.dropping = False
            for _ in range(100):
                await asyncio.sleep(0.05)
                if not store.degraded:
                    break
            stored = [e.request_id for _, e in await direct.read_events("", limit=100)]
            return landed_meanwhile, stored, store.degraded, store.pending_events
        finally:
            await store.close()
            await direct.close()
            await proxy.close()

    landed_meanwhile, stored, degraded, pending = asyncio.run(scenario())
    assert landed_meanwhile[-5:] == [f"b-{n}" for n in range(5)]  # the lost-reply batch did land
    assert not degraded and pending == 0
    assert stored == [f"a-{n}" for n in range(10)] + [f"b-{n}" for n in range(5)] + [f"c-{n}" for n in range(3)]


def test_a_repeated_batch_number_is_skipped_and_a_new_one_appended(redis_server):
    redis_server.flush()

    async def scenario():
        store = RedisStore(RedisPyTransport.from_config(RuntimeStorage(type="redis", url=redis_server.url, timeout=5)))
        try:
            await store.append_events(events("one", 3), writer="w1", batch=1)
            await store.append_events(events("one", 3), writer="w1", batch=1)  # sent again
            await store.append_events(events("other", 2), writer="w2", batch=1)  # another writer's 1
            await store.append_events(events("two", 2), writer="w1", batch=2)
            await store.append_events(events("plain", 1))  # no writer: appended as given
            await store.append_events(events("plain", 1))
            return [e.request_id for _, e in await store.read_events("", limit=100)]
        finally:
            await store.close()

    assert asyncio.run(scenario()) == ["one-0", "one-1", "one-2", "other-0", "other-1", "two-0", "two-1", "plain-0", "plain-0"]
