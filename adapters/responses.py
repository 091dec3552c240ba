"""The OpenAI Responses API over the chat hub: Responses requests as chat requests (pure).

``POST /v1/responses`` is a front door over the chat path. A Responses request becomes a chat
request here (``responses_request_to_chat``) and goes to any provider; the ``chat.completion``
that comes back becomes a ``response`` object in ``adapters.responses_objects``, and streams are
translated by ``adapters.responses_stream``. This module also turns stored responses back into
chat history (``replay_messages``) and lists a request's input items (``input_items``). Nothing
here does I/O or keeps state.

Requests are read strictly: a field the hub cannot carry, or a value of the wrong type at any
depth the translation reads, raises ``AdapterError`` naming its path (``input[2].content[0]``),
and nothing else is ever raised for a JSON value. An explicit ``null`` means "not set". Input
items keep the fields OpenAI itself puts on output items (``id``, ``status``, ``annotations``...)
without complaint, so a client can send a response's ``output`` back as ``input``.

What reaches the hub:

- ``instructions`` -> a leading ``system`` message; then ``history`` (the chat messages of the
  turns before ``previous_response_id``); then ``input``.
- ``message`` items (also without ``type``) -> messages of the same role; ``input_text`` /
  ``output_text`` -> text parts, ``input_image`` -> ``image_url`` parts, ``refusal`` -> refusal
  parts; a content list of one text part becomes a plain string.
- ``function_call`` items -> ``tool_calls`` on an assistant message (consecutive calls, and calls
  right after an assistant message, share it); ``function_call_output`` -> ``tool`` messages;
  ``reasoning`` items are dropped (the hub has no field for them).
- sampling and tool fields by the tables ``_CARRIED`` and ``_GATEWAY_ONLY`` and the code below.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, NoReturn

from loguru import logger

from adapters.base import AdapterError
from adapters.responses_objects import new_item_id, output_text_part

# ------------------------------------------------------------------ value readers


def _invalid_type(where: str, expected: str) -> NoReturn:
    raise AdapterError(f"Invalid type for '{where}': expected {expected}.", param=where, code="invalid_type")


def _invalid_value(where: str, message: str) -> NoReturn:
    raise AdapterError(f"Invalid value for '{where}': {message}", param=where, code="invalid_value")


def _unsupported(where: str, message: str) -> NoReturn:
    raise AdapterError(f"Unsupported '{where}': {message}", param=where, code="unsupported_parameter")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _invalid_type(where, "a string")
    return value


def _name(value: Any, where: str) -> str:
    """A string that must not be empty (names, call ids)."""
    if not _string(value, where):
        _invalid_value(where, "must not be empty.")
    return value


def _number(value: Any, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _invalid_type(where, "a number")
    return value


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _invalid_type(where, "an integer")
    return value


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        _invalid_type(where, "a boolean")
    return value


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        _invalid_type(where, "an object")
    return value


def _array(value: Any, where: str) -> list:
    if not isinstance(value, list):
        _invalid_type(where, "an array")
    return value


def _only(value: Any, known: Iterable[str], where: str) -> dict:
    """``value`` as an object whose non-null keys are all ``known``."""
    _object(value, where)
    for key, item in value.items():
        if key not in known and item is not None:
            _unsupported(f"{where}.{key}", "this gateway's Responses API does not support it.")
    return value


def _one_of(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if _string(value, where) not in allowed:
        _invalid_value(where, f"expected one of {', '.join(map(repr, allowed))}.")
    return value


def _metadata(value: Any, where: str) -> dict:
    for key, item in _object(value, where).items():
        _string(item, f"{where}.{key}")
    return value


def _strings(value: Any, where: str) -> list:
    for index, item in enumerate(_array(value, where)):
        _string(item, f"{where}[{index}]")
    return value


def _truncation(value: Any, where: str) -> str:
    if _string(value, where) != "disabled":
        _unsupported(where, "only 'disabled': the gateway does not truncate conversations.")
    return value


def _background(value: Any, where: str) -> bool:
    if _boolean(value, where):
        _unsupported(where, "background responses are not supported by this gateway.")
    return value


# ------------------------------------------------------------------ the request tables

# Responses field -> (chat field, reader): carried to the hub as they are, maybe renamed.
_CARRIED: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "temperature": ("temperature", _number),
    "top_p": ("top_p", _number),
    "max_output_tokens": ("max_completion_tokens", _integer),
    "parallel_tool_calls": ("parallel_tool_calls", _boolean),
}

# Fields only the gateway reads (storage, replay, routing): checked, never sent to the hub.
_GATEWAY_ONLY: dict[str, Callable[[Any, str], Any]] = {
    "store": _boolean,
    "metadata": _metadata,
    "previous_response_id": _string,
    "include": _strings,
    "truncation": _truncation,
    "service_tier": _string,
    "prompt_cache_key": _string,
    "background": _background,
    "stream_options": _object,  # include_obfuscation: the gateway never adds obfuscation
}

# Fields translated by the code of responses_request_to_chat.
_TRANSLATED = frozenset(
    {"model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "user", "safety_identifier", "stream", "top_logprobs"}
)

_KNOWN = frozenset(_CARRIED) | frozenset(_GATEWAY_ONLY) | _TRANSLATED

LOGPROBS_INCLUDE = "message.output_text.logprobs"

# Which content part types each message role may carry.
_PARTS_BY_ROLE = {
    "user": frozenset({"input_text", "input_image"}),
    "system": frozenset({"input_text"}),
    "developer": frozenset({"input_text"}),
    "assistant": frozenset({"input_text", "output_text", "refusal"}),
}
_IMAGE_DETAILS = ("auto", "low", "high")


# ------------------------------------------------------------------ input items


def _part(raw: Any, role: str, where: str) -> dict:
    """One content part, checked and reduced to what the translation carries."""
    kind = _string(_object(raw, where).get("type"), f"{where}.type")
    if kind not in ("input_text", "output_text", "refusal", "input_image"):
        _unsupported(f"{where}.type", f"content parts of type {kind!r} cannot be sent through this gateway.")
    if kind not in _PARTS_BY_ROLE[role]:
        if kind == "input_image":
            _unsupported(where, "images are only supported in user messages.")
        _invalid_value(f"{where}.type", f"{kind!r} parts are not allowed in {role} messages.")
    if kind == "refusal":
        return {"type": "refusal", "refusal": _string(raw.get("refusal"), f"{where}.refusal")}
    if kind != "input_image":
        return {"type": kind, "text": _string(raw.get("text"), f"{where}.text")}
    if raw.get("file_id") is not None:
        _unsupported(f"{where}.file_id", "images given by file id cannot be sent through this gateway; use image_url.")
    url = raw.get("image_url")
    if not isinstance(url, str) or not url.startswith(("data:", "http://", "https://")):
        if url is not None and not isinstance(url, str):
            _invalid_type(f"{where}.image_url", "a string")
        _invalid_value(f"{where}.image_url", "must be an http(s) URL or a base64 data URL.")
    detail = raw.get("detail")
    if detail is None:
        detail = "auto"
    elif _string(detail, f"{where}.detail") not in _IMAGE_DETAILS:
        _unsupported(f"{where}.detail", f"image detail {detail!r} cannot be sent through this gateway (auto, low or high).")
    return {"type": "input_image", "image_url": url, "detail": detail}


def _content(raw: Any, role: str, where: str) -> list[dict]:
    if isinstance(raw, str):
        return [{"type": "output_text" if role == "assistant" else "input_text", "text": raw}]
    return [_part(part, role, f"{where}[{index}]") for index, part in enumerate(_array(raw, where))]


def _with_id(item: dict, raw: dict, where: str) -> dict:
    if raw.get("id") is not None:
        item["id"] = _string(raw["id"], f"{where}.id")
    return item


def _item(raw: Any, where: str) -> dict | None:
    """One input item, checked and normalised (``type`` always set, content always a list);
    None for a ``reasoning`` item, which only the gateway's storage keeps."""
    _object(raw, where)
    kind = raw.get("type")
    if kind is None and "role" in raw:
        kind = "message"  # an easy input message
    kind = _string(kind, f"{where}.type")
    if kind == "message":
        role = _one_of(raw.get("role"), tuple(_PARTS_BY_ROLE), f"{where}.role")
        item = {"type": "message", "role": role, "content": _content(raw.get("content"), role, f"{where}.content")}
        return _with_id(item, raw, where)
    if kind == "function_call":
        item = {
            "type": "function_call",
            "call_id": _name(raw.get("call_id"), f"{where}.call_id"),
            "name": _name(raw.get("name"), f"{where}.name"),
            "arguments": _string(raw.get("arguments"), f"{where}.arguments"),
        }
        return _with_id(item, raw, where)
    if kind == "function_call_output":
        output = raw.get("output")
        if not isinstance(output, str):
            where_output = f"{where}.output"
            output = [_tool_output_part(part, f"{where_output}[{index}]") for index, part in enumerate(_array(output, where_output))]
        item = {"type": "function_call_output", "call_id": _name(raw.get("call_id"), f"{where}.call_id"), "output": output}
        return _with_id(item, raw, where)
    if kind == "reasoning":
        return None
    _unsupported(f"{where}.type", f"input items of type {kind!r} cannot be sent through this gateway.")


