"""Anthropic Messages API (``type: anthropic`` / ``claude``) behind the OpenAI Chat Completions API.

Request (``build_chat``):

- ``system`` and ``developer`` messages, wherever they stand, join the top-level ``system``.
- ``user`` content parts become text and image blocks (data URLs as ``base64`` sources, http(s)
  URLs as ``url`` sources); ``assistant`` text and ``tool_calls`` become text and ``tool_use``
  blocks; ``tool`` messages become ``tool_result`` blocks in a user turn. Consecutive turns of
  the same role are merged, as Anthropic requires alternating roles.
- Parameters follow ``ANTHROPIC_PARAMS``; ``max_tokens`` (required by Anthropic) falls back to
  the provider's ``default_max_tokens``, then ``limits.max_tokens``, then 4096.
- ``response_format`` (``json_object`` / ``json_schema``) is emulated with one extra tool,
  ``respond_with_json``, whose ``input_schema`` is the requested schema: with no client tools
  the model is forced to call it; with client tools it must call one of them or it. Its input
  comes back to the client as the message ``content`` (a JSON string), finish reason ``stop``.

Response and stream: text blocks join into ``content``; ``tool_use`` blocks become ``tool_calls``
with their arguments as a JSON string; ``stop_reason`` maps by
``anthropic_stop_reason_to_finish_reason``; ``prompt_tokens`` counts cache reads and writes,
and ``prompt_tokens_details.cached_tokens`` the reads. Errors map by ``ANTHROPIC_ERRORS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping

import orjson
from loguru import logger

from adapters.base import (
    Outcome,
    outcome_for_status,
    AdapterError,
    ChatResult,
    SSEEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    UnreadableUsage,
    count_in,
    error_envelope,
    load_json,
    load_json_event,
    parse_retry_after,
    read_usage,
)
from adapters.params import OPENAI_ONLY, Handling, Param, apply_params, as_list, by_code, reject
from adapters.shapes import (
    ChunkHead,
    Image,
    choice,
    completion,
    content_parts,
    function_tools,
    named_tool_choice,
    new_id,
    now,
    requested_max_tokens,
    text_of,
    tool_call,
    tool_call_arguments,
    usage_object,
)
from adapters.sse import DONE_FRAME

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # for targets not built from config; app.config.REQUIRED_MAX_TOKENS gives the same
RESPONSE_TOOL = "respond_with_json"

ANTHROPIC_PARAMS: dict[str, Param] = {
    **OPENAI_ONLY,
    "messages": by_code("system/developer -> system; tool calls -> tool_use; tool results -> tool_result; images -> image blocks"),
    "max_tokens": by_code("max_tokens (required upstream: default_max_tokens when absent)"),
    "max_completion_tokens": by_code("max_tokens (required upstream: default_max_tokens when absent)"),
    "temperature": Param("temperature", note="Anthropic accepts 0-1"),
    "top_p": Param("top_p"),
    "top_k": Param("top_k", note="not an OpenAI parameter; passed to providers that have it"),
    "stop": Param("stop_sequences", as_list),
    "user": Param("metadata.user_id"),
    "safety_identifier": Param("metadata.user_id"),
    "tools": by_code("{name, description, input_schema}"),
    "tool_choice": by_code("auto -> auto, required -> any, none -> none, a function -> {type: tool, name}"),
    "parallel_tool_calls": by_code("false -> tool_choice.disable_parallel_tool_use"),
    "response_format": by_code("a forced respond_with_json tool whose input is the answer", Handling.EMULATED),
    "n": reject("it returns one choice per request", 1),
    "seed": reject("it has no seed"),
    "frequency_penalty": reject("it has no frequency penalty", 0, 0.0),
    "presence_penalty": reject("it has no presence penalty", 0, 0.0),
    "reasoning_effort": reject("extended thinking is not translated"),
}

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error type -> (outcome, OpenAI error type, OpenAI error code)
ANTHROPIC_ERRORS: dict[str, tuple[Outcome, str, str | None]] = {
    "invalid_request_error": (Outcome.CLIENT_ERROR, "invalid_request_error", None),
    "not_found_error": (Outcome.CLIENT_ERROR, "invalid_request_error", "not_found"),
    "request_too_large": (Outcome.CLIENT_ERROR, "invalid_request_error", "request_too_large"),
    "authentication_error": (Outcome.AUTH, "authentication_error", "invalid_api_key"),
    "permission_error": (Outcome.AUTH, "permission_error", None),
    "billing_error": (Outcome.AUTH, "insufficient_quota", "insufficient_quota"),
    "rate_limit_error": (Outcome.RATE_LIMITED, "rate_limit_error", "rate_limit_exceeded"),
    "api_error": (Outcome.SERVER_ERROR, "server_error", None),
    "timeout_error": (Outcome.TIMEOUT, "server_error", "timeout"),
    "overloaded_error": (Outcome.OVERLOADED, "server_error", "overloaded"),
}

_SILENT_BLOCKS = frozenset({"thinking", "redacted_thinking"})


# ------------------------------------------------------------------ converters


def anthropic_stop_reason_to_finish_reason(reason: str | None) -> str:
    if reason is None:
        return "stop"
    found = STOP_REASONS.get(reason)
    if found is None:
        logger.warning("unknown Anthropic stop_reason; answering finish_reason=stop", stop_reason=reason)
        return "stop"
    return found


def anthropic_usage_to_usage(usage: Any) -> Usage | None:
    """Anthropic counts cache reads and writes apart from ``input_tokens``; OpenAI's prompt includes them.

    None when absent; ``UnreadableUsage`` (see ``adapters.base.read_usage``) for a count that is
    not one, or a usage that is not an object."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise UnreadableUsage("usage")
    read = count_in(usage, "cache_read_input_tokens")
    written = count_in(usage, "cache_creation_input_tokens")
    return Usage(count_in(usage, "input_tokens") + read + written, count_in(usage, "output_tokens"), read)


