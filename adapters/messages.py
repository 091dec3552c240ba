"""Anthropic Messages requests (``POST /v1/messages``, ``/count_tokens``) to the chat hub.

A client speaking the Messages API (the ``anthropic`` SDK, Claude Code) reaches a non-Anthropic
target through the canonical chat shape: ``messages_request_to_chat`` turns its request into a
Chat Completions request for an ``openai``, ``custom`` or ``gemini`` provider, whose adapter
then builds the upstream call as for any chat client. Answers come back through
``adapters.messages_answer``; an Anthropic provider gets the request natively
(``adapters.messages_native``).

Everything the translation reads is validated: a malformed value anywhere raises
``AdapterError`` whose ``param`` is the path in the client's body (``messages[1].content[0]
.source``), and no other exception escapes for any JSON input. ``null`` means "absent".

Top-level fields (the chat request is built from scratch, so nothing unlisted can reach an
OpenAI-type upstream, which would reject unknown fields):

| field | openai | custom | gemini |
|---|---|---|---|
| ``model`` | ``model`` (the route resolves it) | same | same |
| ``max_tokens`` (required) | ``max_completion_tokens`` (OpenAI refuses ``max_tokens`` on reasoning models) | ``max_tokens`` | ``max_tokens`` |
| ``system`` (string or text blocks) | a leading ``system`` message, blocks joined by a blank line | same | same |
| ``messages`` | see below | same | same |
| ``stop_sequences`` | ``stop`` | same | same |
| ``temperature``, ``top_p`` | same name | same | same |
| ``top_k`` | dropped (no such parameter) | dropped | ``top_k`` |
| ``metadata.user_id`` | ``user`` | ``user`` | ``user`` (the Gemini adapter ignores it) |
| ``stream`` | ``stream`` + ``stream_options.include_usage`` | same | same |
| ``tools`` (custom tools) | function tools (``input_schema`` -> ``parameters``) | same | same |
| ``tools`` with another ``type`` (server tools: web_search, bash, code_execution...) | rejected: they run on Anthropic's side | same | same |
| ``tool_choice`` | auto -> auto, any -> required, tool -> the named function, none -> none | same | same |
| ``tool_choice.disable_parallel_tool_use`` | ``parallel_tool_calls: false`` | same | dropped (Gemini has no switch) |
| ``thinking`` (enabled + ``budget_tokens``) | dropped | dropped | ``reasoning_effort``: the smallest Gemini band holding the budget |
| ``thinking`` (disabled, adaptive) | dropped | dropped | dropped (the model's default) |
| ``output_config.effort`` | dropped | dropped | ``reasoning_effort`` (``max`` -> ``xhigh``) |
| ``output_config.format``, ``output_format`` (json_schema) | ``response_format`` json_schema | same | same |
| ``service_tier``, ``speed``, ``inference_geo`` | dropped: capacity and placement preferences | same | same |
| ``cache_control`` (and on every block) | dropped: prompt-caching hints | same | same |
| ``context_management`` | dropped: server-side context editing; the whole history is sent | same | same |
| ``diagnostics``, ``user_profile_id``, ``workspace_id`` | dropped: Anthropic account bookkeeping | same | same |
| ``container``, ``mcp_servers`` | rejected: code-execution containers and MCP connectors live on Anthropic's side | same | same |
| any other field | dropped with a warning | same | same |

Content blocks:

- ``text`` -> text (a turn of text only becomes one string, blocks joined by a blank line);
  ``image`` -> an ``image_url`` part (``base64`` -> a data URL, ``url`` kept; Gemini cannot fetch
  URLs, so a ``url`` image to Gemini is rejected here, and ``file`` sources are rejected).
- assistant ``tool_use`` -> ``tool_calls`` with the input as a JSON string.
- user ``tool_result`` -> one ``tool`` message each, in order, before the rest of that user turn.
  Its text is the content; ``is_error`` prefixes ``(tool error)``. Images in a result cannot ride
  in a ``tool`` message, so they open the user message that follows, and the tool text says so.
- ``thinking`` / ``redacted_thinking`` -> dropped: hub providers cannot verify signatures.
- ``document``, ``search_result``, server-tool blocks and anything else -> rejected, naming the block.
- A final assistant turn (a prefill) is sent as history: hub models answer it rather than
  continue it.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
from loguru import logger

from adapters.base import AdapterError
from adapters.gemini import REASONING_BUDGETS

PROVIDER_KINDS = ("openai", "custom", "gemini")

CHARS_PER_TOKEN = 4
TOKENS_PER_IMAGE = 1600  # about the most one image costs on Claude once resized: count high, never low
TOKENS_PER_MESSAGE = 4
MAX_INTEGER = 2**63 - 1

DROPPED_FIELDS: dict[str, str] = {
    "service_tier": "a capacity preference",
    "speed": "a capacity preference",
    "inference_geo": "a placement preference",
    "cache_control": "a prompt-caching hint",
    "context_management": "server-side context editing",
    "diagnostics": "Anthropic account bookkeeping",
    "user_profile_id": "Anthropic account bookkeeping",
    "workspace_id": "Anthropic account bookkeeping",
}

REJECTED_FIELDS: dict[str, str] = {
    "container": "code-execution containers exist only on Anthropic's side",
    "mcp_servers": "the MCP connector runs on Anthropic's side",
}

TRANSLATED_FIELDS = frozenset(
    {
        "model", "max_tokens", "system", "messages", "stop_sequences", "temperature", "top_p", "top_k",
        "metadata", "stream", "tools", "tool_choice", "thinking", "output_config", "output_format",
    }
)

THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}
TOOL_ERROR_PREFIX = "(tool error) "

_MEDIA_TYPE = re.compile(r"[\w.+\-]+/[\w.+\-]+")


# ------------------------------------------------------------------ public entry points


def messages_request_to_chat(body: dict, *, provider_kind: str) -> dict:
    """A Chat Completions request for an ``openai``, ``custom`` or ``gemini`` target (see the module docstring)."""
    return _translate(body, provider_kind=provider_kind, count_only=False)


def count_tokens_estimate(body: dict) -> int:
    """``input_tokens`` for ``/v1/messages/count_tokens`` on a non-Anthropic target.

    The body is validated as ``messages_request_to_chat`` does (``max_tokens`` is not required
    here), then counted as the target will see it: about four characters a token over system,
    messages and tools, a flat ``TOKENS_PER_IMAGE`` per image, ``TOKENS_PER_MESSAGE`` per message.
    """
    return chat_prompt_tokens_estimate(_translate(body, provider_kind="openai", count_only=True))


def chat_prompt_tokens_estimate(chat: dict) -> int:
    """Prompt tokens of a chat request this module built (its shapes only)."""
    chars = images = 0
    messages = chat["messages"]
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part["type"] == "image_url":
                    images += 1
                else:
                    chars += len(part["text"])
        for call in message.get("tool_calls") or ():
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    for index, tool in enumerate(chat.get("tools") or ()):
        chars += len(json_text(tool["function"], f"tools[{index}]"))
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_IMAGE * images + TOKENS_PER_MESSAGE * len(messages)


# ------------------------------------------------------------------ the request


def _translate(body: Any, *, provider_kind: str, count_only: bool) -> dict:
    if provider_kind not in PROVIDER_KINDS:
        raise ValueError(f"provider_kind must be one of {PROVIDER_KINDS}, not {provider_kind!r}")
    if not isinstance(body, dict):
        raise AdapterError("The request body must be a JSON object.", param=None, code="invalid_type")
    for name, why in REJECTED_FIELDS.items():
        if body.get(name) is not None:
            raise AdapterError(f"'{name}' cannot be sent to a {provider_kind} model: {why}.", param=name)
    unknown = sorted(str(name) for name in body if name not in TRANSLATED_FIELDS and name not in DROPPED_FIELDS)
    if unknown:
        logger.warning("dropping Messages request fields the chat translation does not know", fields=unknown)

    chat: dict[str, Any] = {"model": string(body.get("model"), "model", required=True)}
    system = system_text(body.get("system"))
    messages: list[dict] = [{"role": "system", "content": system}] if system else []
    turns = messages_to_chat(body.get("messages"), provider_kind=provider_kind)
    if not turns:
        raise AdapterError("'messages' holds nothing a non-Anthropic model can read (thinking blocks are dropped).", param="messages", code="invalid_value")
    chat["messages"] = messages + turns

    max_tokens = integer(body.get("max_tokens"), "max_tokens", minimum=1, required=not count_only)
    if max_tokens is not None:
        chat["max_completion_tokens" if provider_kind == "openai" else "max_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        value = number(body.get(name), name)
        if value is not None:
            chat[name] = value
    top_k = integer(body.get("top_k"), "top_k", minimum=0)
    if top_k is not None and provider_kind == "gemini":
        chat["top_k"] = top_k
    stop = stop_sequences(body.get("stop_sequences"))
    if stop:
        chat["stop"] = stop
    user = metadata_user(body.get("metadata"))
    if user:
        chat["user"] = user
    if boolean(body.get("stream"), "stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}

    tools = tools_to_chat(body.get("tools"))
    choice, parallel = tool_choice_to_chat(body.get("tool_choice"), {tool["function"]["name"] for tool in tools})
    if tools:
        chat["tools"] = tools
        if choice is not None:
            chat["tool_choice"] = choice
        if parallel is False and provider_kind != "gemini":
            chat["parallel_tool_calls"] = False

    effort = thinking_to_reasoning_effort(body.get("thinking"))
    config = output_config(body.get("output_config"), "output_config")
    legacy_format = output_format(body.get("output_format"), "output_format")
    effort = effort or config.get("effort")
    if effort is not None and provider_kind == "gemini":
        chat["reasoning_effort"] = effort
    response_format = config.get("format") or legacy_format
    if response_format is not None:
        chat["response_format"] = response_format
    return chat


def system_text(system: Any) -> str:
    """``system`` as one string: a string, or text blocks joined by a blank line."""
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    texts = []
    for here, block in blocks_of(system, "system", allow_string=False):
        if block["type"] != "text":
            raise AdapterError(f"{here}: the system prompt takes text blocks only, not {block['type']!r}.", param=here, code="invalid_value")
        text = string(block.get("text"), f"{here}.text", required=True, empty=True)
        if text:
            texts.append(text)
    return "\n\n".join(texts)


def messages_to_chat(messages: Any, *, provider_kind: str) -> list[dict]:
    """The chat messages of the ``messages`` array (system excluded)."""
    if messages is None:
        raise AdapterError("'messages' is required.", param="messages", code="missing")
    if not isinstance(messages, list):
        raise AdapterError("'messages' must be an array.", param="messages", code="invalid_type")
    if not messages:
        raise AdapterError("'messages' must hold at least one message.", param="messages", code="invalid_value")
    out: list[dict] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise AdapterError(f"{where} must be an object.", param=where, code="invalid_type")
        role = message.get("role")
        content = message.get("content")
        if content is None:
            raise AdapterError(f"{where}.content is required.", param=f"{where}.content", code="missing")
        blocks = blocks_of(content, f"{where}.content", allow_string=True)
        if role == "user":
            out.extend(user_turn_to_chat(blocks, provider_kind=provider_kind))
        elif role == "assistant":
            out.extend(assistant_turn_to_chat(blocks))
        else:
            raise AdapterError(f"{where}.role must be 'user' or 'assistant'.", param=f"{where}.role", code="invalid_value")
    return out


def blocks_of(content: Any, where: str, *, allow_string: bool) -> list[tuple[str, dict]]:
    """``(path, block)`` for each content block; a string is one text block."""
    if isinstance(content, str) and allow_string:
        return [(where, {"type": "text", "text": content})]
    if not isinstance(content, list):
        kinds = "a string or an array of content blocks" if allow_string else "an array of content blocks"
        raise AdapterError(f"{where} must be {kinds}.", param=where, code="invalid_type")
    out = []
    for index, block in enumerate(content):
        here = f"{where}[{index}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise AdapterError(f"{here} must be a content block object with a 'type'.", param=here, code="invalid_type")
        out.append((here, block))
    return out


def user_turn_to_chat(blocks: list[tuple[str, dict]], *, provider_kind: str) -> list[dict]:
    """A user turn: its ``tool_result`` blocks as ``tool`` messages first, then one user message."""
    tool_messages: list[dict] = []
    parts: list[dict] = []
    result_images: list[dict] = []
    for here, block in blocks:
        kind = block["type"]
        if kind == "text":
            text = string(block.get("text"), f"{here}.text", required=True, empty=True)
            if text:
                parts.append({"type": "text", "text": text})
        elif kind == "image":
            parts.append(image_to_chat(block, here, provider_kind=provider_kind))
        elif kind == "tool_result":
            message, images = tool_result_to_chat(block, here, provider_kind=provider_kind)
            tool_messages.append(message)
            result_images.extend(images)
        elif kind in THINKING_BLOCKS:
            continue
        elif kind == "tool_use":
            raise AdapterError(f"{here}: tool_use blocks belong in assistant messages.", param=here, code="invalid_value")
        else:
            raise unsupported_block(kind, here, provider_kind)
    parts = result_images + parts
    if not parts:
        return tool_messages
    return [*tool_messages, {"role": "user", "content": chat_content(parts)}]


def assistant_turn_to_chat(blocks: list[tuple[str, dict]]) -> list[dict]:
    texts: list[str] = []
    calls: list[dict] = []
    for here, block in blocks:
        kind = block["type"]
        if kind == "text":
            text = string(block.get("text"), f"{here}.text", required=True, empty=True)
            if text:
                texts.append(text)
        elif kind == "tool_use":
            call_id = string(block.get("id"), f"{here}.id", required=True)
            name = string(block.get("name"), f"{here}.name", required=True)
            arguments = block.get("input")
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                raise AdapterError(f"{here}.input must be an object.", param=f"{here}.input", code="invalid_type")
            calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": json_text(arguments, f"{here}.input")}})
        elif kind in THINKING_BLOCKS:
            continue
        elif kind in ("image", "tool_result"):
            raise AdapterError(f"{here}: {kind} blocks belong in user messages.", param=here, code="invalid_value")
        else:
            raise unsupported_block(kind, here, None)
    if not texts and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def tool_result_to_chat(block: dict, here: str, *, provider_kind: str) -> tuple[dict, list[dict]]:
    """``(tool message, image parts)`` of one ``tool_result`` block."""
    call_id = string(block.get("tool_use_id"), f"{here}.tool_use_id", required=True)
    content = block.get("content")
    texts: list[str] = []
    images: list[dict] = []
    if isinstance(content, str):
        if content:
            texts.append(content)
    elif content is not None:
        for part_here, part in blocks_of(content, f"{here}.content", allow_string=False):
            if part["type"] == "text":
                text = string(part.get("text"), f"{part_here}.text", required=True, empty=True)
                if text:
                    texts.append(text)
            elif part["type"] == "image":
                images.append(image_to_chat(part, part_here, provider_kind=provider_kind))
            else:
                raise unsupported_block(part["type"], part_here, provider_kind)
    text = "\n\n".join(texts)
    if images:
        note = f"[{len(images)} image(s) from this result follow in the next user message]"
        text = f"{text}\n\n{note}" if text else note
    if boolean(block.get("is_error"), f"{here}.is_error"):
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def image_to_chat(block: dict, here: str, *, provider_kind: str) -> dict:
    where = f"{here}.source"
    source = block.get("source")
    if not isinstance(source, dict):
        raise AdapterError(f"{where} must be an object.", param=where, code="missing" if source is None else "invalid_type")
    kind = source.get("type")
    if kind == "base64":
        media_type = string(source.get("media_type"), f"{where}.media_type", required=True)
        if not _MEDIA_TYPE.fullmatch(media_type):
            raise AdapterError(f"{where}.media_type must be a media type such as image/png.", param=f"{where}.media_type", code="invalid_value")
        data = string(source.get("data"), f"{where}.data", required=True)
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = string(source.get("url"), f"{where}.url", required=True)
        if not url.startswith(("http://", "https://")):
            raise AdapterError(f"{where}.url must be an http(s) URL.", param=f"{where}.url", code="invalid_value")
        if provider_kind == "gemini":
            raise AdapterError(f"{where}: Gemini cannot fetch image URLs; send the image as a base64 source.", param=where, code="invalid_value")
    elif kind == "file":
        raise AdapterError(f"{where}: file sources refer to Anthropic's Files API, which a {provider_kind} model cannot read.", param=where)
    else:
        raise AdapterError(f"{where}.type must be base64 or url.", param=f"{where}.type", code="invalid_value")
    return {"type": "image_url", "image_url": {"url": url}}


def chat_content(parts: list[dict]) -> str | list[dict]:
    """Text-only content as one string (every OpenAI-compatible server takes it), else the parts."""
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def unsupported_block(kind: str, here: str, provider_kind: str | None) -> AdapterError:
    target = f"a {provider_kind} model" if provider_kind else "a non-Anthropic model"
    return AdapterError(
        f"{here}: {kind!r} blocks cannot be sent to {target} "
        "(text, image, tool_use, tool_result and thinking blocks are translated).",
        param=here,
    )


# ------------------------------------------------------------------ tools


def tools_to_chat(tools: Any) -> list[dict]:
    """Custom tools as OpenAI function tools; server tools cannot leave Anthropic."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise AdapterError("'tools' must be an array.", param="tools", code="invalid_type")
    out = []
    for index, tool in enumerate(tools):
        here = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise AdapterError(f"{here} must be an object.", param=here, code="invalid_type")
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise AdapterError(
                f"{here}: {kind!r} is an Anthropic server tool, which only Anthropic can run; "
                "other models take custom tools ({name, description, input_schema}).",
                param=f"{here}.type",
            )
        name = string(tool.get("name"), f"{here}.name", required=True)
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise AdapterError(f"{here}.input_schema must be a JSON schema object.", param=f"{here}.input_schema",
                               code="missing" if schema is None else "invalid_type")
        function: dict[str, Any] = {"name": name}
        description = string(tool.get("description"), f"{here}.description", empty=True)
        if description:
            function["description"] = description
        function["parameters"] = schema
        out.append({"type": "function", "function": function})
    return out


