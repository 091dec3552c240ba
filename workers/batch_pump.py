"""Running batches: one ``BatchPump`` per ``coo-llm worker`` process (per web process without Redis).

Every ``POLL`` seconds a pump reads the unfinished batches (``app.batches.ACTIVE``) and keeps one
``run_batch`` going per batch in its process; every pump of every process works on every batch,
so the lines of one batch spread over all of them. ``run_batch``:

1. ``validating``: validate it (``workers.batch_finish.validate``; one pump wins the claim).
2. ``in_progress``: once past ``expires_at``, raise its ``expired`` flag. Take lines and run them
   (``workers.batch_lines.LineRunner``): hand out line numbers from the shared cursor, claim each,
   run it through the service. Then settle up: run the lines nobody ran (an orphan taken but never
   claimed, a line whose pump died before it sent anything), give a line whose pump died while it
   was being sent its ``interrupted`` error line (never run twice).
3. When every line has its result, or the batch was stopped (cancelled, expired) and no line is
   still being sent: finalize it (``workers.batch_finish.finalize``; one pump wins the claim).

Liveness. A pump's heartbeat is a document in ``batch_pumps`` that expires ``HEARTBEAT_TTL``
after its last refresh (every ``HEARTBEAT_EVERY``); a pump whose heartbeat is gone is dead, and
others take over its lines. A pump starts sending a line only while its own last refresh is less
than ``FRESH_FOR`` old (well inside the TTL), so by the time others see it dead it sends nothing
new. A pump that was not fresh for a while takes a new identity: what it held under the old one
belongs to a dead pump, and is taken over like any other (by itself too).

Why a pump and not arq jobs: arq holds a job's in-progress lock for the longest job timeout plus
10 s, for every job; a job lasting as long as a batch would make every job of a dead worker wait
that long to be delivered again. A pump also lets the other workers take over a dead one's lines
within ``HEARTBEAT_TTL``. Progress lives in the store, so a pump keeps nothing that matters.

``close()`` stops taking lines, waits up to ``grace`` seconds for the lines being sent, then
cancels the rest and deletes its heartbeat, so others take over at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from loguru import logger

from app.batch_input import RequestLine, request_lines
from app.batches import ACTIVE, BATCHES, PUMPS, RUNNING
from app.files import FileStore
from app.errors import NotFound
from workers.batch_finish import finalize, validate
from workers.batch_lines import LineRunner

POLL = 1.0
HEARTBEAT_EVERY = 2.0
HEARTBEAT_TTL = 15.0
FRESH_FOR = 5.0
RECHECK = 5.0  # seconds between looks at a batch whose last lines other pumps are running
SWEEP_EVERY = 60.0  # expired files


class BatchPump:
    def __init__(self, context, *, poll: float = POLL) -> None:
        self.context = context
        self.store = context.store
        self.files = FileStore(context.settings, context.store)
        self.gate = asyncio.Semaphore(context.settings.batches.concurrency)  # lines in flight in this process
        self.pump_id = self._new_id()
        self.poll = poll
        self.stopping = False
        self._halt = asyncio.Event()  # set by close(): lines waiting for a key stop waiting
        self.running: set[tuple[str, int]] = set()  # (batch id, line) whose task is alive here
        self._fresh_at = float("-inf")  # time.monotonic() of the last heartbeat refresh that succeeded
        self._runs: dict[str, asyncio.Task] = {}
        self._rest_until: dict[str, float] = {}
        self._inputs: dict[str, list[RequestLine]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._swept = 0.0
        self._complained = False

    @property
    def settings(self):
        return self.context.settings  # read each time: a config reload swaps it (``app.lifecycle``)

    @property
    def service(self):
        return self.context.service

    def _new_id(self) -> str:
        return f"{self.context.worker_id}:{uuid.uuid4().hex[:8]}"

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self._beat_once()
        for loop in (self._heartbeat(), self._poll()):
            task = asyncio.get_running_loop().create_task(loop)
            self._tasks.add(task)

    async def close(self, *, grace: float = 10.0) -> None:
        self.stopping = True
        self._halt.set()
        runs = [t for t in self._runs.values() if not t.done()]
        if runs:
            await asyncio.wait(runs, timeout=grace)
        for task in [*self._tasks, *runs]:
            task.cancel()
        await asyncio.gather(*self._tasks, *runs, return_exceptions=True)
        try:
            await self.store.doc_delete(PUMPS, self.pump_id)  # others may take over at once
        except Exception:
            pass

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the pump is closing."""
        try:
            await asyncio.wait_for(self._halt.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    # ----------------------------------------------------------------- liveness

    def fresh(self) -> bool:
        return time.monotonic() - self._fresh_at < FRESH_FOR

    async def _beat_once(self) -> None:
        started = time.monotonic()
        try:
            await self.store.doc_put(PUMPS, self.pump_id, {"worker": self.context.worker_id, "at": time.time()}, ttl=HEARTBEAT_TTL, now=time.time())
        except Exception as error:
            if not self._complained:
                logger.warning("batch pump heartbeat not stored; no batch line starts until it is", error=repr(error))
                self._complained = True
            return
        if self._fresh_at != float("-inf") and started - self._fresh_at >= FRESH_FOR:
            # Others may have taken this pump for dead: what it held is theirs to take over now.
            self.pump_id = self._new_id()
            logger.warning("batch pump was out of touch with the store; continuing under a new identity", pump=self.pump_id)
            return await self._beat_once()
        self._fresh_at = started
        self._complained = False

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            await self._beat_once()

    async def alive(self, pump_id: str) -> bool:
        if pump_id == self.pump_id:
            return self.fresh()
        return await self.store.doc_get(PUMPS, pump_id, now=time.time()) is not None

    async def pumps(self) -> int:
        return len(await self.store.doc_list(PUMPS, now=time.time()))

    # ----------------------------------------------------------------- polling

    async def _poll(self) -> None:
        while not self.stopping:
            try:
                await self.tick()
            except Exception as error:  # the store is away: try again next time
                logger.opt(exception=error).debug("batch pump tick failed")
            await asyncio.sleep(self.poll)

    async def tick(self) -> None:
        """Start a run for every unfinished batch that has none here; sweep expired files now and then."""
        now = time.time()
        active = {doc["id"] for doc in await self.store.doc_list(ACTIVE, now=now)}
        for batch_id in active:
            run = self._runs.get(batch_id)
            if (run is None or run.done()) and time.monotonic() >= self._rest_until.get(batch_id, 0.0):
                self._runs[batch_id] = asyncio.get_running_loop().create_task(self._run(batch_id))
        for batch_id in [b for b, run in self._runs.items() if b not in active and run.done()]:
            self._runs.pop(batch_id, None)
            self._inputs.pop(batch_id, None)
            self._rest_until.pop(batch_id, None)
        if now - self._swept >= SWEEP_EVERY:
            self._swept = now
            await self.files.sweep(now=now)

    async def _run(self, batch_id: str) -> None:
        try:
            await run_batch(self, batch_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.opt(exception=error).warning("batch run stopped; the next poll resumes it", batch_id=batch_id)
            self.rest(batch_id, RECHECK)

    def rest(self, batch_id: str, seconds: float) -> None:
        """Start no new run for ``batch_id`` here for ``seconds``."""
        self._rest_until[batch_id] = time.monotonic() + seconds

    async def input_lines(self, doc: dict) -> list[RequestLine] | None:
        """The batch's requests (read once per process); None when its input file is gone."""
        batch_id = doc["batch"]["id"]
        if batch_id not in self._inputs:
            try:
                data = await self.files.content(doc["owner"], doc["batch"]["input_file_id"])
            except NotFound:
                return None
            self._inputs[batch_id] = await asyncio.to_thread(request_lines, data)
        return self._inputs[batch_id]

    def remember_lines(self, batch_id: str, lines: list[RequestLine]) -> None:
        self._inputs[batch_id] = lines


async def run_batch(pump: BatchPump, batch_id: str) -> None:
    """One pass over a batch in this process (see the module docstring)."""
    store = pump.store
    doc = await store.doc_get(BATCHES, batch_id, now=time.time())
    if doc is None or doc["batch"]["status"] not in RUNNING:
        await store.doc_delete(ACTIVE, batch_id)
        return
    if doc["batch"]["status"] == "validating":
        await validate(pump, doc)
        return
    lines = await pump.input_lines(doc)
    if lines is None:
        await finalize(pump, doc, None, reason="input_file_missing")
        return
    runner = LineRunner(pump, doc, lines)
    await runner.load_owner()
    if not await runner.take_all() or pump.stopping:
        return  # this pump may not take lines now (shutting down, or out of touch with the store)
    if await runner.settle_up():
        await finalize(pump, doc, lines)
    else:
        pump.rest(batch_id, RECHECK)  # other pumps are sending the last lines; look again later