def image_to_anthropic_block(image: Image) -> dict:
    if image.url is not None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    return {"type": "image", "source": {"type": "base64", "media_type": image.mime, "data": image.data}}


def openai_messages_to_anthropic(messages: list) -> tuple[str | None, list[dict]]:
    """``(system, messages)`` for the Messages API (see the module docstring)."""
    system: list[str] = []
    turns: list[dict] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"), f"{where}.content")
            if text:
                system.append(text)
            continue
        if role == "user":
            upstream_role = "user"
            blocks = [
                image_to_anthropic_block(piece) if isinstance(piece, Image) else {"type": "text", "text": piece}
                for piece in content_parts(message.get("content"), f"{where}.content")
            ]
        elif role == "assistant":
            upstream_role = "assistant"
            text = text_of(message.get("content"), f"{where}.content")
            blocks = [{"type": "text", "text": text}] if text else []
            for position, call in enumerate(message.get("tool_calls") or []):
                call_id, name, arguments = tool_call_arguments(call, f"{where}.tool_calls[{position}]")
                blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
        elif role == "tool":
            upstream_role = "user"
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise AdapterError(f"{where}.tool_call_id is required.", param=f"{where}.tool_call_id")
            result: dict = {"type": "tool_result", "tool_use_id": call_id}
            text = text_of(message.get("content"), f"{where}.content")
            if text:
                result["content"] = text
            blocks = [result]
        else:
            raise AdapterError(f"{where}: role {role!r} cannot be sent to Anthropic.", param=f"{where}.role")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == upstream_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": upstream_role, "content": blocks})
    return ("\n\n".join(system) or None), turns


def openai_tools_to_anthropic(tools: Any) -> list[dict]:
    out = []
    for function in function_tools(tools):
        if function["name"] == RESPONSE_TOOL:
            raise AdapterError(f"The tool name {RESPONSE_TOOL!r} is reserved by the gateway for response_format.", param="tools")
        tool = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
        if function.get("description"):
            tool["description"] = function["description"]
        out.append(tool)
    return out


def openai_tool_choice_to_anthropic(choice: Any) -> dict | None:
    if choice is None:
        return None
    simple = {"auto": "auto", "required": "any", "none": "none"}
    if isinstance(choice, str):
        if choice not in simple:
            raise AdapterError("'tool_choice' must be none, auto, required or a named function.", param="tool_choice", code="invalid_value")
        return {"type": simple[choice]}
    return {"type": "tool", "name": named_tool_choice(choice)}


