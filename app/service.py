"""The one request path. Every front door (chat, embeddings, ...) hands its ``Call`` to ``Service``.

``answer(call, record)`` gives one JSON answer; ``open_stream(call, record)`` gives a ``Relay``
whose first frames are already in hand. Both run the same steps:

1. Resolve the model once (``Catalog.resolve``): the ordered targets the caller may use
   (404 / 403 otherwise; 403 ``model_not_allowed`` for a model outside the client's ``allowed_models``).
2. Plan (``plan``): build the upstream request for every target before any key is reserved; a
   target whose provider cannot honour the request is left out (the client gets a 400 naming the
   parameter when none is left); and the cache plan (``app.cache``).
3. Admit (``app.governance.Governor.admit``): the client's own windows and USD budget, reserved
   atomically in the store (429 ``rate_limit_exceeded`` / ``budget_exceeded``); free for a client
   without limits and budgets. Then the cache: a hit answers at once, costs nothing and records
   what it saved.
4. The attempt loop (``_attempts``): lease the best key with room (``Balancer.acquire``: no room
   anywhere is a 429 with ``Retry-After``), send with the key's headers, translate through the
   call's ``Endpoint``. A retryable failure moves on to the next candidate (keys already tried go
   last) within ``retry.max_attempts`` and ``retry.timeout``; other 4xx go back to the client as
   the upstream said them. A stream fails over only until its first frame exists. With
   telemetry on (``record.trace``, ``app.telemetry``) each attempt runs in its own span.
5. Waiting: a live unary request whose attempts ended in an error that waiting can fix
   (``GatewayError.retry_later``) goes to the job queue when ``policy.retry.queue`` is on
   (``app.deferral``).
6. Settle. Every lease goes back through ``_settle`` exactly once, whatever happened (answer,
   upstream failure, a stream that broke, a client that hung up): it corrects the token window to
   what was spent, feeds key health and cooldowns, counts the attempt and charges the request
   record. A successful answer is saved in the cache. Then the admission settles, once, with what
   the record was charged (the client's windows and budget get the real tokens and cost). The
   record itself is finished (metrics, the access line, the usage event:
   ``app.accounting.finish``) once the client has its answer: by the app's response middleware,
   or for a stream when its ``Relay`` closes.

``execute(call, record)`` is steps 1, 2 and 4 alone, for work that answers no HTTP client
itself: a queued retry run by a worker (the web process that queued it holds its admission).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from loguru import logger
from multidict import CIMultiDict

from adapters import AdapterError, ChatResult, UpstreamError, UpstreamRequest, Usage, adapter_for
from adapters.base import Outcome
from adapters.sse import SSEDecoder
from app import metrics
from app.accounting import UNLISTED_MODEL, RequestRecord, finish, frames_with_cost
from app.cache import CachePlan, ResponseCache
from app.calls import Call
from app.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NoCapacity,
    PermissionDenied,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.governance import FREE, Governor
from app.redact import Redactor, configured_secrets
from app.upstream import UpstreamClient, UpstreamStream
from balancer.catalog import Catalog, ForbiddenModel, Target, UnknownModel
from balancer.pool import Balancer, Exhausted, Lease

T = TypeVar("T")

# Upstream answers larger than this are parsed and translated in a thread, not on the event loop.
OFF_LOOP_BYTES = 1 << 20


@dataclass(slots=True)
class Plan:
    """A resolved call: its usable targets in order, the upstream request built for each, its cache plan."""

    call: Call
    targets: list[Target]
    requests: dict[int, UpstreamRequest]  # id(target) -> the request to send it
    cache: CachePlan | None = None


def spent_estimate(lease: Lease) -> Usage:
    """What a lease is charged when the upstream said nothing: the tokens it reserved."""
    return Usage(lease.prompt_tokens, lease.completion_tokens)


class Service:
    def __init__(self, settings, store, upstream: UpstreamClient, *, cache: ResponseCache | None = None) -> None:
        self.settings = settings
        self.store = store
        self.catalog = Catalog(settings)
        self.balancer = Balancer(settings, store)
        self.governor = Governor(settings, store, self.balancer)
        self.upstream = upstream
        self.cache = cache or ResponseCache(settings, store)
        self.deferral = None  # ``app.deferral.Deferral``, given by the app once its job queue exists
        self._retry = settings.policy.retry
        providers = {p.id: p for p in settings.llm_providers}
        # Full header sets per key, built once: content type, the adapter's fixed headers (which
        # the provider's configured headers may override), then credentials. A CIMultiDict is the
        # form aiohttp keeps headers in, so it need not convert ours per request.
        self._headers: dict[str, CIMultiDict] = {}
        for provider_id, keys in self.balancer.keys.items():
            adapter = adapter_for(providers[provider_id].kind)
            for key in keys:
                self._headers[key.id] = CIMultiDict({
                    "content-type": "application/json",
                    **adapter.default_headers,
                    **providers[provider_id].headers,
                    **adapter.auth_headers(key.secret),
                })
        self.redactor = Redactor(configured_secrets(settings))  # also the log sinks' (``app.logging.set_log_redactor``)
        self._closing: set[asyncio.Future] = set()  # relays settling after their client left

    async def close(self) -> None:
        """Wait for relays still settling (the process is stopping)."""
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # ----------------------------------------------------------------- resolve and plan

    def targets(self, model: str, principal) -> list[Target]:
        if principal.models is not None and model not in principal.models:
            raise PermissionDenied(f"Your API key may not use the model '{model}'.", param="model", code="model_not_allowed")
        try:
            return self.catalog.resolve(model, principal.allows)
        except UnknownModel:
            raise ModelNotFound(f"The model '{model}' does not exist or is not served by this gateway.", param="model") from None
        except ForbiddenModel:
            raise PermissionDenied(f"Your API key may not use the providers that serve '{model}'.", param="model") from None

    def plan(self, call: Call) -> Plan:
        """Steps 1 and 2: resolve once, build the upstream request of every target, plan the cache."""
        usable: list[Target] = []
        built: dict[int, UpstreamRequest] = {}
        refusal: AdapterError | None = None
        for target in self.targets(call.model, call.principal):
            try:
                built[id(target)] = call.endpoint.build(call, adapter_for(target.kind), target)
            except AdapterError as error:
                refusal = refusal or error
                continue
            usable.append(target)
        if not usable:
            raise InvalidRequest(refusal.message, param=refusal.param, code=refusal.code)
        return Plan(call, usable, built, self.cache.plan(call, usable) if self.cache.enabled else None)

    # ----------------------------------------------------------------- entry points

    def _begin(self, call: Call, record: RequestRecord) -> Plan:
        """Steps 1 and 2 for a call the record is charged for; its request span (if traced) learns the call."""
        record.billable = True
        if record.trace is not None:
            record.trace.call(call)
        return self.plan(call)

    async def answer(self, call: Call, record: RequestRecord) -> ChatResult:
        """One JSON answer (steps 1-6)."""
        plan = self._begin(call, record)
        admission = await self.governor.admit(plan, record)
        try:
            hit = await self._cached(plan, record)
            if hit is not None:
                await call.endpoint.keep(self, call, hit)
                return ChatResult(hit, None)
            try:
                result = await self._attempts(plan, record, self._send)
            except GatewayError as error:
                if not (call.deferrable and error.retry_later and self.deferral is not None):
                    raise
                result = await self.deferral.wait(call, record, error)
            await self.cache.save(plan.cache, result.body, record)
            await call.endpoint.keep(self, call, result.body)
            return result
        finally:
            await admission.settle(record)

    async def open_stream(self, call: Call, record: RequestRecord) -> "Relay":
        """A stream whose first frames exist (steps 1-4); the ``Relay`` settles the rest."""
        record.stream = True
        plan = self._begin(call, record)
        admission = await self.governor.admit(plan, record)
        try:
            hit = await self._cached(plan, record)
            if hit is not None:
                replay = call.endpoint.replay(call, hit)
                relay = Relay(self, plan, record, replay=frames_with_cost(replay, 0.0) if call.include_usage else replay, cached=hit)
            else:
                relay = await self._attempts(plan, record, self._open)
        except BaseException:
            await admission.settle(record)
            raise
        relay.admission = admission
        record.status = 200
        return relay

    async def execute(self, call: Call, record: RequestRecord) -> ChatResult:
        """Steps 1, 2 and 4 only: no cache and no queue (a queued retry runs this in a worker)."""
        plan = self._begin(call, record)
        return await self._attempts(plan, record, self._send)

    async def _cached(self, plan: Plan, record: RequestRecord) -> bytes | None:
        if plan.cache is None:
            return None
        record.cache_result = plan.cache.header
        entry = await self.cache.lookup(plan.cache)
        if entry is None:
            return None
        record.cache_result = "hit"
        self.cache.charge_hit(entry, record)
        return plan.call.endpoint.cached(plan.call, entry.body)

    # ----------------------------------------------------------------- the attempt loop

    async def _attempts(self, plan: Plan, record: RequestRecord, attempt: Callable[..., Awaitable[T]]) -> T:
        """Step 4. ``attempt(plan, lease, record, timeout)`` sends and returns the answer (having
        settled its lease), or raises ``UpstreamError`` for a failure the balancer must hear of."""
        call = plan.call
        if call.deadline is None:  # set on the call: a queued retry after these attempts shares it
            call.deadline = time.monotonic() + self._retry.timeout
        deadline = call.deadline
        tried: set[str] = set()
        last: UpstreamError | None = None
        last_lease: Lease | None = None
        exhausted: Exhausted | None = None
        for number in range(1, self._retry.max_attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                lease = await self.balancer.acquire(
                    plan.targets, prompt_tokens=call.prompt_tokens, max_tokens=call.max_tokens, tried=tried, headroom=call.headroom
                )
            except Exhausted as error:
                exhausted = error
                break
            tried.add(lease.key.id)
            target = lease.target
            record.attempts = number
            record.served_by(target.provider_id, lease.key.label, target.model, target.listed)
            if last_lease is not None:
                self._count_retry(last_lease, lease, last)
            timeout = min(remaining, target.timeout) if target.timeout else remaining
            try:
                if record.trace is None:
                    return await attempt(plan, lease, record, timeout)
                return await record.trace.attempt(attempt, plan, lease, record, timeout, number)  # in its span (app.telemetry)
            except UpstreamError as error:
                # Kept past the except block, so without its traceback: that holds this frame,
                # and the cycle (with the request's body in it) would wait for the cyclic GC.
                failure = error.with_traceback(None)
            except asyncio.CancelledError:
                # The client hung up: the upstream may have done the work, so keep the estimate.
                await self._settle(lease, record, Outcome.CLIENT_ERROR, spent=spent_estimate(lease))
                record.client_gone()
                raise
            except Exception as error:  # an answer the adapter could not read: the upstream's fault
                logger.opt(exception=error).warning("unreadable upstream answer", request_id=record.request_id, provider=target.provider_id)
                failure = UpstreamError(Outcome.SERVER_ERROR, None, f"the upstream's answer could not be read ({type(error).__name__})")
            await self._settle(lease, record, failure.outcome, failure=failure)
            if not failure.outcome.retryable:
                raise self._relay(failure) from None
            last, last_lease = failure, lease
            if self._retry.interval and number < self._retry.max_attempts:
                await asyncio.sleep(min(self._retry.interval, max(0.0, deadline - time.monotonic())))
        raise self._final_error(call.model, plan.targets, record.attempts, last, last_lease, exhausted)

    def _headers_for(self, lease: Lease, request: UpstreamRequest) -> CIMultiDict:
        """The key's headers, plus the request's own (which never replace the credentials)."""
        headers = self._headers[lease.key.id]
        if not request.headers:
            return headers
        merged = CIMultiDict(request.headers)
        merged.update(headers)
        return merged

    async def _send(self, plan: Plan, lease: Lease, record: RequestRecord, timeout: float) -> ChatResult:
        """A unary attempt."""
        adapter = adapter_for(lease.target.kind)
        started = time.perf_counter()
        request = plan.requests[id(lease.target)]
        response = await self.upstream.send(request, self._headers_for(lease, request), timeout=timeout)
        latency = time.perf_counter() - started
        metrics.observe(metrics.UPSTREAM_LATENCY, (lease.target.provider_id,), latency)
        if response.status >= 300:
            raise adapter.parse_error(response.status, response.headers, response.body)
        if len(response.body) > OFF_LOOP_BYTES:  # parse a big answer in a thread: other requests keep being served
            result = await asyncio.to_thread(plan.call.endpoint.parse, plan.call, adapter, lease.target, response.body)
        else:
            result = plan.call.endpoint.parse(plan.call, adapter, lease.target, response.body)
        if result.usage_unreadable:
            self._unreadable_usage(lease, record)
        await self._settle(lease, record, Outcome.SUCCESS, spent=result.usage or spent_estimate(lease), latency=latency)
        body = self.redactor.scrub_bytes(result.body)  # an upstream may echo a key even in an answer
        return result if body is result.body else result.with_body(body)

    async def _open(self, plan: Plan, lease: Lease, record: RequestRecord, timeout: float) -> "Relay":
        """A streaming attempt: succeeds once the first frame exists (the lease settles when the relay closes)."""
        adapter = adapter_for(lease.target.kind)
        started = time.perf_counter()
        request = plan.requests[id(lease.target)]
        upstream = await self.upstream.open_stream(request, self._headers_for(lease, request), timeout=timeout)
        try:
            if upstream.status >= 300:
                raise adapter.parse_error(upstream.status, upstream.headers, await upstream.read())
            relay = Relay(self, plan, record, lease=lease, upstream=upstream, translator=plan.call.endpoint.stream_translator(plan.call, adapter, lease.target))
            await relay.prime()
        except BaseException:
            upstream.close()
            raise
        metrics.observe(metrics.UPSTREAM_LATENCY, (lease.target.provider_id,), time.perf_counter() - started)
        return relay

    # ----------------------------------------------------------------- settling

    async def _settle(
        self,
        lease: Lease,
        record: RequestRecord,
        outcome: Outcome,
        *,
        spent: Usage | None = None,
        failure: UpstreamError | None = None,
        latency: float | None = None,
    ) -> None:
        """Give ``lease`` back, once. ``spent`` is what the request used (the record is charged
        for it); None means nothing was spent (a failed attempt gives its tokens back)."""
        target, key = lease.target, lease.key
        rest = await self.balancer.release(
            lease, outcome, tokens=spent.total_tokens if spent else 0, latency=latency, retry_after=failure.retry_after if failure else None
        )
        if spent is not None:
            record.charge(spent.prompt_tokens, spent.completion_tokens, self._cost(target, spent))
        if outcome is Outcome.CLIENT_ERROR and failure is None:
            return  # the client left: no attempt outcome to count
        metrics.count(metrics.ATTEMPTS, (target.provider_id, outcome.value))
        if rest > 0:
            metrics.child(metrics.COOLDOWNS, target.provider_id, key.label, outcome.value).inc()
            metrics.child(metrics.COOLDOWN_UNTIL, target.provider_id, key.label).set(time.time() + rest)
        if failure is not None:
            failure.message = self.redactor.scrub(failure.message)
            if failure.envelope is not None:
                failure.envelope = self.redactor.scrub_envelope(failure.envelope)
            logger.warning(
                "upstream attempt failed",
                request_id=record.request_id,
                provider=target.provider_id,
                key_id=key.label,
                outcome=outcome.value,
                upstream_status=failure.status,
                detail=failure.message[:300],
                cooldown_s=round(rest, 3),
            )

    @staticmethod
    def _unreadable_usage(lease: Lease, record: RequestRecord) -> None:
        """The upstream's usage could not be read: charge the estimate, say so once, count it."""
        metrics.child(metrics.UNREADABLE_USAGE, lease.target.provider_id).inc()
        logger.warning("unreadable usage in the upstream answer: the reserved estimate is charged", request_id=record.request_id, provider=lease.target.provider_id, key_id=lease.key.label)

    def _cost(self, target: Target, spent: Usage) -> float | None:
        """``spent`` at the target's price; None (a metric, and one warning per model) when unknown."""
        cost = target.cost(spent)
        if cost is None:
            model = target.model if target.listed else UNLISTED_MODEL
            metrics.child(metrics.UNPRICED, target.provider_id, model).inc()
            if self.catalog.prices.unpriced_once(target.provider_id, target.model):
                logger.warning("no known price for this model: its requests are counted with cost null", provider=target.provider_id, model=target.model)
        return cost

    @staticmethod
    def _count_retry(previous: Lease, lease: Lease, cause: UpstreamError | None) -> None:
        reason = cause.outcome.value if cause else "unknown"
        metrics.child(metrics.RETRIES, lease.target.provider_id, reason).inc()
        if previous.target.provider_id != lease.target.provider_id:
            metrics.child(metrics.FAILOVERS, previous.target.provider_id, lease.target.provider_id).inc()

    @staticmethod
    def _relay(error: UpstreamError) -> GatewayError:
        """A non-retryable upstream answer (a 4xx the client must fix), relayed as it was."""
        return UpstreamRejected(error.message, status=error.status or 400, envelope=error.envelope, retry_after=error.retry_after)

    @staticmethod
    def _final_error(
        model: str, targets: list[Target], attempts: int, last: UpstreamError | None, lease: Lease | None, exhausted: Exhausted | None
    ) -> GatewayError:
        """The error for a request no attempt could serve, judged by the last failure."""
        if last is None:
            if exhausted is None:
                return UpstreamTimeout("The retry budget ran out before an upstream could be tried.")
            if exhausted.unkeyed:
                providers = ", ".join(sorted(exhausted.unkeyed))
                return UpstreamUnavailable(f"No API keys are configured for the providers serving '{model}' ({providers}).", code="no_provider_keys")
            metrics.child(metrics.NO_CAPACITY, targets[0].model if targets[0].listed else UNLISTED_MODEL).inc()
            return NoCapacity(
                f"Every key that can serve '{model}' is at its rate limit or cooling down; retry after the indicated time.",
                retry_after=exhausted.retry_after,
            )
        where = f"provider {lease.target.provider_id} ({lease.key.label})" if lease else "the upstream"
        message = f"The upstream failed after {attempts} attempt(s); last error from {where}: {last.message}"
        retry_after = exhausted.retry_after if exhausted else last.retry_after
        outcome = last.outcome
        if outcome is Outcome.RATE_LIMITED:
            return NoCapacity(message, retry_after=retry_after or 1.0)
        if outcome is Outcome.TIMEOUT:
            return UpstreamTimeout(message)  # the budget is spent: waiting longer cannot help
        if outcome is Outcome.OVERLOADED:
            return UpstreamUnavailable(message, retry_after=retry_after, retry_later=True)
        if outcome is Outcome.AUTH:
            return UpstreamFailed(f"{where} rejected its API key (HTTP {last.status}); the gateway's provider keys need attention.", code="upstream_auth_failed")
        return UpstreamFailed(message, retry_later=True)


