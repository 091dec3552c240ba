"""Responses API objects built from chat answers: output items, usage, and the ``response``.

``chat_completion_to_response`` turns a hub ``chat.completion`` into the ``response`` object;
``adapters.responses_stream`` builds the same objects event by event from the same pieces here
(item shapes, finish-reason mapping, usage, ``response_object``). Pure: no I/O.

Where OpenAI's wire and its published schema disagree, the schema wins when leaving a field out
satisfies both: ``usage`` before the end and ``user`` when unset are omitted (OpenAI writes
``null``; the schema allows no null, and the SDK reads either).
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from adapters.base import Usage, count_in, read_usage, usage_from_openai
from adapters.shapes import now, random_hex

# ------------------------------------------------------------------ ids and small shapes


def new_item_id(prefix: str) -> str:
    """An id shaped like OpenAI's: ``msg_``, ``fc_``, ``rs_``, ``resp_`` + 48 random hex digits."""
    return f"{prefix}_{random_hex(24)}"


def output_text_part(text: str = "", logprobs: list[dict] | None = None) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def message_item(item_id: str, content: list[dict], status: str) -> dict:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {"id": item_id, "type": "function_call", "status": status, "arguments": arguments, "call_id": call_id, "name": name}


def reasoning_item(item_id: str, text: str, status: str) -> dict:
    return {"id": item_id, "type": "reasoning", "status": status, "summary": [], "content": [{"type": "reasoning_text", "text": text}]}


def chat_logprobs_to_response(entries: Any) -> list[dict]:
    """Chat ``logprobs.content`` entries as ``output_text`` logprobs (same fields, bytes never null)."""
    out = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        top = [
            {"token": t.get("token", ""), "logprob": t.get("logprob", 0.0), "bytes": t.get("bytes") or []}
            for t in entry.get("top_logprobs") or ()
            if isinstance(t, dict)
        ]
        out.append({"token": entry.get("token", ""), "logprob": entry.get("logprob", 0.0), "bytes": entry.get("bytes") or [], "top_logprobs": top})
    return out


def chat_finish_reason_to_status(reason: str | None) -> tuple[str, str | None]:
    """``(status, incomplete_details.reason)`` for a chat ``finish_reason``."""
    if reason == "length":
        return "incomplete", "max_output_tokens"
    if reason == "content_filter":
        return "incomplete", "content_filter"
    if reason not in (None, "stop", "tool_calls", "function_call"):
        logger.warning("unknown chat finish_reason; answering status=completed", finish_reason=reason)
    return "completed", None


def usage_to_response_usage(usage: Usage, *, reasoning_tokens: int = 0) -> dict:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def chat_reasoning_tokens(usage: Any) -> int:
    """``completion_tokens_details.reasoning_tokens`` of a chat ``usage`` object (0 if absent)."""
    details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    value = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def chat_usage_to_response_usage(usage: Any) -> dict | None:
    read = usage_from_openai(usage) if isinstance(usage, dict) else None
    return usage_to_response_usage(read, reasoning_tokens=chat_reasoning_tokens(usage)) if read else None


