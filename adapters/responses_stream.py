"""Responses API streams: hub chunks to Responses events, stored responses replayed as events,
and native upstream Responses streams passed through.

Every event is an SSE frame ``event: <type>\\ndata: <json>\\n\\n`` whose JSON carries ``type``
and a ``sequence_number`` counting from 0. One response streams as OpenAI streams it:

1. ``response.created``, ``response.in_progress`` (the response with ``output: []``);
2. per output item, in order: ``response.output_item.added``; for each content part of a
   message or reasoning item ``response.content_part.added``, its deltas
   (``response.output_text.delta`` / ``response.refusal.delta`` /
   ``response.reasoning_text.delta``), its ``.done`` and ``response.content_part.done``; for a
   function call ``response.function_call_arguments.delta`` then ``.done``; then
   ``response.output_item.done``. An item closes when the next one starts or at the end;
3. ``response.completed`` (or ``response.incomplete`` / ``response.failed``) with the full
   response.

``_Events`` writes every event, so the live translation (``ResponsesStream``) and the replay of
a stored response (``response_to_events``) cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from loguru import logger

from adapters.base import Outcome, SSEEvent, UpstreamError, Usage
from adapters.responses_objects import (
    chat_finish_reason_to_status,
    chat_logprobs_to_response,
    chat_reasoning_text,
    chat_reasoning_tokens,
    chat_usage_to_response_usage,
    function_call_item,
    message_item,
    new_item_id,
    output_text_part,
    response_object,
    read_response_usage,
    response_usage,
    usage_to_response_usage,
)

# content part type -> (event prefix, the part's text field)
_PART_EVENTS = {
    "output_text": ("response.output_text", "text"),
    "refusal": ("response.refusal", "refusal"),
    "reasoning_text": ("response.reasoning_text", "text"),
}
_TERMINAL = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}

# ResponseErrorCode: the codes a failed response may carry (OpenAI's enum)
_ERROR_CODES = frozenset(
    "server_error rate_limit_exceeded invalid_prompt data_residency_mismatch bio_policy vector_store_timeout invalid_image "
    "invalid_image_format invalid_base64_image invalid_image_url image_too_large image_too_small image_parse_error "
    "image_content_policy_violation invalid_image_mode image_file_too_large unsupported_image_media_type empty_image_file "
    "failed_to_download_image image_file_not_found".split()
)


def _event_logprobs(logprobs: list[dict]) -> list[dict]:
    """``output_text`` logprobs as the delta events carry them (no ``bytes``)."""
    return [
        {
            "token": entry.get("token", ""),
            "logprob": entry.get("logprob", 0.0),
            "top_logprobs": [{"token": t.get("token", ""), "logprob": t.get("logprob", 0.0)} for t in entry.get("top_logprobs") or ()],
        }
        for entry in logprobs
        if isinstance(entry, dict)
    ]


@dataclass(slots=True)
class _Events:
    """Numbers and frames the events of one response stream."""

    sequence: int = 0

    def emit(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def item_added(self, index: int, item: dict) -> bytes:
        return self.emit("response.output_item.added", output_index=index, item=item)

    def item_done(self, index: int, item: dict) -> list[bytes]:
        frames = []
        if item.get("type") == "function_call":
            frames.append(
                self.emit(
                    "response.function_call_arguments.done",
                    item_id=item.get("id"),
                    output_index=index,
                    name=item.get("name"),
                    arguments=item.get("arguments", ""),
                )
            )
        frames.append(self.emit("response.output_item.done", output_index=index, item=item))
        return frames

    def arguments_delta(self, index: int, item_id: str, delta: str) -> bytes:
        return self.emit("response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=delta)

    def part_added(self, index: int, item_id: str, content_index: int, part: dict) -> bytes:
        return self.emit("response.content_part.added", item_id=item_id, output_index=index, content_index=content_index, part=part)

    def part_delta(self, index: int, item_id: str, content_index: int, kind: str, delta: str, logprobs: list[dict]) -> bytes:
        fields: dict[str, Any] = {"item_id": item_id, "output_index": index, "content_index": content_index, "delta": delta}
        if kind == "output_text":
            fields["logprobs"] = _event_logprobs(logprobs)
        return self.emit(_PART_EVENTS[kind][0] + ".delta", **fields)

    def part_done(self, index: int, item_id: str, content_index: int, part: dict) -> list[bytes]:
        frames = []
        kind = part.get("type")
        if kind in _PART_EVENTS:
            prefix, text_field = _PART_EVENTS[kind]
            fields: dict[str, Any] = {"item_id": item_id, "output_index": index, "content_index": content_index, text_field: part.get(text_field, "")}
            if kind == "output_text":
                fields["logprobs"] = _event_logprobs(part.get("logprobs") or [])
            frames.append(self.emit(prefix + ".done", **fields))
        frames.append(self.emit("response.content_part.done", item_id=item_id, output_index=index, content_index=content_index, part=part))
        return frames


def _empty_part(kind: str) -> dict:
    if kind == "output_text":
        return output_text_part()
    return {"type": kind, _PART_EVENTS[kind][1]: ""}


def error_envelope_to_response_error(envelope: Any) -> dict:
    """An OpenAI error envelope as a failed response's ``error`` (``{code, message}``)."""
    error = envelope.get("error") if isinstance(envelope, dict) else None
    error = error if isinstance(error, dict) else {}
    message = error.get("message") if isinstance(error.get("message"), str) else "The upstream failed."
    code = error.get("code")
    if code not in _ERROR_CODES:
        code = "rate_limit_exceeded" if "rate_limit" in f"{code} {error.get('type')}" else "server_error"
    return {"code": code, "message": message}


