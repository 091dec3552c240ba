"""Chat answers back to Anthropic Messages shapes, for ``/v1/messages`` clients on non-Anthropic targets.

- ``chat_completion_to_message``: a ``chat.completion`` -> an Anthropic ``message``.
- ``MessagesStream``: ``chat.completion.chunk`` dicts -> Anthropic SSE frames
  (``event: <type>\\ndata: <json>\\n\\n``), in Anthropic's order: ``message_start``, ``ping``,
  then per content block ``content_block_start`` / ``content_block_delta``\\* /
  ``content_block_stop`` (one block open at a time, indexes from 0), ``message_delta``,
  ``message_stop``.
- ``message_to_events``: a whole message (a cache hit for ``stream: true``) as that sequence.
- ``anthropic_error_body``: the ``{"type": "error", "error": {type, message}}`` envelope for a status.

What becomes what:

- ``content`` -> a ``text`` block; ``refusal`` -> a ``text`` block and ``stop_reason: refusal``;
  ``reasoning_content`` (or ``reasoning``) -> a ``thinking`` block with an empty signature
  (no hub model signs its thinking); ``tool_calls`` -> ``tool_use`` blocks whose ``input`` is
  the parsed arguments (``{}`` when empty or not a JSON object).
- ``finish_reason`` by ``finish_reason_to_anthropic_stop_reason``; a finish of ``stop`` with tool
  calls is ``tool_use`` (Messages clients run tools on that reason), and a choice that names the
  stop string it hit (vLLM's ``stop_reason``) gives ``stop_sequence``.
- Usage: ``input_tokens`` = prompt minus cached, ``cache_read_input_tokens`` = cached,
  ``cache_creation_input_tokens`` = 0 (hub providers do not report cache writes),
  ``output_tokens`` = completion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson
from loguru import logger

from adapters.base import Outcome, UpstreamError, Usage, usage_from_openai
from adapters.messages import CHARS_PER_TOKEN
from adapters.shapes import new_id

FINISH_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# HTTP status -> Anthropic error type, as Anthropic's errors page lists them. 502 and 503 are not
# on it: a bad gateway is an unexpected failure (api_error); 503 means no capacity now, which is
# what overloaded_error tells a client (retry later). Other 4xx are invalid_request_error there.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# OpenAI error types that say more than their status (OpenAI's quota error comes as a 429).
OPENAI_TYPES_TO_ERROR_TYPES = {"insufficient_quota": "billing_error"}

PING_FRAME = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_STOP_FRAME = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


# ------------------------------------------------------------------ converters


def finish_reason_to_anthropic_stop_reason(reason: str | None) -> str:
    if reason is None:
        return "end_turn"
    found = FINISH_REASONS.get(reason)
    if found is None:
        logger.warning("unknown chat finish_reason; answering stop_reason=end_turn", finish_reason=reason)
        return "end_turn"
    return found


def stop_of(finish_reason: Any, matched: Any, *, has_tool_use: bool, refused: bool) -> tuple[str, str | None]:
    """``(stop_reason, stop_sequence)`` of a finished choice (see the module docstring)."""
    reason = finish_reason_to_anthropic_stop_reason(finish_reason if isinstance(finish_reason, str) else None)
    if refused:
        return "refusal", None
    if reason == "end_turn" and has_tool_use:
        return "tool_use", None
    if reason == "end_turn" and isinstance(matched, str) and matched:
        return "stop_sequence", matched
    return reason, None


def anthropic_error_type_for_status(status: int, *, openai_type: str | None = None) -> str:
    refined = OPENAI_TYPES_TO_ERROR_TYPES.get(openai_type) if openai_type else None
    if refined:
        return refined
    found = ERROR_TYPES.get(status)
    if found:
        return found
    return "api_error" if status >= 500 else "invalid_request_error"


def anthropic_error_body(status: int, message: str, *, openai_type: str | None = None) -> dict:
    """Anthropic's error envelope for an HTTP ``status`` (``openai_type`` refines it, see above)."""
    return {"type": "error", "error": {"type": anthropic_error_type_for_status(status, openai_type=openai_type), "message": message}}