def openai_response_format_to_tool(response_format: Any) -> dict | None:
    """The ``respond_with_json`` tool emulating ``response_format``, or None for plain text."""
    if not isinstance(response_format, dict):
        raise AdapterError("'response_format' must be an object.", param="response_format", code="invalid_type")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        schema: Any = {"type": "object"}
        description = "Give your whole answer as the input of this tool: one JSON object."
    elif kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise AdapterError("'response_format.json_schema' must be an object.", param="response_format.json_schema", code="invalid_type")
        schema = spec.get("schema") or {"type": "object"}
        description = spec.get("description") or "Give your whole answer as the input of this tool, matching its schema."
    else:
        raise AdapterError("'response_format.type' must be text, json_object or json_schema.", param="response_format.type", code="invalid_value")
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise AdapterError(
            "Anthropic can only be asked for a JSON object: the response_format schema must have type object.",
            param="response_format.json_schema.schema",
        )
    return {"name": RESPONSE_TOOL, "description": description, "input_schema": schema}


def tool_choice_with_response_tool(choice: dict | None, has_client_tools: bool) -> dict:
    """Under ``response_format``: the model answers through ``respond_with_json`` or a client tool."""
    if not has_client_tools or (choice is not None and choice["type"] == "none"):
        return {"type": "tool", "name": RESPONSE_TOOL}
    if choice is not None and choice["type"] == "tool":
        return choice
    return {"type": "any"}


@lru_cache(maxsize=64)
def messages_url(base_url: str) -> str:
    """``base_url`` works with or without ``/v1``."""
    base = base_url.rstrip("/")
    return base.removesuffix("/v1") + "/v1/messages"