# ------------------------------------------------------------------ chat chunks -> events


@dataclass(slots=True)
class _Open:
    """The output item receiving deltas, and its content part receiving text (if any)."""

    index: int
    item: dict
    part: dict | None = None
    content_index: int = -1


@dataclass(slots=True)
class ResponsesStream:
    """Translates one hub chat stream (parsed ``chat.completion.chunk`` dicts) into Responses events.

    ``start()`` first, then ``feed(chunk)`` per chunk, then ``finish(usage)`` or ``fail(envelope)``
    once; after either, ``done`` is true and ``response`` is the final response (to store).
    Only choice 0 is read (a Responses request never asks for more). Usage comes from
    ``finish(usage)`` when given, else from the chunk that carried ``usage``; reasoning tokens are
    read from that chunk either way (``Usage`` has no field for them).
    """

    request: dict
    response_id: str
    created_at: int
    previous_response_id: str | None = None
    model: str = field(default="", init=False)  # the hub's model once a chunk names it; the request's until then
    done: bool = field(default=False, init=False)
    _events: _Events = field(default_factory=_Events, init=False)
    _output: list[dict] = field(default_factory=list, init=False)
    _open: _Open | None = field(default=None, init=False)
    _calls: dict[int, int] = field(default_factory=dict, init=False)  # chat tool_calls index -> output index
    _finish_reason: str | None = field(default=None, init=False)
    _chunk_usage: dict | None = field(default=None, init=False)
    _service_tier: str | None = field(default=None, init=False)
    _final: dict | None = field(default=None, init=False)

    @property
    def response(self) -> dict:
        return self._final if self._final is not None else self._snapshot("in_progress")

    def _snapshot(self, status: str, *, usage: dict | None = None, reason: str | None = None, error: dict | None = None) -> dict:
        return response_object(
            request=self.request,
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model or self.request.get("model") or "",
            status=status,
            output=self._output,
            usage=usage,
            incomplete_reason=reason,
            error=error,
            previous_response_id=self.previous_response_id,
            service_tier=self._service_tier,
        )

    def start(self) -> list[bytes]:
        shell = self._snapshot("in_progress")
        return [self._events.emit("response.created", response=shell), self._events.emit("response.in_progress", response=shell)]

    def feed(self, chunk: dict) -> list[bytes]:
        if self.done or not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        if isinstance(chunk.get("service_tier"), str):
            self._service_tier = chunk["service_tier"]
        if isinstance(chunk.get("usage"), dict):
            self._chunk_usage = chunk["usage"]
        frames: list[bytes] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            reasoning = chat_reasoning_text(delta)
            if reasoning:
                frames += self._append("reasoning", "reasoning_text", reasoning, [])
            if isinstance(delta.get("content"), str) and delta["content"]:
                logprobs = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}
                frames += self._append("message", "output_text", delta["content"], chat_logprobs_to_response(logprobs.get("content")))
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                frames += self._append("message", "refusal", delta["refusal"], [])
            for call in delta.get("tool_calls") or ():
                frames += self._tool_call(call)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return frames

    def finish(self, usage: Usage | None = None) -> list[bytes]:
        if self.done:
            return []
        status, reason = chat_finish_reason_to_status(self._finish_reason)
        frames = self._close("incomplete" if status == "incomplete" else "completed")
        if usage is not None:
            usage_out = usage_to_response_usage(usage, reasoning_tokens=chat_reasoning_tokens(self._chunk_usage))
        else:
            usage_out = chat_usage_to_response_usage(self._chunk_usage)
        self._final = self._snapshot(status, usage=usage_out, reason=reason)
        self.done = True
        frames.append(self._events.emit(_TERMINAL[status], response=self._final))
        return frames

    def fail(self, envelope: dict) -> list[bytes]:
        """``response.failed`` for an upstream failure mid-stream (``envelope``: an OpenAI error)."""
        if self.done:
            return []
        if self._open is not None:  # cut short: it never gets its .done events
            self._open.item["status"] = "incomplete"
            self._open = None
        self._final = self._snapshot("failed", error=error_envelope_to_response_error(envelope))
        self.done = True
        return [self._events.emit("response.failed", response=self._final)]

    # -------------------------------------------------------------- items

    def _add(self, item: dict) -> bytes:
        self._open = _Open(len(self._output), item)
        self._output.append(item)
        return self._events.item_added(self._open.index, item)

    def _close_part(self) -> list[bytes]:
        opened = self._open
        if opened is None or opened.part is None:
            return []
        frames = self._events.part_done(opened.index, opened.item["id"], opened.content_index, opened.part)
        opened.part = None
        return frames

    def _close(self, status: str) -> list[bytes]:
        if self._open is None:
            return []
        frames = self._close_part()
        self._open.item["status"] = status
        frames += self._events.item_done(self._open.index, self._open.item)
        self._open = None
        return frames

    def _append(self, item_kind: str, part_kind: str, delta: str, logprobs: list[dict]) -> list[bytes]:
        frames: list[bytes] = []
        if self._open is None or self._open.item["type"] != item_kind:
            frames += self._close("completed")
            if item_kind == "message":
                item = message_item(new_item_id("msg"), [], "in_progress")
            else:
                item = {"id": new_item_id("rs"), "type": "reasoning", "status": "in_progress", "summary": [], "content": []}
            frames.append(self._add(item))
        opened = self._open
        if opened.part is None or opened.part["type"] != part_kind:
            frames += self._close_part()
            opened.part = _empty_part(part_kind)
            opened.content_index = len(opened.item["content"])
            frames.append(self._events.part_added(opened.index, opened.item["id"], opened.content_index, opened.part))
            opened.item["content"].append(opened.part)
        opened.part[_PART_EVENTS[part_kind][1]] += delta
        if part_kind == "output_text":
            opened.part["logprobs"].extend(logprobs)
        frames.append(self._events.part_delta(opened.index, opened.item["id"], opened.content_index, part_kind, delta, logprobs))
        return frames

    def _tool_call(self, call: Any) -> list[bytes]:
        if not isinstance(call, dict):
            return []
        number = call.get("index") if isinstance(call.get("index"), int) else 0
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        frames: list[bytes] = []
        position = self._calls.get(number)
        if position is None:
            frames += self._close("completed")
            item = function_call_item(new_item_id("fc"), call.get("id") or new_item_id("call"), function.get("name") or "", "", "in_progress")
            frames.append(self._add(item))
            position = self._calls[number] = self._open.index
        item = self._output[position]
        if not item["name"] and isinstance(function.get("name"), str):
            item["name"] = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item["arguments"] += arguments
            if self._open is not None and self._open.index == position:
                frames.append(self._events.arguments_delta(position, item["id"], arguments))
            else:
                # the hub interleaved two calls: the events of this one are closed already
                logger.warning("tool call arguments arrived after the call's item closed; only the final response has them", call_index=number)
        return frames


