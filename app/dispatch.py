"""The one orchestrator: model -> targets -> leased key -> upstream call -> OpenAI answer.

``Dispatcher.chat(call, record)`` and ``Dispatcher.embeddings(call, record)`` return a finished
``ChatResult``; ``Dispatcher.open_stream`` returns a ``ChatStream`` whose first frames are already
in hand. All three run the same attempt loop (``_run``):

1. ``Catalog.resolve`` gives the ordered targets the caller may use (404 / 403 otherwise).
2. ``Balancer.acquire`` leases the best key with room, reserving the estimated tokens. No room:
   ``Exhausted`` -> 429 with ``Retry-After`` (or, after failed attempts, the last failure).
3. The target's adapter builds the request; ``UpstreamClient`` sends it with the key's headers.
4. Success: translate, read usage, settle the window to the real count, price it.
5. Failure: ``Balancer.release(lease, outcome)`` feeds key health. Retryable outcomes try the
   next candidate (keys already tried go last) while ``retry.max_attempts`` and the total
   ``retry.timeout`` allow; other 4xx go back to the client as the upstream said them.

A stream fails over only until its first frame is produced; after that, errors end the stream
with a ``data: {"error": ...}`` frame.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from loguru import logger
from multidict import CIMultiDict

from adapters import AdapterError, ChatResult, UpstreamError, UpstreamRequest, Usage, adapter_for
from adapters.sse import SSEDecoder, frame
from app import metrics
from app.accounting import CLIENT_CLOSED, UNLISTED_MODEL, RequestRecord
from app.auth import Principal
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
from app.redact import Redactor
from app.tokens import estimate_prompt_tokens
from app.upstream import UpstreamClient, UpstreamStream
from balancer.catalog import Catalog, ForbiddenModel, Target, UnknownModel
from adapters.base import Outcome
from balancer.pool import Balancer, Exhausted, Lease

T = TypeVar("T")


@dataclass(slots=True)
class Call:
    """One client request as dispatch needs it; ``body`` is the parsed OpenAI request."""

    body: dict
    model: str
    principal: Principal
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None  # completion tokens to reserve (None: the target's default; 0: none)
    prompt_tokens: int | None = None  # the prompt estimate, when the body is not a chat request
    deadline: float | None = None  # time.monotonic() by which to give up (default: now + retry.timeout)


class Dispatcher:
    def __init__(self, settings, store, upstream: UpstreamClient) -> None:
        self.catalog = Catalog(settings)
        self.balancer = Balancer(settings, store)
        self.upstream = upstream
        self._retry = settings.policy.retry
        providers = {p.id: p for p in settings.llm_providers}
        # Full header sets per key, built once: content type, the adapter's fixed headers (which
        # the provider's configured headers may override), then credentials.
        self._headers: dict[str, CIMultiDict] = {}
        for provider_id, keys in self.balancer.keys.items():
            adapter = adapter_for(providers[provider_id].kind)
            for key in keys:
                # A CIMultiDict, the form aiohttp keeps headers in: it need not convert ours per request.
                self._headers[key.id] = CIMultiDict({
                    "content-type": "application/json",
                    **adapter.default_headers,
                    **providers[provider_id].headers,
                    **adapter.auth_headers(key.secret),
                })
        self.redactor = Redactor(secret for keys in self.balancer.keys.values() for key in keys for secret in [key.secret])

    # ----------------------------------------------------------------- public entry points

    def targets(self, model: str, principal: Principal) -> list[Target]:
        try:
            return self.catalog.resolve(model, principal.allows)
        except UnknownModel:
            raise ModelNotFound(f"The model '{model}' does not exist or is not served by this gateway.", param="model") from None
        except ForbiddenModel:
            raise PermissionDenied(f"Your API key may not use the providers that serve '{model}'.", param="model") from None

    async def chat(self, call: Call, record: RequestRecord) -> ChatResult:
        return await self._unary(
            call,
            record,
            lambda adapter, target: adapter.build_chat(call.body, target, stream=False),
            lambda adapter, body: adapter.parse_chat(body, model=call.model),
        )

    async def embeddings(self, call: Call, record: RequestRecord) -> ChatResult:
        return await self._unary(
            call,
            record,
            lambda adapter, target: adapter.build_embeddings(call.body, target),
            lambda adapter, body: adapter.parse_embeddings(body, model=call.model, request=call.body),
        )

    async def _unary(self, call: Call, record: RequestRecord, build, parse) -> ChatResult:
        """One request, one JSON answer: ``build(adapter, target)`` and ``parse(adapter, body)``
        are the adapter's translators for this kind of request."""

        async def attempt(lease: Lease, adapter, request, remaining: float) -> ChatResult:
            started = time.perf_counter()
            response = await self.upstream.send(request, self._headers[lease.key.id], timeout=remaining)
            latency = time.perf_counter() - started
            metrics.child(metrics.UPSTREAM_LATENCY, lease.target.provider_id).observe(latency)
            if response.status >= 300:
                raise adapter.parse_error(response.status, response.headers, response.body)
            result = parse(adapter, response.body)
            usage = result.usage or Usage(lease.prompt_tokens, lease.completion_tokens)
            await self._settle(lease, record, usage, latency)
            return result

        return await self._run(call, record, build, attempt)

    async def open_stream(self, call: Call, record: RequestRecord) -> "ChatStream":
        async def attempt(lease: Lease, adapter, request, remaining: float) -> ChatStream:
            started = time.perf_counter()
            upstream = await self.upstream.open_stream(request, self._headers[lease.key.id], timeout=remaining)
            try:
                if upstream.status >= 300:
                    raise adapter.parse_error(upstream.status, upstream.headers, await upstream.read())
                stream = ChatStream(self, lease, record, upstream, adapter.stream_translator(model=call.model, include_usage=call.include_usage))
                await stream.prime()
            except BaseException:
                upstream.close()
                raise
            metrics.child(metrics.UPSTREAM_LATENCY, lease.target.provider_id).observe(time.perf_counter() - started)
            return stream

        return await self._run(call, record, lambda adapter, target: adapter.build_chat(call.body, target, stream=True), attempt)

    # ----------------------------------------------------------------- the attempt loop

    @staticmethod
    def _prepare(targets: list[Target], build) -> tuple[list[Target], dict[int, UpstreamRequest]]:
        """Build the upstream request for every target before any key is reserved.

        A target whose provider cannot honour the request is left out (a fallback group moves on
        to the next); when none is left the client gets the first target's 400. So a request that
        would never be sent never takes a slot in a key's window.
        """
        usable: list[Target] = []
        built: dict[int, UpstreamRequest] = {}
        refusal: AdapterError | None = None
        for target in targets:
            try:
                built[id(target)] = build(adapter_for(target.kind), target)
            except AdapterError as error:
                refusal = refusal or error
                continue
            usable.append(target)
        if not usable:
            raise InvalidRequest(refusal.message, param=refusal.param, code=refusal.code)
        return usable, built

    async def _run(self, call: Call, record: RequestRecord, build, attempt: Callable[..., Awaitable[T]]) -> T:
        """The attempt loop. ``build(adapter, target)`` makes the upstream request (pure);
        ``attempt(lease, adapter, request, timeout)`` sends it and returns the answer, raising
        ``UpstreamError`` for a failure the balancer should hear about."""
        targets, requests = self._prepare(self.targets(call.model, call.principal), build)
        prompt_tokens = call.prompt_tokens if call.prompt_tokens is not None else estimate_prompt_tokens(call.body)
        deadline = call.deadline if call.deadline is not None else time.monotonic() + self._retry.timeout
        tried: set[str] = set()
        last: UpstreamError | None = None
        last_lease: Lease | None = None
        exhausted: Exhausted | None = None
        for number in range(1, self._retry.max_attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                lease = await self.balancer.acquire(targets, prompt_tokens=prompt_tokens, max_tokens=call.max_tokens, tried=tried)
            except Exhausted as error:
                exhausted = error
                break
            tried.add(lease.key.id)
            record.attempts = number
            record.served_by(lease.target.provider_id, lease.key.id, lease.target.model, lease.target.listed)
            if last_lease is not None:
                self._count_retry(last_lease, lease, last)
            target = lease.target
            try:
                timeout = min(remaining, target.timeout) if target.timeout else remaining
                result = await attempt(lease, adapter_for(target.kind), requests[id(target)], timeout)
                metrics.child(metrics.ATTEMPTS, target.provider_id, Outcome.SUCCESS.value).inc()
                return result
            except UpstreamError as error:
                failure = error
            except asyncio.CancelledError:
                # The client hung up: the upstream may have done the work, so keep the estimate.
                await self.balancer.release(lease, Outcome.CLIENT_ERROR, tokens=lease.reservation.tokens)
                record.charge(lease.prompt_tokens, lease.completion_tokens, target.cost(lease.prompt_tokens, lease.completion_tokens))
                record.status, record.error = CLIENT_CLOSED, "client_closed"
                raise
            except Exception as error:  # an answer the adapter could not read: the upstream's fault
                logger.opt(exception=error).warning("unreadable upstream answer", request_id=record.request_id, provider=target.provider_id)
                failure = UpstreamError(Outcome.SERVER_ERROR, None, f"the upstream's answer could not be read ({type(error).__name__})")
            await self._fail(lease, failure, record)
            if not failure.outcome.retryable:
                raise self._relay(failure) from None
            last, last_lease = failure, lease
            if self._retry.interval and number < self._retry.max_attempts:
                await asyncio.sleep(min(self._retry.interval, max(0.0, deadline - time.monotonic())))
        raise self._final_error(call.model, targets, record.attempts, last, last_lease, exhausted)

    async def _settle(self, lease: Lease, record: RequestRecord, usage: Usage, latency: float | None) -> None:
        await self.balancer.release(lease, Outcome.SUCCESS, tokens=usage.total_tokens, latency=latency)
        record.charge(usage.prompt_tokens, usage.completion_tokens, lease.target.cost(usage.prompt_tokens, usage.completion_tokens))

    async def _fail(self, lease: Lease, error: UpstreamError, record: RequestRecord) -> None:
        provider, key_id = lease.target.provider_id, lease.key.id
        error.message = self.redactor.scrub(error.message)
        if error.envelope is not None:
            error.envelope = self.redactor.scrub_envelope(error.envelope)
        rest = await self.balancer.release(lease, error.outcome, retry_after=error.retry_after)
        metrics.child(metrics.ATTEMPTS, provider, error.outcome.value).inc()
        if rest > 0:
            metrics.child(metrics.COOLDOWNS, provider, key_id, error.outcome.value).inc()
            metrics.child(metrics.COOLDOWN_UNTIL, provider, key_id).set(time.time() + rest)
        logger.warning(
            "upstream attempt failed",
            request_id=record.request_id,
            provider=provider,
            key_id=key_id,
            outcome=error.outcome.value,
            upstream_status=error.status,
            detail=error.message[:300],
            cooldown_s=round(rest, 3),
        )

    @staticmethod
    def _count_retry(previous: Lease, lease: Lease, cause: UpstreamError | None) -> None:
        reason = cause.outcome.value if cause else "unknown"
        metrics.child(metrics.RETRIES, lease.target.provider_id, reason).inc()
        if previous.target.provider_id != lease.target.provider_id:
            metrics.child(metrics.FAILOVERS, previous.target.provider_id, lease.target.provider_id).inc()

    def _relay(self, error: UpstreamError) -> GatewayError:
        """A non-retryable upstream answer (a 4xx the client must fix), relayed as it was."""
        return UpstreamRejected(error.message, status=error.status or 400, envelope=error.envelope, retry_after=error.retry_after)

    def _final_error(
        self,
        model: str,
        targets: list[Target],
        attempts: int,
        last: UpstreamError | None,
        lease: Lease | None,
        exhausted: Exhausted | None,
    ) -> GatewayError:
        """The error for a request no attempt could serve, judged by the last failure."""
        if last is None:
            if exhausted is None:
                return UpstreamTimeout("The retry budget ran out before an upstream could be tried.")
            if set(exhausted.reasons.values()) == {"no keys"}:
                providers = ", ".join(sorted(exhausted.reasons))
                return UpstreamUnavailable(f"No API keys are configured for the providers serving '{model}' ({providers}).", code="no_provider_keys")
            metrics.child(metrics.NO_CAPACITY, targets[0].model if targets[0].listed else UNLISTED_MODEL).inc()
            return NoCapacity(
                f"Every key that can serve '{model}' is at its rate limit or cooling down; retry after the indicated time.",
                retry_after=exhausted.retry_after,
            )
        where = f"provider {lease.target.provider_id} ({lease.key.id})" if lease else "the upstream"
        message = f"The upstream failed after {attempts} attempt(s); last error from {where}: {last.message}"
        retry_after = exhausted.retry_after if exhausted else last.retry_after
        outcome = last.outcome
        if outcome is Outcome.RATE_LIMITED:
            return NoCapacity(message, retry_after=retry_after or 1.0)
        if outcome is Outcome.TIMEOUT:
            return UpstreamTimeout(message)
        if outcome is Outcome.OVERLOADED:
            return UpstreamUnavailable(message, retry_after=retry_after)
        if outcome is Outcome.AUTH:
            return UpstreamFailed(f"{where} rejected its API key (HTTP {last.status}); the gateway's provider keys need attention.", code="upstream_auth_failed")
        return UpstreamFailed(message)


class ChatStream:
    """An upstream stream being relayed. ``prime()`` (inside the attempt loop) reads until the
    first frame exists; iterating ``frames()`` then yields the frames, those translated from one
    upstream read joined into one piece (one write to the client), ending with the usage chunk
    (if asked) and ``[DONE]``, or with an error frame if the upstream breaks. Accounting runs
    once, at the end.
    """

    def __init__(self, dispatcher: Dispatcher, lease: Lease, record: RequestRecord, upstream: UpstreamStream, translator) -> None:
        self._dispatcher = dispatcher
        self.lease = lease
        self._record = record
        self._upstream = upstream
        self._translator = translator
        self._decoder = SSEDecoder()
        self._chunks = upstream.chunks()
        self._pending: list[bytes] = []
        self._settling: asyncio.Future | None = None

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

    async def frames(self) -> AsyncIterator[bytes]:
        outcome = Outcome.SUCCESS
        try:
            while True:
                if self._pending:
                    pending, self._pending = self._pending, []
                    yield b"".join(pending)  # one write per upstream read, not one per frame
                if not await self._pull():
                    break
            yield b"".join(self._translator.finish())
        except UpstreamError as error:
            outcome = error.outcome
            envelope = error.envelope or {"error": {"message": error.message, "type": "upstream_error", "param": None, "code": "stream_interrupted"}}
            envelope = self._dispatcher.redactor.scrub_envelope(envelope)
            self._record.error = f"stream broke: {self._dispatcher.redactor.scrub(error.message)[:200]}"
            yield frame(envelope)
        finally:
            self._upstream.close()
            await self._settle_once(outcome)

    async def _settle_once(self, outcome: Outcome) -> None:
        """Settle exactly once, shielded: a client hanging up right after ``[DONE]`` cancels the
        handler mid-settle (a store round trip), and accounting must still complete; ``aclose``
        then waits for it."""
        if self._settling is None:
            self._settling = asyncio.ensure_future(self._settle(outcome))
        await asyncio.shield(self._settling)

    async def _settle(self, outcome: Outcome) -> None:
        lease = self.lease
        usage = self._translator.usage
        if usage is None:  # the upstream sent no usage (or the stream broke): keep the estimate
            usage = Usage(lease.prompt_tokens, lease.completion_tokens)
        if outcome is Outcome.SUCCESS:
            await self._dispatcher._settle(lease, self._record, usage, None)
        else:
            await self._dispatcher.balancer.release(lease, outcome, tokens=usage.total_tokens)
            self._record.charge(usage.prompt_tokens, usage.completion_tokens, lease.target.cost(usage.prompt_tokens, usage.completion_tokens))

    async def aclose(self) -> None:
        """Stop early (client gone): close upstream and settle on what is known."""
        self._upstream.close()
        await self._settle_once(Outcome.SUCCESS)