def anthropic_error(data: Any, status: int | None, headers: Mapping[str, str] | None = None, text: str = "") -> UpstreamError:
    """An ``UpstreamError`` from Anthropic's ``{type: error, error: {type, message}}`` envelope
    (an ``error`` that is a bare string is its message; odd field types, see ``error_envelope``)."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        error = {"message": error}
    error = error if isinstance(error, dict) else {}
    error_type = error.get("type")
    known = ANTHROPIC_ERRORS.get(error_type) if isinstance(error_type, str) else None
    if known is None:
        if error_type is not None:
            logger.warning("unknown Anthropic error type; classifying by HTTP status", error_type=error_type, status=status)
        outcome = outcome_for_status(status) if status else Outcome.SERVER_ERROR
        openai_type, code = "upstream_error", None
    else:
        outcome, openai_type, code = known
    envelope = error_envelope(error.get("message"), text or f"upstream answered HTTP {status}", error_type=openai_type, code=code)
    retry_after = parse_retry_after(headers) if headers is not None else None
    return UpstreamError(outcome, status, envelope["error"]["message"], retry_after, envelope)


# ------------------------------------------------------------------ the adapter


class AnthropicAdapter:
    kind = "anthropic"
    default_headers = {"anthropic-version": ANTHROPIC_VERSION}

    def auth_headers(self, secret: str) -> dict[str, str]:
        return {"x-api-key": secret}

    def build_chat(self, chat: dict, target, *, stream: bool) -> UpstreamRequest:
        if target.drop_params:
            chat = {name: value for name, value in chat.items() if name not in target.drop_params}
        body = apply_params(chat, ANTHROPIC_PARAMS, provider="anthropic")
        body["model"] = target.model
        system, messages = openai_messages_to_anthropic(chat.get("messages") or [])
        if system:
            body["system"] = system
        body["messages"] = messages
        body["max_tokens"] = requested_max_tokens(chat, target) or target.default_max_tokens or target.max_tokens or DEFAULT_MAX_TOKENS
        tools = openai_tools_to_anthropic(chat["tools"]) if chat.get("tools") else []
        choice = openai_tool_choice_to_anthropic(chat.get("tool_choice"))
        response_tool = openai_response_format_to_tool(chat["response_format"]) if chat.get("response_format") is not None else None
        if response_tool is not None:
            choice = tool_choice_with_response_tool(choice, bool(tools))
            tools.append(response_tool)
        if tools:
            body["tools"] = tools
            if chat.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
                choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
            if choice is not None:
                body["tool_choice"] = choice
        elif choice is not None and choice["type"] not in ("auto", "none"):
            raise AdapterError("'tool_choice' needs 'tools'.", param="tool_choice")
        if stream:
            body["stream"] = True
        return UpstreamRequest(messages_url(target.base_url), orjson.dumps(body))

    def parse_chat(self, body: bytes, *, model: str) -> ChatResult:
        data = load_json(body, "a response")
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise UpstreamError(Outcome.SERVER_ERROR, 200, "upstream sent JSON that is not an Anthropic message")
        texts: list[str] = []
        calls: list[dict] = []
        for block in data["content"]:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(block.get("text") or "")
            elif kind == "tool_use" and block.get("name") == RESPONSE_TOOL:
                texts.append(orjson.dumps(block.get("input") or {}).decode())
            elif kind == "tool_use":
                calls.append(tool_call(block.get("id") or new_id("toolu_"), block.get("name") or "", block.get("input")))
            elif kind not in _SILENT_BLOCKS:
                logger.warning("skipping an Anthropic content block the OpenAI shape cannot carry", block_type=kind)
        finish = anthropic_stop_reason_to_finish_reason(data.get("stop_reason"))
        if finish == "tool_calls" and not calls:
            finish = "stop"  # only respond_with_json was called: that is the answer
        refusal = refusal_text(data) if data.get("stop_reason") == "refusal" else None
        usage, unreadable = read_usage(anthropic_usage_to_usage, data.get("usage"))
        answer = completion(
            data.get("id") or new_id(),
            data.get("model") or model,
            [choice(0, "".join(texts) if texts else None, calls, finish, refusal)],
            usage_object(usage) if usage else None,
        )
        return ChatResult(orjson.dumps(answer), usage, unreadable)

    def stream_translator(self, *, model: str, include_usage: bool) -> "AnthropicStream":
        return AnthropicStream(model=model, include_usage=include_usage)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        text = body[:300].decode("utf-8", "replace").strip() if data is None else ""
        return anthropic_error(data, status, headers, text)

    def build_embeddings(self, body: dict, target) -> UpstreamRequest:
        raise AdapterError(
            f"Provider '{target.provider_id}' (anthropic) has no embeddings API; "
            "use a model served by an OpenAI-compatible or Gemini provider.",
            param="model",
            code="model_not_supported",
        )

    def parse_embeddings(self, body: bytes, *, model: str, request: dict) -> ChatResult:
        raise AdapterError("Anthropic has no embeddings API.", param="model", code="model_not_supported")


def refusal_text(data: dict) -> str:
    details = data.get("stop_details") if isinstance(data.get("stop_details"), dict) else {}
    return str(details.get("explanation") or "The model declined to answer.")


# ------------------------------------------------------------------ streams


@dataclass(slots=True)
class Block:
    """What one Anthropic content block (by its ``index``) becomes in the OpenAI stream."""

    kind: str  # text | tool | json (respond_with_json) | skip
    tool_index: int = 0
    has_input: bool = False


@dataclass(slots=True)
class AnthropicStreamState:
    head: ChunkHead
    role_sent: bool = False
    blocks: dict[int, Block] = field(default_factory=dict)
    tool_calls: int = 0
    finish_sent: bool = False
    usage: dict = field(default_factory=dict)  # Anthropic usage fields, latest value of each


class AnthropicStream:
    """Anthropic SSE events -> OpenAI ``chat.completion.chunk`` frames (see ``StreamTranslator``).

    Nothing is sent for ``message_start``, so an error right after it can still fail over; the
    first content delta carries ``role: assistant``. Exactly one chunk carries a finish reason.
    """

    def __init__(self, *, model: str, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.state = AnthropicStreamState(ChunkHead(new_id(), model, now()))
        self.usage: Usage | None = None
        self.usage_unreadable = False
        self.done = False
        self._handlers: dict[str, Callable[[dict], list[bytes]]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "content_block_stop": self._block_stop,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "ping": lambda payload: [],
            "error": self._error,
        }

    def feed(self, event: SSEEvent) -> list[bytes]:
        if not event.data.strip():
            return []
        payload = load_json_event(event.data)
        kind = payload.get("type") or event.event
        handler = self._handlers.get(kind)
        if handler is None:
            logger.warning("skipping an unknown Anthropic stream event", event_type=kind)
            return []
        return handler(payload)

    def finish(self) -> list[bytes]:
        if not self.done:
            raise UpstreamError(Outcome.SERVER_ERROR, None, "the Anthropic stream ended before message_stop")
        frames = []
        if self.include_usage and self.usage is not None:
            frames.append(self.state.head.usage_chunk(usage_object(self.usage)))
        frames.append(DONE_FRAME)
        return frames

    # -------------------------------------------------------------- event handlers

    def _delta(self, delta: dict, finish_reason: str | None = None) -> bytes:
        state = self.state
        if not state.role_sent:
            state.role_sent = True
            delta = {"role": "assistant", **delta}
        return state.head.chunk(0, delta, finish_reason)

    def _take_usage(self, usage: Any) -> None:
        """Anthropic spreads usage over ``message_start`` and ``message_delta``: the latest value
        of each field counts, and the whole is unknown while any of them is unreadable."""
        if usage is None:
            return
        if not isinstance(usage, dict):
            self.usage, self.usage_unreadable = None, True
            return
        self.state.usage.update({k: v for k, v in usage.items() if v is not None})
        self.usage, self.usage_unreadable = read_usage(anthropic_usage_to_usage, self.state.usage)

    def _message_start(self, payload: dict) -> list[bytes]:
        message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
        head = self.state.head
        head.id = message.get("id") or head.id
        head.model = message.get("model") or head.model
        self._take_usage(message.get("usage"))
        return []

    def _block_start(self, payload: dict) -> list[bytes]:
        block = payload.get("content_block") if isinstance(payload.get("content_block"), dict) else {}
        index = payload.get("index", 0)
        kind = block.get("type")
        if kind == "text":
            self.state.blocks[index] = Block("text")
            return [self._delta({"content": block["text"]})] if block.get("text") else []
        if kind == "tool_use" and block.get("name") == RESPONSE_TOOL:
            self.state.blocks[index] = Block("json")
            return []
        if kind == "tool_use":
            number = self.state.tool_calls
            self.state.tool_calls += 1
            self.state.blocks[index] = Block("tool", number)
            call = {
                "index": number,
                "id": block.get("id") or new_id("toolu_"),
                "type": "function",
                "function": {"name": block.get("name") or "", "arguments": ""},
            }
            return [self._delta({"tool_calls": [call]})]
        if kind not in _SILENT_BLOCKS:
            logger.warning("skipping an Anthropic content block the OpenAI shape cannot carry", block_type=kind)
        self.state.blocks[index] = Block("skip")
        return []

    def _block_delta(self, payload: dict) -> list[bytes]:
        delta = payload.get("delta") if isinstance(payload.get("delta"), dict) else {}
        block = self.state.blocks.get(payload.get("index", 0))
        kind = delta.get("type")
        if block is None or block.kind == "skip":
            return []
        if kind == "text_delta" and block.kind == "text":
            text = delta.get("text") or ""
            return [self._delta({"content": text})] if text else []
        if kind == "input_json_delta":
            fragment = delta.get("partial_json") or ""
            if not fragment:
                return []
            block.has_input = True
            if block.kind == "json":
                return [self._delta({"content": fragment})]
            return [self._delta({"tool_calls": [{"index": block.tool_index, "function": {"arguments": fragment}}]})]
        if kind not in ("thinking_delta", "signature_delta", "citations_delta"):
            logger.warning("skipping an unknown Anthropic content delta", delta_type=kind)
        return []

    def _block_stop(self, payload: dict) -> list[bytes]:
        block = self.state.blocks.get(payload.get("index", 0))
        if block is None or block.has_input or block.kind not in ("tool", "json"):
            return []
        # A tool called without arguments streams no JSON at all; OpenAI clients expect "{}".
        block.has_input = True
        if block.kind == "json":
            return [self._delta({"content": "{}"})]
        return [self._delta({"tool_calls": [{"index": block.tool_index, "function": {"arguments": "{}"}}]})]

    def _message_delta(self, payload: dict) -> list[bytes]:
        self._take_usage(payload.get("usage"))
        delta = payload.get("delta") if isinstance(payload.get("delta"), dict) else {}
        reason = delta.get("stop_reason")
        if reason is None or self.state.finish_sent:
            return []
        frames = []
        if reason == "refusal":
            frames.append(self._delta({"refusal": refusal_text(delta)}))
        finish = anthropic_stop_reason_to_finish_reason(reason)
        if finish == "tool_calls" and not self.state.tool_calls:
            finish = "stop"  # only respond_with_json was called: that is the answer
        self.state.finish_sent = True
        frames.append(self._delta({}, finish))
        return frames

    def _message_stop(self, payload: dict) -> list[bytes]:
        self.done = True
        if self.state.finish_sent:
            return []
        self.state.finish_sent = True
        return [self._delta({}, "stop")]

    def _error(self, payload: dict) -> list[bytes]:
        raise anthropic_error(payload, None)
