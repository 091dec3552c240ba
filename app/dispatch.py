"""The one orchestrator: model -> targets -> leased key -> upstream call -> OpenAI answer.

``Dispatcher.chat(call, record)`` returns a finished ``ChatResult``; ``Dispatcher.open_stream``
returns a ``ChatStream`` whose first frames are already in hand. Both run the same attempt loop:

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

from adapters import AdapterError, ChatResult, UpstreamError, Usage, adapter_for
from adapters.sse import SSEDecoder, frame
from app import metrics
from app.accounting import RequestRecord
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
from balancer.health import Outcome
from balancer.pool import Balancer, Exhausted, Lease

T = TypeVar("T")


@dataclass(slots=True)
class Call:
    """One client chat request as dispatch needs it; ``body`` is the parsed OpenAI request."""

    body: dict
    model: str
    principal: Principal
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None


class Dispatcher:
    def __init__(self, settings, store, upstream: UpstreamClient) -> None:
        self.catalog = Catalog(settings)
        self.balancer = Balancer(settings, store)
        self.upstream = upstream
        self._retry = settings.policy.retry
        providers = {p.id: p for p in settings.llm_providers}
        # Full header sets per key, built once: content type, custom headers, then credentials.
        self._headers: dict[str, dict[str, str]] = {}
        for provider_id, keys in self.balancer.keys.items():
            adapter = adapter_for(providers[provider_id].kind)
            for key in keys:
                self._headers[key.id] = {
                    "content-type": "application/json",
                    **providers[provider_id].headers,
                    **adapter.auth_headers(key.secret),
                }
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
        async def attempt(lease: Lease, remaining: float) -> ChatResult:
            adapter = adapter_for(lease.target.kind)
            request = adapter.build_chat(call.body, lease.target, stream=False)
            started = time.perf_counter()
            response = await self.upstream.send(request, self._headers[lease.key.id], timeout=remaining)
            latency = time.perf_counter() - started
            metrics.child(metrics.UPSTREAM_LATENCY, lease.target.provider_id).observe(latency)
            if response.status >= 300:
                raise adapter.parse_error(response.status, response.headers, response.body)
            result = adapter.parse_chat(response.body, model=call.model)
            usage = result.usage or Usage(lease.prompt_tokens, lease.completion_tokens)
            await self._settle(lease, record, usage, latency)
            return result

        return await self._run(call, record, attempt)

    async def open_stream(self, call: Call, record: RequestRecord) -> "ChatStream":
        async def attempt(lease: Lease, remaining: float) -> ChatStream:
            adapter = adapter_for(lease.target.kind)
            request = adapter.build_chat(call.body, lease.target, stream=True)
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

        return await self._run(call, record, attempt)

    # ----------------------------------------------------------------- the attempt loop

    async def _run(self, call: Call, record: RequestRecord, attempt: Callable[[Lease, float], Awaitable[T]]) -> T:
        targets = self.targets(call.model, call.principal)
        prompt_tokens = estimate_prompt_tokens(call.body)
        deadline = time.monotonic() + self._retry.timeout
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
            record.served_by(lease.target.provider_id, lease.key.id, lease.target.model)
            if last_lease is not None:
                self._count_retry(last_lease, lease, last)
            try:
                timeout = min(remaining, lease.target.timeout) if lease.target.timeout else remaining
                result = await attempt(lease, timeout)
                metrics.child(metrics.ATTEMPTS, lease.target.provider_id, Outcome.SUCCESS.value).inc()
                return result
            except AdapterError as error:
                await self.balancer.release(lease, Outcome.CLIENT_ERROR, tokens=0)
                raise InvalidRequest(error.message, param=error.param, code=error.code) from None
            except UpstreamError as error:
                await self._fail(lease, error, record)
                if not error.outcome.retryable:
                    raise self._relay(error) from None
                last, last_lease = error, lease
            except asyncio.CancelledError:
                await self.balancer.release(lease, Outcome.CLIENT_ERROR, tokens=lease.reservation.tokens)
                raise
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
            metrics.child(metrics.NO_CAPACITY, targets[0].model).inc()
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
        self._settled = False

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
            await self._settle(outcome)

    async def _settle(self, outcome: Outcome) -> None:
        if self._settled:
            return
        self._settled = True
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
        await self._settle(Outcome.SUCCESS)