def tool_choice_to_chat(choice: Any, tool_names: set[str]) -> tuple[str | dict | None, bool | None]:
    """``(tool_choice, parallel_tool_calls)``; without tools only ``auto`` and ``none`` make sense."""
    if choice is None:
        return None, None
    if not isinstance(choice, dict):
        raise AdapterError("'tool_choice' must be an object.", param="tool_choice", code="invalid_type")
    kind = choice.get("type")
    disable = boolean(choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use")
    parallel = False if disable else None
    if kind in ("auto", "any", "none"):
        value: str | dict = {"auto": "auto", "any": "required", "none": "none"}[kind]
    elif kind == "tool":
        name = string(choice.get("name"), "tool_choice.name", required=True)
        if name not in tool_names:
            raise AdapterError(f"tool_choice.name {name!r} is not one of 'tools'.", param="tool_choice.name", code="invalid_value")
        value = {"type": "function", "function": {"name": name}}
    else:
        raise AdapterError("tool_choice.type must be auto, any, tool or none.", param="tool_choice.type", code="invalid_value")
    if not tool_names and kind in ("any", "tool"):
        raise AdapterError(f"tool_choice {kind!r} needs 'tools'.", param="tool_choice", code="invalid_value")
    return value, parallel


# ------------------------------------------------------------------ thinking and output


def thinking_budget_to_reasoning_effort(budget: int) -> str:
    """The smallest Gemini effort band (``adapters.gemini.REASONING_BUDGETS``) holding ``budget``."""
    bands = sorted((tokens, effort) for effort, tokens in REASONING_BUDGETS.items() if tokens > 0)
    for tokens, effort in bands:
        if budget <= tokens:
            return effort
    return bands[-1][1]


def thinking_to_reasoning_effort(thinking: Any) -> str | None:
    """``reasoning_effort`` for ``thinking: {type: enabled, budget_tokens}``; None for the model's default."""
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        raise AdapterError("'thinking' must be an object.", param="thinking", code="invalid_type")
    kind = thinking.get("type")
    if kind == "enabled":
        budget = integer(thinking.get("budget_tokens"), "thinking.budget_tokens", minimum=0, required=True)
        return thinking_budget_to_reasoning_effort(budget)
    if kind in ("disabled", "adaptive"):
        return None
    raise AdapterError("thinking.type must be enabled, disabled or adaptive.", param="thinking.type", code="invalid_value")


def output_config(config: Any, where: str) -> dict:
    """``{"effort": ..., "format": ...}`` (each only when given) of ``output_config``."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise AdapterError(f"'{where}' must be an object.", param=where, code="invalid_type")
    out = {}
    effort = config.get("effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in EFFORTS:
            raise AdapterError(f"{where}.effort must be one of {', '.join(EFFORTS)}.", param=f"{where}.effort", code="invalid_value")
        out["effort"] = EFFORTS[effort]
    response_format = output_format(config.get("format"), f"{where}.format")
    if response_format is not None:
        out["format"] = response_format
    return out


def output_format(spec: Any, where: str) -> dict | None:
    """An OpenAI ``response_format`` for ``{type: json_schema, schema}``."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise AdapterError(f"'{where}' must be an object.", param=where, code="invalid_type")
    if spec.get("type") != "json_schema":
        raise AdapterError(f"{where}.type must be json_schema.", param=f"{where}.type", code="invalid_value")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise AdapterError(f"{where}.schema must be a JSON schema object.", param=f"{where}.schema", code="invalid_type")
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


def stop_sequences(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise AdapterError("'stop_sequences' must be an array of strings.", param="stop_sequences", code="invalid_type")
    for index, item in enumerate(value):
        string(item, f"stop_sequences[{index}]", required=True)
    return list(value)


def metadata_user(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise AdapterError("'metadata' must be an object.", param="metadata", code="invalid_type")
    return string(metadata.get("user_id"), "metadata.user_id", empty=True) or None


# ------------------------------------------------------------------ value checks


def string(value: Any, where: str, *, required: bool = False, empty: bool = False) -> str | None:
    """A string at ``where``; None when absent and not ``required``; empty only when ``empty``."""
    if value is None:
        if required:
            raise AdapterError(f"'{where}' is required.", param=where, code="missing")
        return None
    if not isinstance(value, str):
        raise AdapterError(f"'{where}' must be a string.", param=where, code="invalid_type")
    if not value and not empty:
        raise AdapterError(f"'{where}' must not be empty.", param=where, code="invalid_value")
    return value


def integer(value: Any, where: str, *, minimum: int, required: bool = False) -> int | None:
    if value is None:
        if required:
            raise AdapterError(f"'{where}' is required.", param=where, code="missing")
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise AdapterError(f"'{where}' must be an integer.", param=where, code="invalid_type")
    if not minimum <= value <= MAX_INTEGER:
        raise AdapterError(f"'{where}' must be from {minimum} to {MAX_INTEGER}.", param=where, code="invalid_value")
    return value


def json_text(value: Any, where: str) -> str:
    """``value`` as JSON text; numbers past 64 bits (which no upstream takes) are the client's error."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        raise AdapterError(f"'{where}' holds a value JSON cannot carry upstream (an integer past 64 bits?).", param=where, code="invalid_value") from None


def number(value: Any, where: str) -> float | int | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise AdapterError(f"'{where}' must be a number.", param=where, code="invalid_type")
    return value


def boolean(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise AdapterError(f"'{where}' must be true or false.", param=where, code="invalid_type")
    return value
