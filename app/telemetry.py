"""OpenTelemetry traces in the GenAI semantic conventions: one SERVER span per request, one
CLIENT span per upstream attempt, exported over OTLP/HTTP.

Off unless ``telemetry.otlp_endpoint`` or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (``OTEL_SDK_DISABLED=true`` turns it off again).
Off, ``open_tracer`` returns None, nothing from ``opentelemetry`` is imported, and the request
path pays one ``is None`` test per hook: ``RequestRecord.trace`` stays None.

On, the hooks are (each where the gateway already records things):

- ``app.server`` ``begin_request``: ``Tracer.request(request, record)`` starts the request span
  (SERVER) as a child of the client's W3C ``traceparent`` / ``tracestate``, and puts its
  ``RequestTrace`` on ``record.trace``. Only ``/v1/`` routes are traced.
- ``app.service``: ``RequestTrace.call(call)`` names the span ``{gen_ai.operation.name}
  {gen_ai.request.model}`` and sets the request attributes; ``RequestTrace.attempt(...)`` runs
  one upstream attempt inside its CLIENT span and sends that span's ``traceparent`` (and the
  client's ``tracestate``) upstream as per-request headers, so the per-key header sets stay as
  they are. A unary attempt's span ends with the attempt; a stream's is handed to the ``Relay``
  (``relay.attempt_trace``) and ends when the relay closes (``AttemptTrace.close``).
- ``app.accounting.finish``: ``RequestTrace.end(record)`` ends the request span, for a stream
  when its relay closes.

Attributes: ``gen_ai.operation.name`` (``chat`` for chat completions, the Responses API and
Anthropic Messages, ``embeddings``; an attempt on Gemini's ``generateContent`` is
``generate_content``), ``gen_ai.provider.name`` (``PROVIDER_NAMES``), request and response model,
token usage, the request's ``max_tokens`` / ``temperature`` / ``top_p`` (and the other request
parameters the conventions name, when given), response id and finish reasons when the answer is
read anyway, ``server.address`` / ``server.port`` of the upstream, ``error.type`` (an attempt: the
``Outcome``, e.g. ``rate_limited``, ``timeout``, ``server_error``; a request: the gateway's error
code, else the HTTP status), and ``coo_llm.*`` (provider id, masked key label, attempt number,
cache result, queue job, cost, masked client id). Never a provider or client key: keys appear only
as their masked labels, and captured content passes through the service's ``Redactor``.

Content (``capture_content``): the request span gets ``gen_ai.input.messages`` and
``gen_ai.output.messages`` as JSON strings in the conventions' message schema (role and parts);
images and files are recorded by type only.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit

import orjson
from loguru import logger

from adapters import ChatResult

if TYPE_CHECKING:
    from app.accounting import RequestRecord

# gen_ai.provider.name per provider type. ``custom`` is any OpenAI-compatible server: the
# conventions let an OpenAI-API client report ``openai`` and leave the actual system to
# ``server.address`` and the model names; ``coo_llm.provider.type`` says ``custom``.
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini", "custom": "openai"}
# gen_ai.operation.name per front door (``app.endpoints``): the Responses API and Anthropic
# Messages are chat operations in the conventions (which add ``openai.api.type`` for Responses).
OPERATIONS = {"chat": "chat", "embeddings": "embeddings", "responses": "chat", "messages": "chat"}
DEFAULT_PORTS = {"https": 443, "http": 80}
TRACES_PATH = "/v1/traces"
_ERROR_CODE = re.compile(r"^[a-z0-9_]{1,64}$")
MAX_MODEL_NAME = 256


def endpoint_from(settings, environ: Mapping[str, str] = os.environ) -> str | None:
    """The OTLP/HTTP traces URL to export to, "" to let the exporter read the standard
    environment variables, or None: telemetry is off."""
    if str(environ.get("OTEL_SDK_DISABLED", "")).strip().lower() == "true":
        return None
    configured = settings.telemetry.otlp_endpoint
    if configured:
        return configured if configured.rstrip("/").endswith(TRACES_PATH) else configured.rstrip("/") + TRACES_PATH
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return ""
    return None


def open_tracer(settings, *, redactor=None, exporter=None, environ: Mapping[str, str] = os.environ) -> "Tracer | None":
    """This process's tracer, or None when telemetry is off (nothing imported then).

    ``exporter`` replaces the OTLP exporter and exports each span as it ends (tests give the
    SDK's in-memory exporter); otherwise spans leave in batches from the SDK's background thread
    (``OTEL_BSP_SCHEDULE_DELAY`` and the other ``OTEL_BSP_*`` variables apply)."""
    url = endpoint_from(settings, environ) if exporter is None else ""
    if url is None:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    config = settings.telemetry
    name = config.service_name if "service_name" in config.model_fields_set else environ.get("OTEL_SERVICE_NAME") or config.service_name
    provider = TracerProvider(
        resource=Resource.create({"service.name": name, "service.version": _version()}),
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
    )
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url or None)))
        logger.info("telemetry on: traces go to an OTLP/HTTP collector", endpoint=url or "(from OTEL_EXPORTER_OTLP_* variables)", capture_content=config.capture_content)
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracer(settings, provider, redactor=redactor)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("coo-llm")
    except PackageNotFoundError:
        return "unknown"


class Tracer:
    """The process's spans: made only by ``open_tracer`` when telemetry is on."""

    def __init__(self, settings, provider, *, redactor=None) -> None:
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation import set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer("coo-llm", _version())
        self.capture_content = settings.telemetry.capture_content
        self.redactor = redactor
        self.kinds = {p.id: p.kind for p in settings.llm_providers}  # provider id -> type
        self.propagator = TraceContextTextMapPropagator()
        self.in_context = set_span_in_context
        self.SERVER, self.CLIENT = SpanKind.SERVER, SpanKind.CLIENT
        self._servers: dict[str, tuple[str, int]] = {}  # upstream URL's scheme+host -> (address, port)

    def request(self, headers: Mapping[str, str], record: "RequestRecord", *, method: str, route: str) -> "RequestTrace":
        """Start the request span (named ``{method} {route}`` until the call is known), the child
        of the client's ``traceparent`` / ``tracestate`` in ``headers`` if it sent them."""
        parent = self.propagator.extract(headers) if "traceparent" in headers else None
        span = self.tracer.start_span(
            f"{method} {route}",
            context=parent,
            kind=self.SERVER,
            attributes={"http.request.method": method, "http.route": route, "coo_llm.request_id": record.request_id},
        )
        return RequestTrace(self, span, self.in_context(span, parent))

    def server_of(self, url: str) -> tuple[str, int]:
        """``server.address`` and ``server.port`` of an upstream URL (parsed once per host)."""
        end = url.find("/", url.find("//") + 2)
        head = url if end < 0 else url[:end]  # scheme://host[:port]: bounded by the config
        known = self._servers.get(head)
        if known is None:
            parts = urlsplit(head)
            known = self._servers[head] = (parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, 0))
        return known

    def scrub(self, text: str) -> str:
        return self.redactor.scrub(text) if self.redactor is not None else text

    def close(self) -> None:
        """Export what is left and stop the exporter (the process is stopping)."""
        try:
            self.provider.shutdown()
        except Exception as error:  # a collector that is gone must not fail the shutdown
            logger.warning("telemetry shutdown failed", error=repr(error))