# ------------------------------------------------------------------ stored response -> events


def _replay_item(events: _Events, index: int, item: dict) -> list[bytes]:
    kind = item.get("type")
    item_id = item.get("id", "")
    if kind == "function_call":
        frames = [events.item_added(index, {**item, "status": "in_progress", "arguments": ""})]
        if item.get("arguments"):
            frames.append(events.arguments_delta(index, item_id, item["arguments"]))
        return frames + events.item_done(index, item)
    if kind not in ("message", "reasoning"):
        return [events.item_added(index, item), *events.item_done(index, item)]

    skeleton: dict = {**item, "status": "in_progress", "content": []}
    if kind == "reasoning":
        skeleton["summary"] = []
    frames = [events.item_added(index, skeleton)]
    for summary_index, part in enumerate(item.get("summary") or () if kind == "reasoning" else ()):
        where = {"item_id": item_id, "output_index": index, "summary_index": summary_index}
        frames.append(events.emit("response.reasoning_summary_part.added", **where, part={**part, "text": ""}))
        frames.append(events.emit("response.reasoning_summary_text.delta", **where, delta=part.get("text", "")))
        frames.append(events.emit("response.reasoning_summary_text.done", **where, text=part.get("text", "")))
        frames.append(events.emit("response.reasoning_summary_part.done", **where, part=part))
    for content_index, part in enumerate(item.get("content") or ()):
        part_kind = part.get("type")
        if part_kind not in _PART_EVENTS:
            frames.append(events.part_added(index, item_id, content_index, part))
            frames += events.part_done(index, item_id, content_index, part)
            continue
        frames.append(events.part_added(index, item_id, content_index, {**part, **_empty_part(part_kind)}))
        text = part.get(_PART_EVENTS[part_kind][1])
        if text:
            frames.append(events.part_delta(index, item_id, content_index, part_kind, text, part.get("logprobs") or []))
        frames += events.part_done(index, item_id, content_index, part)
    return frames + events.item_done(index, item)