def usage_to_anthropic(usage: Usage) -> dict:
    return {
        "input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }


def tolerant_usage(data: Any) -> Usage | None:
    """An OpenAI ``usage`` object, or None when absent or not made of numbers."""
    try:
        return usage_from_openai(data)
    except (TypeError, ValueError, OverflowError):
        logger.warning("ignoring a chat usage object that is not made of numbers")
        return None


def tool_input(arguments: Any) -> dict:
    """A ``tool_use`` ``input`` from chat arguments: the JSON object, else ``{}``."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        logger.warning("tool call arguments are not JSON; answering input {}")
        return {}
    return value if isinstance(value, dict) else {}


def text_of_content(content: Any) -> str:
    """A chat message's ``content``: a string, or (some servers) a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def reasoning_of(message: dict) -> str:
    for name in ("reasoning_content", "reasoning"):
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def new_message_id() -> str:
    return new_id("msg_")


# ------------------------------------------------------------------ unary


def chat_completion_to_message(completion: dict, *, model: str, message_id: str | None = None) -> dict:
    """An Anthropic ``message`` for a ``chat.completion`` (first choice); ``model`` is echoed."""
    data = completion if isinstance(completion, dict) else {}
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = first.get("message") if isinstance(first.get("message"), dict) else {}
    content: list[dict] = []
    reasoning = reasoning_of(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = text_of_content(message.get("content"))
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else ""
    if text or refusal:
        content.append({"type": "text", "text": text or refusal})
    calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else new_id("toolu_")
        name = function.get("name") if isinstance(function.get("name"), str) else ""
        content.append({"type": "tool_use", "id": call_id, "name": name, "input": tool_input(function.get("arguments"))})
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    stop_reason, stop_sequence = stop_of(first.get("finish_reason"), first.get("stop_reason"), has_tool_use=has_tool_use, refused=bool(refusal))
    usage = tolerant_usage(data.get("usage")) or Usage()
    return {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_to_anthropic(usage),
    }


# ------------------------------------------------------------------ frames


def event_frame(payload: dict) -> bytes:
    """One Anthropic SSE frame: ``event:`` names the payload's ``type``."""
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def message_start_frame(message_id: str, model: str, usage: dict) -> bytes:
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return event_frame({"type": "message_start", "message": message})


def block_start_frame(index: int, block: dict) -> bytes:
    return event_frame({"type": "content_block_start", "index": index, "content_block": block})


def block_delta_frame(index: int, delta: dict) -> bytes:
    return event_frame({"type": "content_block_delta", "index": index, "delta": delta})


def block_stop_frame(index: int) -> bytes:
    return event_frame({"type": "content_block_stop", "index": index})


def message_delta_frame(stop_reason: str | None, stop_sequence: str | None, usage: dict) -> bytes:
    return event_frame({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence}, "usage": usage})


def error_frame(error_type: str, message: str) -> bytes:
    return event_frame({"type": "error", "error": {"type": error_type, "message": message}})


EMPTY_BLOCKS = {
    "text": {"type": "text", "text": ""},
    "thinking": {"type": "thinking", "thinking": "", "signature": ""},
}
DELTA_TYPES = {"text": ("text_delta", "text"), "thinking": ("thinking_delta", "thinking")}


def block_events(index: int, block: dict) -> list[bytes]:
    """One whole content block as start, deltas and stop (the way Anthropic streams each type)."""
    kind = block.get("type")
    if kind in DELTA_TYPES:
        delta_type, field = DELTA_TYPES[kind]
        frames = [block_start_frame(index, EMPTY_BLOCKS[kind])]
        if block.get(field):
            frames.append(block_delta_frame(index, {"type": delta_type, field: block[field]}))
        if kind == "thinking" and block.get("signature"):
            frames.append(block_delta_frame(index, {"type": "signature_delta", "signature": block["signature"]}))
    elif kind in ("tool_use", "server_tool_use"):
        frames = [block_start_frame(index, {**block, "input": {}})]
        if block.get("input"):
            frames.append(block_delta_frame(index, {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}))
    else:  # redacted_thinking, server tool results...: Anthropic sends these whole in the start event
        frames = [block_start_frame(index, block)]
    frames.append(block_stop_frame(index))
    return frames


def message_to_events(message: dict) -> list[bytes]:
    """A whole ``message`` replayed as the Anthropic event sequence (``message_start`` ... ``message_stop``)."""
    usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
    frames = [message_start_frame(message.get("id") or new_message_id(), message.get("model") or "", {**usage, "output_tokens": 0}), PING_FRAME]
    for index, block in enumerate(message.get("content") or []):
        if isinstance(block, dict):
            frames.extend(block_events(index, block))
    frames.append(message_delta_frame(message.get("stop_reason"), message.get("stop_sequence"), usage))
    frames.append(MESSAGE_STOP_FRAME)
    return frames


# ------------------------------------------------------------------ streams


@dataclass(slots=True)
class StreamBlock:
    """One content block of the message being streamed; text arrives in pieces."""

    kind: str  # text | thinking | tool_use
    pieces: list[str]
    tool_id: str = ""
    tool_name: str = ""

    def as_block(self) -> dict:
        joined = "".join(self.pieces)
        if self.kind == "tool_use":
            return {"type": "tool_use", "id": self.tool_id, "name": self.tool_name, "input": tool_input(joined)}
        if self.kind == "thinking":
            return {"type": "thinking", "thinking": joined, "signature": ""}
        return {"type": "text", "text": joined}


class MessagesStream:
    """``chat.completion.chunk`` dicts -> Anthropic SSE frames, for one streamed answer.

    ``feed(chunk)`` returns the frames for one parsed chunk; the first call sends
    ``message_start`` (its usage: the chunk's real input tokens if it carries usage, else
    ``input_tokens_estimate``) and a ``ping``. ``finish(usage)`` closes the open block and sends
    ``message_delta`` (stop reason, real usage: ``usage``, else the last usage a chunk carried,
    else output tokens estimated at four characters a token) and ``message_stop``.
    ``fail(error_type, message)`` sends an ``error`` event instead and ends the stream.
    ``message`` is the message assembled so far.

    Blocks are sent one at a time, as Anthropic does: a new kind of delta, or another tool call,
    closes the open block. A tool call whose arguments continue after another block began cannot
    be expressed, so it raises ``UpstreamError`` (no known upstream interleaves them).
    """

    def __init__(self, *, model: str, message_id: str | None = None, input_tokens_estimate: int) -> None:
        self.model = model
        self.message_id = message_id or new_message_id()
        self.input_tokens_estimate = max(0, int(input_tokens_estimate))
        self.usage: Usage | None = None
        self.started = False
        self.done = False
        self.blocks: list[StreamBlock] = []
        self._open: int | None = None  # index of the open block in ``blocks``
        self._tool_blocks: dict[int, int] = {}  # chat tool_calls index -> block index
        self._finish_reason: str | None = None
        self._matched: str | None = None
        self._refused = False
        self._stop: tuple[str | None, str | None] = (None, None)
        self._final_usage: dict | None = None

    # -------------------------------------------------------------- the message

    @property
    def message(self) -> dict:
        stop_reason, stop_sequence = self._stop
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [block.as_block() for block in self.blocks],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": self._final_usage or self._start_usage(),
        }

    def _start_usage(self) -> dict:
        if self.usage is not None:
            return {**usage_to_anthropic(self.usage), "output_tokens": 0}
        return {"input_tokens": self.input_tokens_estimate, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}

    # -------------------------------------------------------------- feeding

    def feed(self, chunk: dict) -> list[bytes]:
        if self.done or not isinstance(chunk, dict):
            return []
        if chunk.get("usage") is not None:
            self.usage = tolerant_usage(chunk["usage"]) or self.usage
        frames = [] if self.started else self._start()
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            reasoning = reasoning_of(delta)
            if reasoning:
                frames.extend(self._text("thinking", reasoning))
            content = text_of_content(delta.get("content"))
            if content:
                frames.extend(self._text("text", content))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self._refused = True
                frames.extend(self._text("text", refusal))
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, dict):
                    frames.extend(self._tool_delta(call))
            if isinstance(choice.get("finish_reason"), str):
                self._finish_reason = choice["finish_reason"]
                self._matched = choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else None
        return frames

    def finish(self, usage: Usage | None = None) -> list[bytes]:
        if self.done:
            return []
        frames = [] if self.started else self._start()
        frames.extend(self._close())
        self.usage = usage or self.usage
        if self.usage is not None:
            self._final_usage = delta_usage = usage_to_anthropic(self.usage)
        else:
            # No real count: estimate the output; the input stays message_start's estimate.
            chars = sum(len(piece) for block in self.blocks for piece in block.pieces)
            delta_usage = {"output_tokens": math.ceil(chars / CHARS_PER_TOKEN)}
            self._final_usage = {**self._start_usage(), **delta_usage}
        has_tool_use = any(block.kind == "tool_use" for block in self.blocks)
        self._stop = stop_of(self._finish_reason, self._matched, has_tool_use=has_tool_use, refused=self._refused)
        self.done = True
        return [*frames, message_delta_frame(*self._stop, delta_usage), MESSAGE_STOP_FRAME]

    def fail(self, error_type: str, message: str) -> list[bytes]:
        """An ``error`` event (Anthropic's mid-stream failure); the stream is over after it."""
        if self.done:
            return []
        self.done = True
        return [error_frame(error_type, message)]

    # -------------------------------------------------------------- blocks

    def _start(self) -> list[bytes]:
        self.started = True
        return [message_start_frame(self.message_id, self.model, self._start_usage()), PING_FRAME]

    def _open_block(self, block: StreamBlock, start: dict) -> list[bytes]:
        frames = self._close()
        self.blocks.append(block)
        self._open = len(self.blocks) - 1
        frames.append(block_start_frame(self._open, start))
        return frames

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [block_stop_frame(index)]

    def _text(self, kind: str, text: str) -> list[bytes]:
        frames = []
        if self._open is None or self.blocks[self._open].kind != kind:
            frames = self._open_block(StreamBlock(kind, []), EMPTY_BLOCKS[kind])
        self.blocks[self._open].pieces.append(text)
        delta_type, field = DELTA_TYPES[kind]
        frames.append(block_delta_frame(self._open, {"type": delta_type, field: text}))
        return frames

    def _tool_delta(self, call: dict) -> list[bytes]:
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        fragment = function.get("arguments") if isinstance(function.get("arguments"), str) else ""
        position = call.get("index")
        if not isinstance(position, int) or isinstance(position, bool):
            # Without an index, a new id starts a new call; anything else continues the last one.
            known_ids = {self.blocks[i].tool_id for i in self._tool_blocks.values()}
            new = isinstance(call.get("id"), str) and call["id"] not in known_ids
            position = len(self._tool_blocks) if new or not self._tool_blocks else max(self._tool_blocks)
        frames: list[bytes] = []
        if position not in self._tool_blocks:
            call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else new_id("toolu_")
            name = function.get("name") if isinstance(function.get("name"), str) else ""
            block = StreamBlock("tool_use", [], call_id, name)
            frames = self._open_block(block, {"type": "tool_use", "id": call_id, "name": name, "input": {}})
            self._tool_blocks[position] = self._open
        elif self._tool_blocks[position] != self._open:
            if not fragment:
                return []
            raise UpstreamError(
                Outcome.SERVER_ERROR,
                None,
                "the upstream interleaved the arguments of parallel tool calls, which an Anthropic stream cannot carry",
            )
        if fragment:
            index = self._tool_blocks[position]
            self.blocks[index].pieces.append(fragment)
            frames.append(block_delta_frame(index, {"type": "input_json_delta", "partial_json": fragment}))
        return frames