class RequestTrace:
    """One request's span and what its attempts share."""

    __slots__ = ("tracer", "span", "context", "endpoint", "params", "answer", "stream_failure")

    def __init__(self, tracer: Tracer, span, context) -> None:
        self.tracer = tracer
        self.span = span
        self.context = context  # the request span as the parent of attempt spans
        self.endpoint = ""  # the front door's name, once ``call`` ran
        self.params: dict[str, Any] = {}  # gen_ai.request.* attributes, repeated on attempt spans
        self.answer: AnswerSummary | None = None  # from the answer that reached the client
        self.stream_failure = ""  # the outcome of a stream that broke after its first frame

    @property
    def wants_answer(self) -> bool:
        """A streamed answer should be assembled for this trace (to record its content)."""
        return self.tracer.capture_content and self.span.is_recording()

    def call(self, call) -> None:
        """The call is known: name the span, record the request's GenAI attributes."""
        self.endpoint = endpoint = call.endpoint.name
        operation = OPERATIONS.get(endpoint, endpoint)
        model = call.model[:MAX_MODEL_NAME]  # the client's word: any length until the catalog refuses it
        span = self.span
        span.update_name(f"{operation} {model}")
        if not span.is_recording():
            return
        self.params = request_params(call)  # on the attempt (inference) spans: each attribute costs its export
        span.set_attributes({"gen_ai.operation.name": operation, "gen_ai.request.model": model, "coo_llm.stream": call.stream})
        if self.tracer.capture_content:
            messages = input_messages(call)
            if messages is not None:
                span.set_attribute("gen_ai.input.messages", self.tracer.scrub(orjson.dumps(messages).decode()))

    async def attempt(self, attempt: Callable[..., Awaitable[Any]], plan, lease, record: "RequestRecord", timeout: float, number: int):
        """Run ``attempt(plan, lease, record, timeout)`` (``Service._send`` or ``_open``) in its
        CLIENT span, with the span's trace headers on the upstream request."""
        tracer = self.tracer
        target = lease.target
        request = plan.requests[id(target)]
        operation = attempt_operation(self.endpoint, target.kind)
        name = f"{operation} {target.model}"
        if not self.span.is_recording():  # sampled out: so is its child, which only carries the context
            span = tracer.tracer.start_span(name, context=self.context, kind=tracer.CLIENT)
            return await self._run(attempt, span, plan, lease, record, timeout)
        address, port = tracer.server_of(request.url)
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": PROVIDER_NAMES.get(target.kind, target.kind),
            "gen_ai.request.model": target.model,
            "server.address": address,
            "server.port": port,
            "coo_llm.provider.id": target.provider_id,
            "coo_llm.key": lease.key.label,
            "coo_llm.attempt": number,
            **self.params,
        }
        if target.kind == "custom":
            attributes["coo_llm.provider.type"] = "custom"  # reported as openai (``PROVIDER_NAMES``)
        if self.endpoint == "responses" and target.native_responses:
            attributes["openai.api.type"] = "responses"
        span = tracer.tracer.start_span(name, context=self.context, kind=tracer.CLIENT, attributes=attributes)
        return await self._run(attempt, span, plan, lease, record, timeout)

    async def _run(self, attempt, span, plan, lease, record: "RequestRecord", timeout: float):
        """The attempt with ``span``'s trace headers on its upstream request; ``span`` ends with
        the attempt, or with the stream's relay."""
        request = plan.requests[id(lease.target)]
        headers = {**request.headers, **trace_headers(span.get_span_context())} if request.headers else trace_headers(span.get_span_context())
        traced = replace(plan, requests={**plan.requests, id(lease.target): replace(request, headers=headers)})
        attempt_trace = AttemptTrace(self, span)
        try:
            result = await attempt(traced, lease, record, timeout)
        except BaseException as error:
            attempt_trace.fail(error)
            raise
        if isinstance(result, ChatResult):
            attempt_trace.close(record, body=result.body)
        else:  # a stream's ``Relay``: it ends the span when it closes
            result.attempt_trace = attempt_trace
        return result

    def end(self, record: "RequestRecord") -> None:
        """The request is finished (``app.accounting.finish``): final attributes, end the span."""
        span = self.span
        if span.is_recording():
            attributes: dict[str, Any] = {"http.response.status_code": record.status, "coo_llm.attempts": record.attempts}
            # Token usage, the key and the upstream's answer details are on the attempt spans only:
            # a backend summing gen_ai.usage.* over a trace must not count a request twice.
            kind = self.tracer.kinds.get(record.provider)
            if kind is not None:
                attributes["gen_ai.provider.name"] = PROVIDER_NAMES.get(kind, kind)
            if record.client:
                attributes["coo_llm.client"] = record.client
            if record.model:
                attributes["gen_ai.response.model"] = record.model
            if record.cost is not None and record.billable:
                attributes["coo_llm.cost_usd"] = record.cost
            if record.cache_result:
                attributes["coo_llm.cache"] = record.cache_result
            if record.cache_hit:
                attributes["coo_llm.cache_hit"] = True
                attributes["coo_llm.saved_usd"] = record.saved
            if record.deferred:
                attributes["coo_llm.deferred"] = record.deferred
            answer = self.answer  # its id and finish reasons are on the attempt span that got it
            if answer is not None:
                if isinstance(answer.model, str):
                    attributes["gen_ai.response.model"] = answer.model
                if answer.output is not None:
                    attributes["gen_ai.output.messages"] = self.tracer.scrub(orjson.dumps(answer.output).decode())
            error_type = self.stream_failure
            if not error_type and record.status >= 400:
                error_type = record.error if record.error and _ERROR_CODE.match(record.error) else str(record.status)
            if error_type:
                attributes["error.type"] = error_type
            span.set_attributes(attributes)
            if error_type and (record.status >= 500 or self.stream_failure):
                _set_error(span, error_type)
        span.end()