def _tool_output_part(raw: Any, where: str) -> dict:
    kind = _string(_object(raw, where).get("type"), f"{where}.type")
    if kind != "input_text":
        _unsupported(f"{where}.type", f"function call outputs can only carry text through this gateway, not {kind!r}.")
    return {"type": "input_text", "text": _string(raw.get("text"), f"{where}.text")}


def _items(raw: Any, where: str = "input") -> list[dict]:
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    items = (_item(entry, f"{where}[{index}]") for index, entry in enumerate(_array(raw, where)))
    return [item for item in items if item is not None]


# ------------------------------------------------------------------ items -> chat messages


def _chat_part(part: dict) -> dict:
    kind = part["type"]
    if kind == "input_image":
        return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part["detail"]}}
    if kind == "refusal":
        return {"type": "refusal", "refusal": part["refusal"]}
    return {"type": "text", "text": part["text"]}


def _chat_content(parts: list[dict]) -> str | list[dict]:
    """Chat content: one text part is a plain string (what every provider reads), else a list."""
    chat = [_chat_part(part) for part in parts]
    if not chat:
        return ""
    if len(chat) == 1 and chat[0]["type"] == "text":
        return chat[0]["text"]
    return chat


def _items_to_messages(items: list[dict]) -> list[dict]:
    messages: list[dict] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": _chat_content(item["content"])})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
            if messages and messages[-1]["role"] == "assistant":
                # one assistant turn: the text and the calls that followed it
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:  # function_call_output
            output = item["output"]
            content = output if isinstance(output, str) else _chat_content(output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": content})
    return messages


# ------------------------------------------------------------------ tools, formats, reasoning


def _tools(value: Any) -> list[dict]:
    out = []
    for index, tool in enumerate(_array(value, "tools")):
        where = f"tools[{index}]"
        kind = _string(_object(tool, where).get("type"), f"{where}.type")
        if kind != "function":
            _unsupported(where, f"tools of type {kind!r} cannot be sent through this gateway; only function tools.")
        _only(tool, ("type", "name", "description", "parameters", "strict"), where)
        function: dict[str, Any] = {"name": _name(tool.get("name"), f"{where}.name")}
        if tool.get("description") is not None:
            function["description"] = _string(tool["description"], f"{where}.description")
        if tool.get("parameters") is not None:
            function["parameters"] = _object(tool["parameters"], f"{where}.parameters")
        if tool.get("strict") is not None:
            function["strict"] = _boolean(tool["strict"], f"{where}.strict")
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(value: Any) -> str | dict:
    if isinstance(value, str):
        return _one_of(value, ("auto", "none", "required"), "tool_choice")
    kind = _string(_object(value, "tool_choice").get("type"), "tool_choice.type")
    if kind != "function":
        _unsupported("tool_choice", f"a tool choice of type {kind!r} cannot be sent through this gateway.")
    _only(value, ("type", "name"), "tool_choice")
    return {"type": "function", "function": {"name": _name(value.get("name"), "tool_choice.name")}}


def _response_format(value: Any) -> dict | None:
    where = "text.format"
    kind = _string(_object(value, where).get("type"), f"{where}.type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        _invalid_value(f"{where}.type", "expected 'text', 'json_object' or 'json_schema'.")
    _only(value, ("type", "name", "schema", "strict", "description"), where)
    schema: dict[str, Any] = {
        "name": _name(value.get("name"), f"{where}.name"),
        "schema": _object(value.get("schema"), f"{where}.schema"),
    }
    if value.get("strict") is not None:
        schema["strict"] = _boolean(value["strict"], f"{where}.strict")
    if value.get("description") is not None:
        schema["description"] = _string(value["description"], f"{where}.description")
    return {"type": "json_schema", "json_schema": schema}


def _text(value: Any, chat: dict) -> None:
    _only(value, ("format", "verbosity"), "text")
    if value.get("format") is not None:
        response_format = _response_format(value["format"])
        if response_format is not None:
            chat["response_format"] = response_format
    if value.get("verbosity") is not None:
        chat["verbosity"] = _one_of(value["verbosity"], ("low", "medium", "high"), "text.verbosity")


def _reasoning(value: Any, chat: dict) -> None:
    # summary, mode and context have no chat field: they shape what OpenAI shows, not the answer
    _only(value, ("effort", "summary", "generate_summary", "mode", "context"), "reasoning")
    for key in ("summary", "generate_summary", "mode", "context"):
        if value.get(key) is not None:
            _string(value[key], f"reasoning.{key}")
    if value.get("effort") is not None:
        chat["reasoning_effort"] = _string(value["effort"], "reasoning.effort")


# ------------------------------------------------------------------ the request


def responses_request_to_chat(body: dict, *, history: Iterable[dict] = ()) -> dict:
    """The chat request (hub shape) for a Responses ``body``.

    ``history`` is the chat ``messages`` of the turns before ``previous_response_id``
    (``replay_messages``); they follow the instructions and come before ``input``. Raises
    ``AdapterError`` (codes ``invalid_type``, ``invalid_value``, ``unsupported_parameter``) with
    the offending path as ``param``; never anything else, whatever JSON ``body`` is.
    """
    if not isinstance(body, dict):
        raise AdapterError("The request body must be a JSON object.", param=None, code="invalid_type")
    for key, value in body.items():
        if key not in _KNOWN and value is not None:
            _unsupported(key, "this gateway's Responses API does not support it.")
    chat: dict[str, Any] = {"model": _name(body.get("model"), "model")}

    turns = [dict(message) for message in history]
    if body.get("input") is not None:
        turns.extend(_items_to_messages(_items(body["input"])))
    if not turns:
        _invalid_value("input", "the request has no input to answer.")
    if body.get("instructions") is not None:
        turns.insert(0, {"role": "system", "content": _string(body["instructions"], "instructions")})
    chat["messages"] = turns

    for field, value in body.items():  # the body's few fields, not every table entry
        if value is None:
            continue
        carried = _CARRIED.get(field)
        if carried is not None:
            chat[carried[0]] = carried[1](value, field)
        elif field in _GATEWAY_ONLY:
            _GATEWAY_ONLY[field](value, field)

    if body.get("tools") is not None:
        tools = _tools(body["tools"])
        if tools:
            chat["tools"] = tools
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("text") is not None:
        _text(body["text"], chat)
    if body.get("reasoning") is not None:
        _reasoning(body["reasoning"], chat)
    for field in ("safety_identifier", "user"):  # user wins when both are given
        if body.get(field) is not None:
            chat["user"] = _string(body[field], field)

    if LOGPROBS_INCLUDE in (body.get("include") or ()):
        chat["logprobs"] = True
    if body.get("top_logprobs") is not None:
        top = _integer(body["top_logprobs"], "top_logprobs")
        if not 0 <= top <= 20:
            _invalid_value("top_logprobs", "must be between 0 and 20.")
        if top:
            chat["logprobs"] = True
            chat["top_logprobs"] = top
    if body.get("stream") is not None and _boolean(body["stream"], "stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


# The Responses name of each chat field this module writes under another name, for errors a
# provider adapter raises about the translated request (message paths are not mapped back).
_CHAT_TO_RESPONSES_PARAM = {
    "max_completion_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "response_format": "text.format",
    "verbosity": "text.verbosity",
    "logprobs": "top_logprobs",
    "stream_options": "stream",
}


def responses_param_for(chat_param: str | None) -> str | None:
    """The Responses request path to name in an error about chat parameter ``chat_param``."""
    return _CHAT_TO_RESPONSES_PARAM.get(chat_param, chat_param) if chat_param else chat_param


# ------------------------------------------------------------------ conversations and stored input

_REPLAYABLE = ("message", "function_call", "function_call_output", "reasoning")


def response_to_chat_messages(response: dict) -> list[dict]:
    """The assistant turn of a stored ``response`` as chat messages (text and ``tool_calls``).

    Reasoning items are dropped; items the hub has no shape for (hosted tool calls of a native
    answer) are skipped with a warning.
    """
    items = []
    for index, raw in enumerate(response.get("output") or ()):
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind not in _REPLAYABLE:
            logger.warning("skipping a stored output item the chat hub cannot replay", item_type=kind)
            continue
        item = _item(raw, f"output[{index}]")
        if item is not None:
            items.append(item)
    return _items_to_messages(items)


def replay_messages(body: dict, response: dict, *, history: Iterable[dict] = ()) -> list[dict]:
    """The ``history`` for a request whose ``previous_response_id`` is ``response``: earlier
    history, then this turn's input and answer. Instructions are not carried over (as OpenAI
    does: each request's instructions stand alone)."""
    messages = list(history)
    if body.get("input") is not None:
        messages.extend(_items_to_messages(_items(body["input"])))
    return messages + response_to_chat_messages(response)


def _stored_part(part: dict, role: str) -> dict:
    if part["type"] == "output_text" or (role == "assistant" and part["type"] == "input_text"):
        return output_text_part(part["text"])  # an assistant message is stored as an output message
    if part["type"] == "input_image":
        return {**part, "file_id": None}
    return part


_INPUT_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


def input_items(body: dict) -> list[dict]:
    """The request's ``input`` as Responses items with ids, in input order (for
    ``GET /v1/responses/{id}/input_items``). Ids the client gave are kept, others are new random
    ones, so call this once per response and store the result. ``body`` must have passed
    ``responses_request_to_chat``; raises ``AdapterError`` like it otherwise."""
    raw = body.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": raw}]
    out = []
    for index, entry in enumerate(_array(raw, "input")):
        where = f"input[{index}]"
        item = _item(entry, where)
        if item is None:  # reasoning: kept as sent
            item = {"summary": [], **entry}
        elif item["type"] == "message":
            item["content"] = [_stored_part(part, item["role"]) for part in item["content"]]
        item.setdefault("id", new_item_id(_INPUT_ID_PREFIX[item["type"]]))
        if item["type"] != "reasoning":
            item["status"] = "completed"
        out.append(item)
    return out