def _response_usage_of(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details")
    reasoning = usage.get("output_tokens_details")
    return Usage(
        prompt_tokens=count_in(usage, "input_tokens"),
        completion_tokens=count_in(usage, "output_tokens"),
        cached_tokens=count_in(details, "cached_tokens") if isinstance(details, dict) else 0,
        reasoning_tokens=count_in(reasoning, "reasoning_tokens") if isinstance(reasoning, dict) else 0,
    )


def read_response_usage(response: Any) -> tuple[Usage | None, bool]:
    """``(usage, unreadable)`` of a ``response`` object (native upstream answers, stored responses)."""
    return read_usage(_response_usage_of, response.get("usage") if isinstance(response, dict) else None)


def response_usage(response: dict) -> Usage | None:
    """The usage of a ``response`` object, None when absent or unreadable."""
    return read_response_usage(response)[0]


def chat_reasoning_text(message: dict) -> str | None:
    """Reasoning text some OpenAI-compatible servers put beside the answer."""
    for field in ("reasoning_content", "reasoning"):
        value = message.get(field)
        if isinstance(value, str) and value:
            return value
    return None


# ------------------------------------------------------------------ the response object


def _tool_echo(tool: dict) -> dict:
    return {
        "type": "function",
        "name": tool.get("name"),
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict"),
    }


def _echoed_settings(request: dict) -> dict:
    """The request's settings as OpenAI echoes them on every response (defaults filled in)."""
    get = request.get

    def given(field: str, default: Any) -> Any:
        value = get(field)
        return default if value is None else value

    reasoning = get("reasoning") or {}
    text = get("text") or {}
    echoed = {
        "background": False,
        "instructions": get("instructions"),
        "max_output_tokens": get("max_output_tokens"),
        "max_tool_calls": None,
        "parallel_tool_calls": given("parallel_tool_calls", True),
        "prompt_cache_key": get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": get("safety_identifier"),
        "store": given("store", True),
        "temperature": given("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity") or "medium"},
        "tool_choice": given("tool_choice", "auto"),
        "tools": [_tool_echo(tool) for tool in get("tools") or () if isinstance(tool, dict)],
        "top_logprobs": given("top_logprobs", 0),
        "top_p": given("top_p", 1.0),
        "truncation": given("truncation", "disabled"),
        "metadata": given("metadata", {}),
    }
    if get("user") is not None:  # the spec's user is never null
        echoed["user"] = request["user"]
    return echoed


def response_object(
    *,
    request: dict,
    response_id: str,
    created_at: int,
    model: str,
    status: str,
    output: list[dict],
    usage: dict | None = None,
    incomplete_reason: str | None = None,
    error: dict | None = None,
    previous_response_id: str | None = None,
    service_tier: str | None = None,
    completed_at: int | None = None,
) -> dict:
    """A ``response`` object; ``request`` is the Responses request body it answers.

    ``service_tier`` is the tier the upstream reports; without one the request's is echoed
    (``auto`` reads as ``default``, as OpenAI answers). ``completed_at`` defaults to now.
    """
    tier = service_tier or request.get("service_tier")
    out = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": (completed_at if completed_at is not None else now()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "model": model,
        "output": output,
        "previous_response_id": previous_response_id or request.get("previous_response_id"),
        "service_tier": tier if tier not in (None, "auto") else "default",
    }
    if usage is not None:  # OpenAI writes null before the end, but its schema has no null usage
        out["usage"] = usage
    out.update(_echoed_settings(request))
    return out


def chat_completion_to_response(
    completion: dict,
    *,
    request: dict,
    response_id: str,
    created_at: int,
    previous_response_id: str | None = None,
    completed_at: int | None = None,
) -> dict:
    """The ``response`` object for a hub ``chat.completion`` answering the Responses ``request``.

    Output order is OpenAI's: a ``reasoning`` item (only when the chat message carried reasoning
    text), the ``message`` (when there is text or a refusal), then one ``function_call`` per tool
    call. ``finish_reason`` length / content_filter make the response ``incomplete``, and its
    last item (the one that was cut, as in a stream) ``incomplete`` too.
    """
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    status, reason = chat_finish_reason_to_status(choice.get("finish_reason"))

    output: list[dict] = []
    reasoning = chat_reasoning_text(message)
    if reasoning:
        output.append(reasoning_item(new_item_id("rs"), reasoning, "completed"))
    parts = []
    if isinstance(message.get("content"), str) and message["content"]:
        logprobs = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}
        parts.append(output_text_part(message["content"], chat_logprobs_to_response(logprobs.get("content"))))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        output.append(message_item(new_item_id("msg"), parts, "completed"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        output.append(
            function_call_item(
                new_item_id("fc"),
                call.get("id") or new_item_id("call"),
                function.get("name") or "",
                arguments if isinstance(arguments, str) else "",
                "completed",
            )
        )
    if status == "incomplete" and output:
        output[-1]["status"] = "incomplete"
    return response_object(
        request=request,
        response_id=response_id,
        created_at=created_at,
        model=completion.get("model") or request.get("model") or "",
        status=status,
        output=output,
        usage=chat_usage_to_response_usage(completion.get("usage")),
        incomplete_reason=reason,
        previous_response_id=previous_response_id,
        service_tier=completion.get("service_tier") if isinstance(completion.get("service_tier"), str) else None,
        completed_at=completed_at,
    )