class AttemptTrace:
    """One upstream attempt's span; ended exactly once by ``close`` or ``fail``."""

    __slots__ = ("request", "span")

    def __init__(self, request: RequestTrace, span) -> None:
        self.request = request
        self.span = span

    def fail(self, error: BaseException) -> None:
        """The attempt raised: its outcome (``UpstreamError``), the client leaving, or a bug."""
        outcome = getattr(error, "outcome", None)
        if outcome is not None:
            error_type = outcome.value
            status = getattr(error, "status", None)
            if status:
                self.span.set_attribute("http.response.status_code", status)
        elif isinstance(error, asyncio.CancelledError):
            error_type = "cancelled"
        else:
            error_type = type(error).__qualname__
        self.span.set_attribute("error.type", error_type)
        _set_error(self.span, error_type)
        self.span.end()

    def close(self, record: "RequestRecord", *, body: bytes | None = None, failure=None) -> None:
        """The attempt answered (a unary answer, or a stream whose relay closed): its usage as
        settled on the record, what the answer says (``body``: the answer as the client got it,
        when there is one), and a stream's late failure."""
        span, request = self.span, self.request
        if span.is_recording():
            attributes: dict[str, Any] = {"gen_ai.usage.input_tokens": record.prompt_tokens}
            if request.endpoint != "embeddings":
                attributes["gen_ai.usage.output_tokens"] = record.completion_tokens
                if body is not None:
                    answer = request.answer = summarize_answer(request.endpoint, body, content=request.tracer.capture_content)
                    attributes.update(answer.attributes())
            span.set_attributes(attributes)
        if failure is not None:
            request.stream_failure = failure.outcome.value
            span.set_attribute("error.type", failure.outcome.value)
            _set_error(span, failure.outcome.value)
        span.end()