def response_to_events(response: dict) -> list[bytes]:
    """A stored (or cached) ``response`` as the event sequence a live stream of it would have been:
    each item replayed whole (one delta per content part), ending with the terminal event that
    matches its ``status`` and carrying ``response`` unchanged."""
    events = _Events()
    shell = {**response, "status": "in_progress", "output": [], "completed_at": None, "incomplete_details": None, "error": None}
    shell.pop("usage", None)
    frames = [events.emit("response.created", response=shell), events.emit("response.in_progress", response=shell)]
    for index, item in enumerate(response.get("output") or ()):
        if isinstance(item, dict):
            frames += _replay_item(events, index, item)
    terminal = _TERMINAL.get(response.get("status"))
    if terminal is None:
        logger.warning("replaying a response that never finished as completed", status=response.get("status"))
        terminal = "response.completed"
    frames.append(events.emit(terminal, response=response))
    return frames


# ------------------------------------------------------------------ native pass-through


def _frame(event: SSEEvent, name: str | None) -> bytes:
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"".join(b"data: " + line + b"\n" for line in event.data.split(b"\n")) + b"\n"


@dataclass(slots=True)
class NativeResponsesStream:
    """Relays an upstream's own Responses stream (an OpenAI-type provider that speaks
    ``/v1/responses``), event by event, as the upstream wrote it.

    ``feed`` returns the event's frame and records usage and the final response from
    ``response.completed`` / ``response.incomplete``; an ``error`` or ``response.failed`` event,
    or data that is not a JSON object, raises ``UpstreamError(Outcome.SERVER_ERROR)`` carrying an
    OpenAI error envelope. ``finish`` raises the same when the stream ended before its terminal
    event. Same surface as ``StreamTranslator`` (``usage``, ``done``, ``feed``, ``finish``).
    """

    usage: Usage | None = None
    response: dict | None = None  # the final response object, once seen
    done: bool = False
    usage_unreadable: bool = False

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data.strip()
        if self.done or not data or data == b"[DONE]":
            return []
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise UpstreamError(Outcome.SERVER_ERROR, 200, f"malformed Responses stream event: {event.data[:200]!r}")
        kind = payload.get("type") if isinstance(payload.get("type"), str) else event.event
        if kind == "error":
            raise self._failure(payload, "upstream stream error")
        response = payload.get("response") if isinstance(payload.get("response"), dict) else None
        if kind == "response.failed":
            raise self._failure((response or {}).get("error"), "the upstream response failed")
        if kind in ("response.completed", "response.incomplete"):
            self.response = response
            self.usage, self.usage_unreadable = read_response_usage(response)
            self.done = True
        return [_frame(event, event.event or kind)]

    def finish(self) -> list[bytes]:
        if not self.done:
            raise UpstreamError(Outcome.SERVER_ERROR, 200, "the upstream Responses stream ended before response.completed")
        return []

    @staticmethod
    def _failure(error: Any, fallback: str) -> UpstreamError:
        error = error if isinstance(error, dict) else {}
        message = error.get("message") if isinstance(error.get("message"), str) and error["message"] else fallback
        envelope = {"error": {"message": message, "type": "server_error", "param": error.get("param"), "code": error.get("code")}}
        return UpstreamError(Outcome.SERVER_ERROR, None, message, None, envelope)