class Relay:
    """A stream on its way to the client::

        async with relay:
            response = await request.respond(...)
            async for piece in relay:
                await response.send(piece)

    Iterating yields the frames, those translated from one upstream read joined into one piece
    (one write to the client), ending with the usage chunk (if asked) and ``[DONE]``, or with one
    error frame if the upstream breaks after the first frame. A cache hit's relay replays the
    stored answer's frames. Leaving the ``async with`` closes the upstream and settles exactly
    once, shielded (a client hanging up right after ``[DONE]`` cancels the handler mid-settle,
    and accounting must still complete): the lease with the usage seen (or the estimate), the
    answer into the cache (only when the whole stream reached the client), the client's admission
    (``app.governance``) and the request record. A client that left before the end is recorded
    as 499. When the client asked for usage, the usage chunk carries the request's cost as
    ``usage.cost_usd`` (null when the price is unknown).
    """

    def __init__(
        self,
        service: Service,
        plan: Plan,
        record: RequestRecord,
        *,
        lease: Lease | None = None,
        upstream: UpstreamStream | None = None,
        translator=None,
        replay: list[bytes] | None = None,
        cached: bytes | None = None,
    ) -> None:
        self._service = service
        self._cached = cached  # the cached answer the replay frames come from
        self._plan = plan
        self._record = record
        self.record = record
        self.lease = lease
        self._upstream = upstream
        self._translator = translator
        self._replay = replay
        self._decoder = SSEDecoder()
        self._chunks = upstream.chunks() if upstream is not None else None
        self._pending: list[bytes] = []
        self._ended = replay is not None
        self._failure: UpstreamError | None = None
        self._sent = 0
        self._caching = plan.cache is not None and plan.cache.store and replay is None
        wanted = self._caching or (record.trace is not None and record.trace.wants_answer)  # content capture reads the answer
        self._assembler = None if replay is not None else plan.call.endpoint.assembler(plan.call, translator, caching=wanted)
        self.delivered = False  # the client got the last frame
        self.admission = FREE  # the client's hold on its windows and budget, given by ``open_stream``
        self.attempt_trace = None  # the upstream attempt's span (``app.telemetry.AttemptTrace``), ended on close

    async def _pull(self) -> bool:
        """Read upstream until frames are pending; False when the upstream stream has ended."""
        translator = self._translator
        while not self._pending:
            if translator.done:
                return False
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                for event in self._decoder.close():
                    self._pending.extend(translator.feed(event))
                return bool(self._pending)
            for event in self._decoder.feed(chunk):
                self._pending.extend(translator.feed(event))
        return True

    async def prime(self) -> None:
        """Ensure the first frame is in hand; an upstream that ends or breaks first is a failure."""
        if not await self._pull():
            raise UpstreamError(Outcome.SERVER_ERROR, None, "upstream closed the stream before sending anything")

    async def __aenter__(self) -> "Relay":
        return self

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        pieces = self._replay if self._replay is not None else None
        index = 0
        while True:
            if pieces is not None:
                piece = pieces[index] if index < len(pieces) else None
                index += 1
            else:
                piece = await self._next_piece()
            if piece is None:
                break
            piece = self._service.redactor.scrub_bytes(piece)
            if self._sent == 0:
                metrics.observe(metrics.TIME_TO_FIRST_TOKEN, (self._record.provider,), time.perf_counter() - self._record.started)
            self._sent += 1
            if self._assembler is not None:
                self._assembler.feed(piece)
            yield piece
        self.delivered = True

    async def _next_piece(self) -> bytes | None:
        """The next piece for the client: what one upstream read produced, then the closing frames
        (usage chunk and ``[DONE]``, or one error frame); None after those."""
        if self._ended:
            return None
        try:
            if self._pending or await self._pull():
                pending, self._pending = self._pending, []
                return b"".join(pending)  # one write per upstream read, not one per frame
            self._ended = True
            frames = self._translator.finish()
            if self._plan.call.include_usage:
                usage = self._translator.usage
                frames = frames_with_cost(frames, self.lease.target.cost(usage) if usage is not None else None)
            return b"".join(frames)
        except UpstreamError as error:
            self._ended = True
            self._failure = error.with_traceback(None)  # no traceback: it would hold this relay in a cycle
            redactor = self._service.redactor
            envelope = error.envelope or {"error": {"message": error.message, "type": "upstream_error", "param": None, "code": "stream_interrupted"}}
            self._record.error = f"stream broke: {redactor.scrub(error.message)[:200]}"
            if self._assembler is not None:
                self._assembler.failed = True
            return b"".join(self._plan.call.endpoint.error_frames(self._plan.call, redactor.scrub_envelope(envelope), self._translator))

    async def __aexit__(self, kind, error, traceback) -> None:
        if error is not None and not self.delivered:
            self._record.client_gone()
        closing = asyncio.ensure_future(self._close())
        self._service._closing.add(closing)
        closing.add_done_callback(self._service._closing.discard)
        await asyncio.shield(closing)

    async def _close(self) -> None:
        record = self._record
        body = None
        try:
            if self.lease is not None:
                self._upstream.close()
                if self._translator.usage_unreadable:
                    self._service._unreadable_usage(self.lease, record)
                failure = self._failure
                await self._service._settle(
                    self.lease, record, failure.outcome if failure else Outcome.SUCCESS,
                    spent=self._translator.usage or spent_estimate(self.lease), failure=failure,
                )
                if self.delivered and self._assembler is not None:
                    usage = {"prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens, "total_tokens": record.prompt_tokens + record.completion_tokens}
                    body = self._assembler.completion(usage)
                    if body is not None:
                        if self._caching:
                            await self._service.cache.save(self._plan.cache, body, record)
                        call = self._plan.call
                        await call.endpoint.keep(self._service, call, body)
            elif self.delivered and self._cached is not None:
                call = self._plan.call
                await call.endpoint.keep(self._service, call, self._cached)
        finally:
            try:
                await self.admission.settle(record)
            finally:
                if self.attempt_trace is not None:
                    self.attempt_trace.close(record, body=body if self.delivered else None, failure=self._failure)
                finish(record)