def trace_headers(context) -> dict[str, str]:
    """W3C Trace Context headers (version 00) naming ``context`` as the parent; the client's
    ``tracestate`` travels on unchanged."""
    if not context.is_valid:
        return {}
    headers = {"traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"}
    if context.trace_state:
        headers["tracestate"] = context.trace_state.to_header()
    return headers


def _set_error(span, description: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, description))


def attempt_operation(endpoint: str, kind: str) -> str:
    """The operation an attempt performs upstream: Gemini's generateContent is its own."""
    operation = OPERATIONS.get(endpoint, endpoint)
    return "generate_content" if operation == "chat" and kind == "gemini" else operation


# ----------------------------------------------------------------------- request attributes

_NUMBER_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
)


def request_params(call) -> dict[str, Any]:
    """The ``gen_ai.request.*`` attributes a call's body gives (front doors share these names)."""
    body = call.body
    out: dict[str, Any] = {}
    if call.endpoint.name == "embeddings":
        encoding = body.get("encoding_format")
        if isinstance(encoding, str):
            out["gen_ai.request.encoding_formats"] = [encoding]
        if _is_int(body.get("dimensions")):
            out["gen_ai.embeddings.dimension.count"] = body["dimensions"]
        return out
    if _is_int(call.max_tokens) and call.max_tokens:
        out["gen_ai.request.max_tokens"] = call.max_tokens
    for name, attribute in _NUMBER_PARAMS:
        value = body.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[attribute] = value
    if _is_int(body.get("seed")):
        out["gen_ai.request.seed"] = body["seed"]
    if _is_int(body.get("n")) and body["n"] != 1:
        out["gen_ai.request.choice.count"] = body["n"]
    stop = body.get("stop", body.get("stop_sequences"))
    if isinstance(stop, str):
        out["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        out["gen_ai.request.stop_sequences"] = stop
    return out


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ----------------------------------------------------------------------- answers

class AnswerSummary:
    """What the conventions record of an answer: id, model, finish reasons, and (content
    capture) the output messages."""

    __slots__ = ("response_id", "model", "finish_reasons", "output")

    def __init__(self, response_id=None, model=None, finish_reasons=None, output=None) -> None:
        self.response_id = response_id
        self.model = model
        self.finish_reasons = finish_reasons
        self.output = output

    def attributes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if isinstance(self.response_id, str):
            out["gen_ai.response.id"] = self.response_id
        if isinstance(self.model, str):
            out["gen_ai.response.model"] = self.model
        if self.finish_reasons:
            out["gen_ai.response.finish_reasons"] = self.finish_reasons
        return out


def summarize_answer(endpoint: str, body: bytes, *, content: bool) -> AnswerSummary:
    """Read an answer in its front door's format (chat completion, Responses ``response``,
    Anthropic ``message``); anything unreadable gives an empty summary."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return AnswerSummary()
    if not isinstance(data, dict):
        return AnswerSummary()
    if endpoint == "messages":
        messages = [anthropic_message_to_output(data)]
    elif endpoint == "responses":
        messages = [response_to_output(data)]
    else:
        choices = data.get("choices") if isinstance(data.get("choices"), list) else []
        messages = [chat_choice_to_output(choice) for choice in choices if isinstance(choice, dict)]
    reasons = [message["finish_reason"] for message in messages if isinstance(message.get("finish_reason"), str)]
    return AnswerSummary(data.get("id"), data.get("model"), reasons, messages if content else None)


def chat_choice_to_output(choice: dict) -> dict:
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    return {"role": "assistant", "parts": chat_message_parts(message), "finish_reason": choice.get("finish_reason") or ""}


def response_to_output(response: dict) -> dict:
    """A Responses ``response``: its output items as one assistant message."""
    parts: list[dict] = []
    for item in response.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for piece in item.get("content") or ():
                if isinstance(piece, dict) and isinstance(piece.get("text"), str):
                    parts.append({"type": "text", "content": piece["text"]})
        elif item.get("type") == "function_call":
            parts.append({"type": "tool_call", "id": item.get("call_id"), "name": item.get("name") or "", "arguments": _json_or_text(item.get("arguments"))})
        elif isinstance(item.get("type"), str):
            parts.append({"type": item["type"]})
    incomplete = response.get("incomplete_details")
    if isinstance(incomplete, dict) and isinstance(incomplete.get("reason"), str):
        reason = incomplete["reason"]
    elif any(part["type"] == "tool_call" for part in parts):
        reason = "tool_call"
    else:
        reason = "stop" if response.get("status") == "completed" else str(response.get("status") or "")
    return {"role": "assistant", "parts": parts, "finish_reason": reason}


def anthropic_message_to_output(message: dict) -> dict:
    parts: list[dict] = []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "content": block["text"]})
        elif kind == "tool_use":
            parts.append({"type": "tool_call", "id": block.get("id"), "name": block.get("name") or "", "arguments": block.get("input")})
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            parts.append({"type": "reasoning", "content": block["thinking"]})
        elif isinstance(kind, str):
            parts.append({"type": kind})
    return {"role": "assistant", "parts": parts, "finish_reason": message.get("stop_reason") or ""}


# ----------------------------------------------------------------------- prompts

def input_messages(call) -> list[dict] | None:
    """The call's prompt as the conventions' input messages, from the chat hub form of its
    request (the body itself for chat; the translated request for Responses and Messages);
    None for embeddings."""
    name = call.endpoint.name
    if name == "embeddings":
        return None
    if name == "chat":
        chat = call.body
    elif name == "responses":
        chat = call.extra.get("chat") or {}
    else:
        from adapters.messages import messages_request_to_chat

        chat = messages_request_to_chat(call.body, provider_kind="openai")
    return [chat_message_to_input(message) for message in chat.get("messages") or () if isinstance(message, dict)]


def chat_message_to_input(message: dict) -> dict:
    role = message.get("role") or ""
    if role == "tool":
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": message.get("tool_call_id"), "response": _text_of(message.get("content"))}]}
    return {"role": "system" if role == "developer" else role, "parts": chat_message_parts(message)}


def chat_message_parts(message: dict) -> list[dict]:
    """A chat message's content and tool calls as parts; non-text content by its type only."""
    parts: list[dict] = []
    content = message.get("content")
    if isinstance(content, str):
        if content:
            parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for piece in content:
            if not isinstance(piece, dict):
                continue
            if piece.get("type") == "text" and isinstance(piece.get("text"), str):
                parts.append({"type": "text", "content": piece["text"]})
            elif isinstance(piece.get("type"), str):
                parts.append({"type": piece["type"]})
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            function = call["function"]
            parts.append({"type": "tool_call", "id": call.get("id"), "name": function.get("name") or "", "arguments": _json_or_text(function.get("arguments"))})
    return parts


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(piece.get("text", "") for piece in content if isinstance(piece, dict) and isinstance(piece.get("text"), str))
    return ""


def _json_or_text(arguments):
    if isinstance(arguments, str):
        try:
            return orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return arguments
    return arguments
