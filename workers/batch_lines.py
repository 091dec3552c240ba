"""Running a batch's lines in one process: each line at most once, however many processes help.

``LineRunner(pump, doc, lines)``:

``take_all()`` hands out line numbers from the batch's shared cursor (``next`` in
``app.batches.progress_name``, bounded by the number of lines), claims each one
(``batch:<id>:line:<i>:0``) and runs it, as many at once as ``batches.concurrency`` allows in
this process, until none is left to hand out or the batch was stopped.

Running a line (``_run``): its ``Call`` is built from its body by the live route's own function
(``app.batch_input.BATCH_ENDPOINTS``), with ``batches.headroom`` so it only takes a key whose
windows keep that share free for live requests, and the batch owner as principal (as it is now:
its limits and budgets apply, a revoked key's lines get its 401); the service
answers it as it answers a live request (balancing, failover, cache, accounting), and the request
is recorded like any other (``app.accounting.finish``; client = the owner). Before each round the
line's ``x<i>`` counter goes up, in one atomic step that fails once the batch is stopped; a round
that reached no upstream because no key had room (or the owner's own window was full) takes it
back down, and the line waits for room (it never fails for lack of it). The result is a document (``results_collection``)
and ``d<i>`` then marks the line settled and the progress counters move.

``settle_up()`` looks at every line not settled after the cursor ran out. For each, the claims of
its generations (0, 1, ...) say who holds it:

- nobody (taken from the cursor by a pump that died before claiming it): claim and run it;
- a live pump: it is running, or (stopped batch, ``x`` = 0) it will not start: leave it;
- a dead pump, ``x`` = 0: nothing was sent for it: claim the next generation and run it;
- a dead pump, ``x`` > 0: it may have reached an upstream: give it the error line
  ``batch_line_interrupted`` (once: ``batch:<id>:reap:<i>``), never run it again; a line
  whose result was stored but not yet marked is only marked.

It returns True when the batch can be finalized: every line settled, or the batch stopped and no
line is being sent.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import orjson
from loguru import logger

from app.accounting import RequestRecord, finish
from app.auth import Principal
from app.batch_input import BATCH_ENDPOINTS, answered_line, unanswered_line
from app.batches import counters_ttl, lines_name, progress_name, results_collection
from app.deferral import next_delay
from app.batches import owner_principal
from app.errors import AuthenticationFailed, ClientRateLimited, GatewayError, InvalidRequest, NotFound

RETRY_ROUNDS = 3  # rounds a line gets when upstreams failed in a way a later try may fix
SETTLE_PASSES = 5
OWNER_REFRESH = 5.0  # seconds between reads of the owner's key while lines are taken (a revocation shows)
REAP_TTL = 60.0  # seconds another pump waits before writing an interrupted line whose writer died


def line_claim(batch_id: str, index: int, generation: int) -> str:
    return f"batch:{batch_id}:line:{index}:{generation}"


def reap_claim(batch_id: str, index: int) -> str:
    return f"batch:{batch_id}:reap:{index}"


class LineRunner:
    def __init__(self, pump, doc: dict, lines) -> None:
        self.pump = pump
        self.store = pump.store
        self.doc = doc
        batch = doc["batch"]
        self.batch_id = batch["id"]
        self.lines = lines
        self.total = len(lines)
        self.endpoint = BATCH_ENDPOINTS[batch["endpoint"]]
        self.principal = Principal(doc["owner"])  # the owner as it is now: ``load_owner``
        self.principal_error: GatewayError | None = None
        self._owner_at = float("-inf")
        self.headroom = pump.settings.batches.headroom
        self.counters_ttl = counters_ttl(doc, time.time())
        self.claim_ttl = self.counters_ttl  # a claim outlives the batch: a line is never claimed twice
        self._progress: dict[str, float] = {}
        self._progress_at = float("-inf")

    async def load_owner(self) -> None:
        """The owner's principal as it is now (limits, budgets, allowed providers and models);
        lines of an owner whose key was revoked, expired or removed get its 401."""
        self._owner_at = time.time()
        try:
            self.principal, self.principal_error = await owner_principal(self.pump.settings, self.store, self.doc["owner"]), None
        except AuthenticationFailed as error:
            self.principal_error = error

    # ----------------------------------------------------------------- taking lines

    async def take_all(self) -> bool:
        """Run lines from the cursor until it runs out (True) or this pump must stop taking (False)."""
        pump = self.pump
        exhausted = False
        async with asyncio.TaskGroup() as group:
            while not pump.stopping and pump.fresh():
                if await self._stopped():
                    exhausted = True  # nothing more may start: settle-up and finalize
                    break
                await pump.gate.acquire()
                try:
                    index = await self._take()
                except BaseException:
                    pump.gate.release()
                    raise
                if index is None:
                    pump.gate.release()
                    exhausted = True
                    break
                group.create_task(self._line(index))
        return exhausted

    async def _stopped(self) -> bool:
        """Cancelled or past its window (this then raises the expired flag). Read at most once a second."""
        now = time.time()
        if now >= self.doc["batch"]["expires_at"]:
            await self.expire()
            return True
        if now - self._progress_at >= 1.0:
            self._progress = await self.store.counters_get(progress_name(self.batch_id))
            self._progress_at = now
        if now - self._owner_at >= OWNER_REFRESH:
            await self.load_owner()
        return bool(self._progress.get("cancel_at"))

    async def expire(self) -> None:
        await self.store.counters_add(lines_name(self.batch_id), {"expired": 1}, limits={"expired": 1}, ttl=self.counters_ttl)

    async def _take(self) -> int | None:
        """The next line number from the cursor that this pump now holds; None when none is left."""
        while True:
            applied, values = await self.store.counters_add(progress_name(self.batch_id), {"next": 1}, limits={"next": self.total}, ttl=self.counters_ttl)
            if not applied:
                return None
            index = int(values["next"]) - 1
            if await self.store.claim(line_claim(self.batch_id, index, 0), self.pump.pump_id, ttl=self.claim_ttl, now=time.time()) == self.pump.pump_id:
                return index

    async def _line(self, index: int) -> None:
        """Run a line this pump holds, then give its slot back (the caller acquired it)."""
        key = (self.batch_id, index)
        self.pump.running.add(key)
        try:
            await self._run(index, self.pump.pump_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the store went away mid-line: settle-up decides its fate later
            logger.opt(exception=error).warning("batch line not finished", batch_id=self.batch_id, line=self.lines[index].number)
        finally:
            self.pump.running.discard(key)
            self.pump.gate.release()

    # ----------------------------------------------------------------- one line

    async def _run(self, index: int, holder: str) -> None:
        pump, store = self.pump, self.store
        request = orjson.loads(self.lines[index].raw)
        custom_id = request["custom_id"]
        record = RequestRecord("req_" + secrets.token_hex(16), route=f"batch {self.endpoint.url}", client=self.principal.id)
        try:
            if self.principal_error is not None:
                raise self.principal_error
            call = await self.endpoint.call(request["body"], self.principal, pump.service)
            if call.stream:
                raise InvalidRequest("Batch requests cannot stream: remove 'stream' from the body.", param="stream", code="invalid_value")
        except (InvalidRequest, AuthenticationFailed, NotFound) as error:  # what the live route would have answered
            await self._answered(index, custom_id, record, error)
            return
        call.headroom = self.headroom
        state = lines_name(self.batch_id)
        waits = failures = 0
        last: GatewayError | None = None  # the answer of the last round that reached an upstream
        while True:
            if pump.stopping or pump.pump_id != holder or not pump.fresh():
                return  # held under an identity others may take for dead: settle-up decides
            if time.time() >= self.doc["batch"]["expires_at"]:
                await self.expire()
            started, _ = await store.counters_add(state, {f"x{index}": 1, "cancel": 0, "expired": 0}, limits={"cancel": 0, "expired": 0}, ttl=self.counters_ttl)
            if not started:  # stopped: the finalizer writes its line, unless an earlier round was answered
                if last is not None:
                    await self._answered(index, custom_id, record, last)
                return
            record.attempts = 0
            record.started = time.perf_counter()  # its latency is the round's, not the waits' before it
            call.deadline = None  # each round gets the full retry budget
            try:
                result = await pump.service.answer(call, record)
            except asyncio.CancelledError:
                finish(record)  # the pump is closing mid-call: what the attempt spent is still recorded
                raise
            except GatewayError as error:
                if record.attempts == 0 and (error.retry_later or isinstance(error, ClientRateLimited)):
                    # No key had room (headroom included), or the owner's own window is full: wait.
                    await store.counters_add(state, {f"x{index}": -1}, ttl=self.counters_ttl)
                    waits += 1
                    await pump.pause(next_delay(error.retry_after, min(waits, 5)))
                    continue
                failures += 1
                last = error
                if error.retry_later and failures < RETRY_ROUNDS:
                    await pump.pause(next_delay(error.retry_after, failures))
                    continue
                await self._answered(index, custom_id, record, error)
                return
            except Exception as error:
                logger.opt(exception=error).error("batch line failed inside the gateway", batch_id=self.batch_id, line=self.lines[index].number)
                await self._answered(index, custom_id, record, GatewayError("The gateway failed to handle this request."))
                return
            await self._answered(index, custom_id, record, None, body=orjson.loads(result.body))
            return

    async def _answered(self, index: int, custom_id: str, record: RequestRecord, error: GatewayError | None, *, body=None) -> None:
        """Record the request (metrics, access line, usage event) and settle the line with its answer."""
        if error is None:
            record.status = 200
        else:
            record.status, body = error.status, error.envelope()
            record.error = record.error or error.code or error.type
        finish(record)
        usage = {"prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens}
        line = answered_line(custom_id, request_id=record.request_id, status=record.status, body=body)
        await self._settle(index, line, ok=error is None, usage=usage)

    async def _settle(self, index: int, line: dict, *, ok: bool, usage: dict | None = None) -> None:
        """Store a line's result, mark it settled, count it."""
        store, now = self.store, time.time()
        await store.doc_put(results_collection(self.batch_id), str(index), {"i": index, "ok": ok, "line": line, "usage": usage}, ttl=self.counters_ttl, now=now)
        await store.counters_add(lines_name(self.batch_id), {f"d{index}": 1}, ttl=self.counters_ttl)
        await store.counters_add(progress_name(self.batch_id), {"completed" if ok else "failed": 1}, ttl=self.counters_ttl)

    # ----------------------------------------------------------------- settling up

    async def settle_up(self) -> bool:
        """See the module docstring. Runs what it may run itself, then says whether all is done."""
        for _ in range(SETTLE_PASSES):
            progress = await self.store.counters_get(progress_name(self.batch_id))
            if progress.get("completed", 0) + progress.get("failed", 0) >= self.total:
                return True
            state = await self.store.counters_get(lines_name(self.batch_id))
            stopped = bool(state.get("cancel") or state.get("expired"))
            to_run: list[int] = []
            busy = False
            alive: dict[str, bool] = {}
            for index in range(self.total):
                if state.get(f"d{index}") or (stopped and not state.get(f"x{index}")):
                    continue  # settled, or never started and now never will be (the finalizer's)
                verdict = await self._holder_verdict(index, stopped, alive)
                if verdict == "run":
                    to_run.append(index)
                busy |= verdict == "busy"
            if stopped or not to_run:
                return not busy and (stopped or await self._all_settled())
            async with asyncio.TaskGroup() as group:
                for index in to_run:
                    await self.pump.gate.acquire()
                    group.create_task(self._line(index))
        return False

    async def _all_settled(self) -> bool:
        state = await self.store.counters_get(lines_name(self.batch_id))
        return all(state.get(f"d{index}") for index in range(self.total))

    async def _executing(self, index: int) -> bool:
        """Whether a round of the line started and did not give up before reaching an upstream:
        read now (adding 0 returns the current value atomically)."""
        _, values = await self.store.counters_add(lines_name(self.batch_id), {f"x{index}": 0}, ttl=self.counters_ttl)
        return values.get(f"x{index}", 0) > 0

    async def _holder_verdict(self, index: int, stopped: bool, alive: dict[str, bool]) -> str:
        """``run`` (this pump now holds the line and may run it), ``busy`` (a live pump is on it),
        or ``done`` (nothing to do: given its interrupted line, or left for the finalizer)."""
        pump, me = self.pump, self.pump.pump_id
        generation = 0
        while True:
            holder = await self.store.claim(line_claim(self.batch_id, index, generation), me, ttl=self.claim_ttl, now=time.time())
            if holder == me:
                if (self.batch_id, index) in pump.running:
                    return "busy"
                if await self._executing(index):  # this pump's own task sent it and then failed to record it
                    return await self._interrupted(index)
                if generation and not stopped:
                    logger.info("batch line taken over from a pump that stopped before sending it", batch_id=self.batch_id, line=self.lines[index].number)
                return "done" if stopped else "run"
            if holder not in alive:
                alive[holder] = await pump.alive(holder)
            if alive[holder]:
                return "busy" if not stopped or await self._executing(index) else "done"
            if await self._executing(index):
                return await self._interrupted(index)
            generation += 1  # a dead pump that sent nothing for it: the next generation may run it

    async def _interrupted(self, index: int) -> str:
        """The line's pump died while it may have been sending it: its error line, once. ``done``,
        or ``busy`` while another pump is writing it (if that one dies, this is redone after ``REAP_TTL``)."""
        if await self.store.claim(reap_claim(self.batch_id, index), self.pump.pump_id, ttl=REAP_TTL, now=time.time()) != self.pump.pump_id:
            return "busy"
        if await self.store.doc_get(results_collection(self.batch_id), str(index), now=time.time()) is not None:
            await self.store.counters_add(lines_name(self.batch_id), {f"d{index}": 1}, ttl=self.counters_ttl)
            return "done"  # its result made it to the store; only its mark did not
        custom_id = orjson.loads(self.lines[index].raw)["custom_id"]
        line = unanswered_line(
            custom_id,
            code="batch_line_interrupted",
            message="The worker running this request stopped before its answer was recorded; it is not run again, so it is never executed twice.",
        )
        await self._settle(index, line, ok=False)
        logger.warning("batch line interrupted by a dead worker", batch_id=self.batch_id, line=self.lines[index].number)
        return "done"
