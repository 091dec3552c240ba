"""Google Gemini (``type: gemini``) behind the OpenAI API: ``generateContent``,
``streamGenerateContent?alt=sse`` and ``batchEmbedContents``.

Request (``build_chat``):

- ``system`` / ``developer`` messages become ``systemInstruction``; ``assistant`` becomes role
  ``model``, its ``tool_calls`` ``functionCall`` parts; ``tool`` results become
  ``functionResponse`` parts in a user turn, named after the call they answer (found by
  ``tool_call_id`` in the earlier assistant turn). Same-role turns are merged.
- Images must be data URLs (``inlineData``); Gemini cannot fetch remote URLs, so those are a 400.
- Parameters follow ``GEMINI_PARAMS`` (mostly ``generationConfig`` fields). ``response_format``
  becomes ``responseMimeType`` plus ``responseSchema`` (``json_schema_to_gemini`` rewrites the
  JSON Schema into Gemini's OpenAPI subset, or gives a 400 naming what it cannot express).
- The key travels in the ``x-goog-api-key`` header, never in the URL, where logs would see it.

Response: each candidate becomes a choice; text parts join into ``content`` (thought parts are
left out), ``functionCall`` parts become ``tool_calls`` with generated ids (Gemini 3 calls
streamed in ``partialArgs`` pieces are assembled first: ``adapters.gemini_calls``).
``finishReason`` maps by ``gemini_finish_reason_to_finish_reason`` (``STOP`` with calls ->
``tool_calls``). A prompt blocked by ``promptFeedback.blockReason`` (no candidates) becomes a 200 answer with
``finish_reason: content_filter``, ``content: null`` and a ``refusal`` naming the block reason.
A candidate's ``logprobsResult`` (asked for with ``logprobs`` / ``top_logprobs``) becomes the
choice's ``logprobs`` (``gemini_logprobs_to_logprobs``); in streams, each chunk's own.
Usage: prompt = ``promptTokenCount`` (+ tool-use prompt), completion = candidates + thoughts,
cached = ``cachedContentTokenCount``. Streams repeat usage on every chunk: the last one counts.
An answer or stream that carries only usage (no candidate content, no ``finishReason``) is a
valid empty completion, finish reason ``stop`` (see ``GeminiStream``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

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
    read_count,
    read_usage,
)
from adapters.gemini_calls import CallAssembler
from adapters.params import OPENAI_ONLY, Handling, Param, apply_params, as_list, by_code, ignore, reject, set_path
from adapters.shapes import (
    MAX_NESTING,
    ChunkHead,
    Image,
    choice,
    completion,
    content_parts,
    embeddings_list,
    function_tools,
    named_tool_choice,
    nesting_exceeds,
    new_id,
    now,
    requested_max_tokens,
    text_of,
    tool_call_arguments,
    usage_object,
)
from adapters.sse import DONE_FRAME

# Gemini 3 wants the thought signature of a function call it made back with that call; OpenAI
# clients cannot carry it, and Google documents this value for calls whose signature is unknown.
UNKNOWN_THOUGHT_SIGNATURE = "skip_thought_signature_validator"

REASONING_BUDGETS = {"none": 0, "minimal": 128, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}


def reasoning_effort_to_thinking_budget(effort: Any) -> int:
    if effort not in REASONING_BUDGETS:
        raise AdapterError(f"'reasoning_effort' must be one of {', '.join(REASONING_BUDGETS)}.", param="reasoning_effort", code="invalid_value")
    return REASONING_BUDGETS[effort]


GEMINI_PARAMS: dict[str, Param] = {
    **OPENAI_ONLY,
    "messages": by_code("system -> systemInstruction; assistant -> model; tool calls -> functionCall; tool results -> functionResponse"),
    "max_tokens": by_code("generationConfig.maxOutputTokens"),
    "max_completion_tokens": by_code("generationConfig.maxOutputTokens"),
    "temperature": Param("generationConfig.temperature"),
    "top_p": Param("generationConfig.topP"),
    "top_k": Param("generationConfig.topK", note="not an OpenAI parameter; passed to providers that have it"),
    "stop": Param("generationConfig.stopSequences", as_list),
    "seed": Param("generationConfig.seed"),
    "n": Param("generationConfig.candidateCount"),
    "presence_penalty": Param("generationConfig.presencePenalty"),
    "frequency_penalty": Param("generationConfig.frequencyPenalty"),
    "reasoning_effort": Param(
        "generationConfig.thinkingConfig.thinkingBudget",
        reasoning_effort_to_thinking_budget,
        Handling.EMULATED,
        "a thinking budget: none 0, minimal 128, low 1024, medium 8192, high 24576, xhigh 32768 tokens",
    ),
    "logprobs": Param("generationConfig.responseLogprobs", note="each chosen token's log probability (`logprobsResult`), on models that return them"),
    "top_logprobs": by_code("generationConfig.logprobs when above 0 (needs `logprobs: true`)"),
    "response_format": by_code("generationConfig.responseMimeType + responseSchema"),
    "tools": by_code("tools[].functionDeclarations"),
    "tool_choice": by_code("toolConfig.functionCallingConfig: AUTO, ANY, NONE, allowedFunctionNames"),
    "parallel_tool_calls": reject("it has no switch for parallel function calls", True),
    "user": ignore("Gemini has no end-user id; it cannot change the answer"),
    "safety_identifier": ignore("Gemini has no end-user id; it cannot change the answer"),
}

GEMINI_EMBEDDING_PARAMS: dict[str, Param] = {
    "model": by_code("the target's model"),
    "input": by_code("one request per input text"),
    "encoding_format": by_code("base64 is encoded by the gateway", Handling.EMULATED),
    "dimensions": Param("outputDimensionality"),
    "user": ignore("Gemini has no end-user id"),
}

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "LANGUAGE": "stop",
    "OTHER": "stop",
    "MALFORMED_FUNCTION_CALL": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}

# google.rpc status -> (outcome, OpenAI error type)
GOOGLE_STATUSES: dict[str, tuple[Outcome, str]] = {
    "INVALID_ARGUMENT": (Outcome.CLIENT_ERROR, "invalid_request_error"),
    "FAILED_PRECONDITION": (Outcome.CLIENT_ERROR, "invalid_request_error"),
    "OUT_OF_RANGE": (Outcome.CLIENT_ERROR, "invalid_request_error"),
    "NOT_FOUND": (Outcome.CLIENT_ERROR, "invalid_request_error"),
    "UNAUTHENTICATED": (Outcome.AUTH, "authentication_error"),
    "PERMISSION_DENIED": (Outcome.AUTH, "permission_error"),
    "RESOURCE_EXHAUSTED": (Outcome.RATE_LIMITED, "rate_limit_error"),
    "UNAVAILABLE": (Outcome.OVERLOADED, "server_error"),
    "INTERNAL": (Outcome.SERVER_ERROR, "server_error"),
    "UNKNOWN": (Outcome.SERVER_ERROR, "server_error"),
    "ABORTED": (Outcome.SERVER_ERROR, "server_error"),
    "DEADLINE_EXCEEDED": (Outcome.TIMEOUT, "server_error"),
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


# ------------------------------------------------------------------ converters


def gemini_finish_reason_to_finish_reason(reason: str | None, *, has_tool_calls: bool = False) -> str:
    if has_tool_calls and reason in (None, "STOP"):
        return "tool_calls"
    if reason is None:
        return "stop"
    found = FINISH_REASONS.get(reason)
    if found is None:
        logger.warning("unknown Gemini finishReason; answering finish_reason=stop", finish_reason=reason)
        return "stop"
    return found


def gemini_usage_to_usage(meta: Any) -> tuple[Usage, int] | None:
    """``(usage, reasoning tokens)`` from ``usageMetadata``; thoughts are billed as output.

    None when absent; ``UnreadableUsage`` (see ``adapters.base.read_usage``) for a count that is
    not one, or a ``usageMetadata`` that is not an object."""
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise UnreadableUsage("usageMetadata")
    thoughts = count_in(meta, "thoughtsTokenCount")
    prompt = count_in(meta, "promptTokenCount") + count_in(meta, "toolUsePromptTokenCount")
    completion_tokens = count_in(meta, "candidatesTokenCount") + thoughts
    return Usage(prompt, completion_tokens, count_in(meta, "cachedContentTokenCount")), thoughts


def google_duration_to_seconds(value: Any) -> float | None:
    """``"34.4s"`` (protobuf Duration in JSON) -> 34.4."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


# JSON Schema keywords Gemini's Schema (an OpenAPI 3.0 subset) keeps as they are.
_SCHEMA_KEEP = frozenset(
    {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "minProperties", "maxProperties",
     "minLength", "maxLength", "pattern", "example", "default", "minimum", "maximum", "propertyOrdering", "required"}
)
# Keywords with no Gemini equivalent that only tighten or annotate: dropped.
_SCHEMA_DROP = frozenset(
    {"$schema", "$id", "$comment", "additionalProperties", "unevaluatedProperties", "examples", "strict", "deprecated",
     "readOnly", "writeOnly", "contentMediaType", "contentEncoding", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "$defs", "definitions"}
)
_GEMINI_FORMATS = frozenset({"enum", "date-time", "int32", "int64", "float", "double"})


# Each $ref is copied in place, so a few references can multiply a schema (a chain of n definitions
# each naming the next twice is 2**n schemas); past these limits the request is refused.
MAX_SCHEMA_NODES = 10_000
MAX_REF_CHAIN = 64


def json_schema_to_gemini(schema: Any, where: str) -> dict:
    """Rewrite a JSON Schema into Gemini's ``Schema``; ``AdapterError`` naming ``where`` when it
    uses something Gemini cannot express (recursive ``$ref``, ``not``, conditionals...), when a
    ``$ref`` points at something that is not a schema, or when expanding its ``$ref``s would give
    more than ``MAX_SCHEMA_NODES`` schemas or chains longer than ``MAX_REF_CHAIN``."""
    return _SchemaRewrite(schema).convert(schema, where, ())


@dataclass(slots=True)
class _SchemaRewrite:
    root: Any
    nodes_left: int = MAX_SCHEMA_NODES

    def convert(self, schema: Any, where: str, seen: tuple[str, ...]) -> dict:
        if not isinstance(schema, dict):
            raise AdapterError(f"{where}: a schema must be an object.", param=where, code="invalid_value")
        self.nodes_left -= 1
        if self.nodes_left < 0:
            raise AdapterError(
                f"{where}: the schema is too large for Gemini once its $refs are expanded (more than {MAX_SCHEMA_NODES} schemas).",
                param=where,
                code="invalid_value",
            )
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen:
                raise AdapterError(f"{where}: recursive schemas ({ref}) cannot be expressed for Gemini.", param=where)
            if len(seen) >= MAX_REF_CHAIN:
                raise AdapterError(f"{where}: $refs chained more than {MAX_REF_CHAIN} deep cannot be expanded for Gemini.", param=where)
            resolved = _resolve_ref(self.root, ref, where)
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.convert({**resolved, **rest}, where, seen + (ref,))
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _SCHEMA_DROP:
                continue
            if key == "type" and isinstance(value, list):
                kinds = [k for k in value if k != "null"]
                if len(kinds) != 1 or not isinstance(kinds[0], str):
                    raise AdapterError(f"{where}: a value of several types cannot be expressed for Gemini.", param=where)
                out["type"] = kinds[0]
                if "null" in value:
                    out["nullable"] = True
            elif key == "format":
                if isinstance(value, str) and value in _GEMINI_FORMATS:
                    out["format"] = value
            elif key == "const":
                out["enum"] = [value]
            elif key == "properties":
                if not isinstance(value, dict):
                    raise AdapterError(f"{where}.properties must be an object of schemas.", param=where, code="invalid_value")
                out["properties"] = {name: self.convert(sub, f"{where}.properties.{name}", seen) for name, sub in value.items()}
            elif key == "items":
                out["items"] = self.convert(value, f"{where}.items", seen)
            elif key in ("anyOf", "oneOf"):
                if not isinstance(value, list):
                    raise AdapterError(f"{where}.{key} must be an array of schemas.", param=where, code="invalid_value")
                options = [self.convert(sub, f"{where}.{key}[{i}]", seen) for i, sub in enumerate(value)]
                non_null = [o for o in options if o.get("type") != "null"]
                if len(non_null) < len(options):
                    out["nullable"] = True
                if len(non_null) == 1:
                    out.update(non_null[0])
                else:
                    out["anyOf"] = non_null
            elif key == "allOf" and isinstance(value, list) and len(value) == 1:
                out.update(self.convert(value[0], f"{where}.allOf[0]", seen))
            elif key in _SCHEMA_KEEP:
                out[key] = value
            else:
                raise AdapterError(f"{where}: the JSON Schema keyword {key!r} cannot be expressed for Gemini.", param=where)
        return out


def _resolve_ref(root: dict, ref: Any, where: str) -> dict:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise AdapterError(f"{where}: only local $refs (#/...) can be expressed for Gemini.", param=where)
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        raise AdapterError(f"{where}: $ref {ref} points nowhere.", param=where, code="invalid_value")
    return node


def openai_messages_to_gemini(messages: list) -> tuple[dict | None, list[dict]]:
    """``(systemInstruction, contents)`` for ``generateContent`` (see the module docstring)."""
    system: list[str] = []
    contents: list[dict] = []
    call_names: dict[str, str] = {}
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
            parts = [image_to_gemini_part(piece) if isinstance(piece, Image) else {"text": piece}
                     for piece in content_parts(message.get("content"), f"{where}.content")]
        elif role == "assistant":
            upstream_role = "model"
            text = text_of(message.get("content"), f"{where}.content")
            parts = [{"text": text}] if text else []
            for position, call in enumerate(message.get("tool_calls") or []):
                call_id, name, arguments = tool_call_arguments(call, f"{where}.tool_calls[{position}]")
                call_names[call_id] = name
                parts.append({"functionCall": {"name": name, "args": arguments}, "thoughtSignature": UNKNOWN_THOUGHT_SIGNATURE})
        elif role == "tool":
            upstream_role = "user"
            call_id = message.get("tool_call_id")
            name = call_names.get(call_id) if isinstance(call_id, str) else None
            if name is None:
                raise AdapterError(
                    f"{where}.tool_call_id does not match a tool call of an earlier assistant message "
                    "(Gemini needs the function's name).",
                    param=f"{where}.tool_call_id",
                )
            parts = [{"functionResponse": {"name": name, "response": tool_result_object(text_of(message.get("content"), f"{where}.content"))}}]
        else:
            raise AdapterError(f"{where}: role {role!r} cannot be sent to Gemini.", param=f"{where}.role")
        if not parts:
            continue
        if contents and contents[-1]["role"] == upstream_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": upstream_role, "parts": parts})
    instruction = {"parts": [{"text": "\n\n".join(system)}]} if system else None
    return instruction, contents


def tool_result_object(text: str) -> dict:
    """A ``functionResponse.response`` must be an object: a JSON object result is kept as it is,
    other JSON is wrapped, and text (or JSON nested too deeply to send on) is sent as text."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"result": text}
    if nesting_exceeds(value, MAX_NESTING):
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def image_to_gemini_part(image: Image) -> dict:
    if image.url is not None:
        raise AdapterError(
            f"{image.where}: Gemini cannot fetch image URLs; send the image as a base64 data: URL.", param=image.where, code="invalid_value"
        )
    return {"inlineData": {"mimeType": image.mime, "data": image.data}}


def openai_tools_to_gemini(tools: Any) -> list[dict]:
    declarations = []
    for index, function in enumerate(function_tools(tools)):
        declaration = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if parameters and (parameters.get("properties") or parameters.get("type") not in (None, "object")):
            declaration["parameters"] = json_schema_to_gemini(parameters, f"tools[{index}].function.parameters")
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def openai_tool_choice_to_gemini(choice: Any) -> dict | None:
    if choice is None:
        return None
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
    if isinstance(choice, str):
        if choice not in modes:
            raise AdapterError("'tool_choice' must be none, auto, required or a named function.", param="tool_choice", code="invalid_value")
        return {"functionCallingConfig": {"mode": modes[choice]}}
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [named_tool_choice(choice)]}}


def openai_response_format_to_gemini(response_format: Any) -> dict:
    """The ``generationConfig`` fields for ``response_format``."""
    if not isinstance(response_format, dict):
        raise AdapterError("'response_format' must be an object.", param="response_format", code="invalid_type")
    kind = response_format.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise AdapterError("'response_format.json_schema' must be an object.", param="response_format.json_schema", code="invalid_type")
        out = {"responseMimeType": "application/json"}
        if spec.get("schema"):
            out["responseSchema"] = json_schema_to_gemini(spec["schema"], "response_format.json_schema.schema")
        return out
    raise AdapterError("'response_format.type' must be text, json_object or json_schema.", param="response_format.type", code="invalid_value")


@lru_cache(maxsize=64)
def gemini_base(base_url: str) -> str:
    """``base_url`` with its API version; a bare host gets ``/v1beta``."""
    base = base_url.rstrip("/")
    return base + "/v1beta" if urlsplit(base).path in ("", "/") else base


def model_url(base_url: str, model: str, method: str) -> str:
    name = model if model.startswith(("models/", "tunedModels/")) else "models/" + model
    return f"{gemini_base(base_url)}/{quote(name, safe='/-._')}:{method}"


def google_error(data: Any, status: int | None, headers: Mapping[str, str] | None = None, text: str = "") -> UpstreamError:
    """An ``UpstreamError`` from Google's ``{"error": {"code", "message", "status", "details"}}``
    (odd field types, see ``error_envelope``)."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):  # some endpoints wrap it in a list
        error = data[0].get("error")
    if isinstance(error, str):
        error = {"message": error}
    error = error if isinstance(error, dict) else {}
    state = error.get("status")
    code = error.get("code")
    status = status or (code if type(code) is int and 100 <= code <= 599 else None)
    details = [d for d in error.get("details") if isinstance(d, dict)] if isinstance(error.get("details"), list) else []
    known = GOOGLE_STATUSES.get(state) if isinstance(state, str) else None
    if known is None:
        if state is not None:
            logger.warning("unknown Google error status; classifying by HTTP status", google_status=state, status=status)
        outcome, openai_type = (outcome_for_status(status) if status else Outcome.SERVER_ERROR), "upstream_error"
    else:
        outcome, openai_type = known
    if any(d.get("reason") == "API_KEY_INVALID" for d in details):
        outcome, openai_type = Outcome.AUTH, "authentication_error"  # Google says 400 for a bad key
    retry_after = parse_retry_after(headers) if headers is not None else None
    if retry_after is None:
        delays = [google_duration_to_seconds(d.get("retryDelay")) for d in details if "retryDelay" in d]
        retry_after = next((d for d in delays if d is not None), None)
    envelope = error_envelope(
        error.get("message"), text or f"upstream answered HTTP {status}", error_type=openai_type, code=state.lower() if isinstance(state, str) else None
    )
    return UpstreamError(outcome, status, envelope["error"]["message"], retry_after, envelope)


# ------------------------------------------------------------------ candidates -> choices


@dataclass(slots=True)
class CandidateParts:
    text: list[str] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)  # OpenAI tool_calls entries completed by these parts
    any_parts: bool = False  # the candidate had content parts (of any kind, thoughts included)


def candidate_parts(candidate: dict, calls: CallAssembler) -> CandidateParts:
    """Answer text (thoughts left out) and the function calls ``calls`` completes with this
    candidate's parts (the assembler keeps a call streamed in pieces until it is whole)."""
    out = CandidateParts()
    content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
    parts = content.get("parts") if isinstance(content.get("parts"), list) else []
    out.any_parts = bool(parts)
    for part in parts:
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        if isinstance(part.get("functionCall"), dict):
            out.calls.extend(calls.add(part["functionCall"]))
        elif isinstance(part.get("text"), str):
            if part["text"]:
                out.text.append(part["text"])
        elif not part.keys() <= {"thoughtSignature"}:
            logger.warning("skipping a Gemini part the OpenAI shape cannot carry", part_keys=sorted(part))
    return out


def _logprob_entry(candidate: Any) -> dict:
    # Google's JSON leaves out proto3 defaults, so a missing logProbability is 0.0 and a missing token "".
    token = candidate.get("token") if isinstance(candidate, dict) and isinstance(candidate.get("token"), str) else ""
    logprob = candidate.get("logProbability") if isinstance(candidate, dict) else None
    return {"token": token, "logprob": float(logprob) if isinstance(logprob, (int, float)) else 0.0, "bytes": list(token.encode())}


def gemini_logprobs_to_logprobs(result: Any) -> dict | None:
    """A candidate's ``logprobsResult`` as an OpenAI choice's ``logprobs`` (None when absent).

    ``chosenCandidates[i]`` is the token picked at step i and ``topCandidates[i].candidates`` the
    alternatives Gemini ranked there; they become ``content[i]`` and its ``top_logprobs``."""
    if not isinstance(result, dict) or not isinstance(result.get("chosenCandidates"), list):
        return None
    tops = result.get("topCandidates") if isinstance(result.get("topCandidates"), list) else []
    content = []
    for step, chosen in enumerate(result["chosenCandidates"]):
        entry = _logprob_entry(chosen)
        ranked = tops[step].get("candidates") if step < len(tops) and isinstance(tops[step], dict) else None
        entry["top_logprobs"] = [_logprob_entry(c) for c in ranked] if isinstance(ranked, list) else []
        content.append(entry)
    return {"content": content, "refusal": None}


def blocked_prompt_refusal(data: dict) -> str | None:
    """The refusal text for a prompt Gemini blocked (``promptFeedback.blockReason``), else None."""
    feedback = data.get("promptFeedback") if isinstance(data.get("promptFeedback"), dict) else {}
    reason = feedback.get("blockReason")
    if not reason:
        return None
    return f"The provider blocked the prompt (promptFeedback.blockReason: {reason})."


# ------------------------------------------------------------------ the adapter


class GeminiAdapter:
    kind = "gemini"
    default_headers: dict[str, str] = {}

    def auth_headers(self, secret: str) -> dict[str, str]:
        return {"x-goog-api-key": secret}

    def build_chat(self, chat: dict, target, *, stream: bool) -> UpstreamRequest:
        if target.drop_params:
            chat = {name: value for name, value in chat.items() if name not in target.drop_params}
        body = apply_params(chat, GEMINI_PARAMS, provider="gemini")
        instruction, contents = openai_messages_to_gemini(chat.get("messages") or [])
        if not contents:
            raise AdapterError("Gemini needs at least one user or assistant message besides system messages.", param="messages")
        body["contents"] = contents
        if instruction:
            body["systemInstruction"] = instruction
        if chat.get("top_logprobs"):
            if chat.get("logprobs") is not True:
                raise AdapterError("'top_logprobs' needs 'logprobs': true.", param="top_logprobs")
            set_path(body, "generationConfig.logprobs", chat["top_logprobs"])
        max_tokens = requested_max_tokens(chat, target)
        if max_tokens:
            set_path(body, "generationConfig.maxOutputTokens", max_tokens)
        if chat.get("response_format") is not None:
            for name, value in openai_response_format_to_gemini(chat["response_format"]).items():
                set_path(body, f"generationConfig.{name}", value)
        if chat.get("tools"):
            body["tools"] = openai_tools_to_gemini(chat["tools"])
            config = openai_tool_choice_to_gemini(chat.get("tool_choice"))
            if config:
                body["toolConfig"] = config
        elif chat.get("tool_choice") not in (None, "auto", "none"):
            raise AdapterError("'tool_choice' needs 'tools'.", param="tool_choice")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return UpstreamRequest(model_url(target.base_url, target.model, method), orjson.dumps(body))

    def parse_chat(self, body: bytes, *, model: str) -> ChatResult:
        data = load_json(body, "a response")
        if not isinstance(data, dict):
            raise UpstreamError(Outcome.SERVER_ERROR, 200, "upstream sent JSON that is not a Gemini response")
        candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
        if candidates:
            choices = []
            for position, candidate in enumerate(candidates):
                calls = CallAssembler()
                parts = candidate_parts(candidate, calls)
                parts.calls.extend(calls.close())
                finish = gemini_finish_reason_to_finish_reason(candidate.get("finishReason"), has_tool_calls=bool(parts.calls))
                content = "".join(parts.text) if parts.text else None
                logprobs = gemini_logprobs_to_logprobs(candidate.get("logprobsResult"))
                choices.append(choice(candidate.get("index", position), content, parts.calls, finish, logprobs=logprobs))
        else:
            refusal = blocked_prompt_refusal(data)
            if refusal is not None:
                choices = [choice(0, None, [], "content_filter", refusal)]
            elif data.get("usageMetadata") is not None:
                choices = [choice(0, "", [], "stop")]  # only usage: an empty answer, as in streams
            else:
                raise UpstreamError(Outcome.SERVER_ERROR, 200, "Gemini answered with no candidates, no block reason and no usage")
        read, unreadable = read_usage(gemini_usage_to_usage, data.get("usageMetadata"))
        usage, reasoning = read or (None, 0)
        answer = completion(
            data.get("responseId") or new_id(),
            data.get("modelVersion") or model,
            choices,
            usage_object(usage, reasoning) if usage else None,
        )
        return ChatResult(orjson.dumps(answer), usage, unreadable)

    def stream_translator(self, *, model: str, include_usage: bool) -> "GeminiStream":
        return GeminiStream(model=model, include_usage=include_usage)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        text = body[:300].decode("utf-8", "replace").strip() if data is None else ""
        return google_error(data, status, headers, text)

    def build_embeddings(self, body: dict, target) -> UpstreamRequest:
        if target.drop_params:
            body = {name: value for name, value in body.items() if name not in target.drop_params}
        extra = apply_params(body, GEMINI_EMBEDDING_PARAMS, provider="gemini")
        name = target.model if target.model.startswith("models/") else "models/" + target.model
        requests = [{"model": name, "content": {"parts": [{"text": text}]}, **extra} for text in embedding_texts(body.get("input"))]
        return UpstreamRequest(model_url(target.base_url, target.model, "batchEmbedContents"), orjson.dumps({"requests": requests}))

    def parse_embeddings(self, body: bytes, *, model: str, request: dict) -> ChatResult:
        data = load_json(body, "an embeddings response")
        embeddings = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(embeddings, list):
            raise UpstreamError(Outcome.SERVER_ERROR, 200, "upstream sent JSON that is not a batchEmbedContents response")
        vectors = [e.get("values") or [] for e in embeddings if isinstance(e, dict)]
        meta = data.get("usageMetadata") if isinstance(data.get("usageMetadata"), dict) else {}
        reported = meta.get("promptTokenCount")
        tokens = read_count(reported) if reported is not None else None
        unreadable = reported is not None and tokens is None
        if tokens is None:  # batchEmbedContents reports no usage: estimate as for window reservations
            tokens = sum(max(1, len(text) // 4) for text in embedding_texts(request.get("input")))
        answer = embeddings_list(model, vectors, tokens, request.get("encoding_format"))
        return ChatResult(orjson.dumps(answer), None if unreadable else Usage(tokens, 0), unreadable)


def embedding_texts(value: Any) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise AdapterError("Gemini embeds text: 'input' must be a non-empty string or array of non-empty strings (not tokens).", param="input")
    return texts


# ------------------------------------------------------------------ streams


@dataclass(slots=True)
class CandidateState:
    role_sent: bool = False
    tool_calls: int = 0
    finished: bool = False
    calls: CallAssembler = field(default_factory=CallAssembler)


@dataclass(slots=True)
class GeminiStreamState:
    head: ChunkHead
    candidates: dict[int, CandidateState] = field(default_factory=dict)
    blocked: bool = False
    reasoning_tokens: int = 0
    content_seen: bool = False  # some candidate had content parts
    usage_seen: bool = False  # some chunk had usageMetadata (readable or not)


class GeminiStream:
    """Gemini ``alt=sse`` chunks -> OpenAI ``chat.completion.chunk`` frames (see ``StreamTranslator``).

    Each chunk is a whole ``GenerateContentResponse``: new text, function calls (each sent as one
    tool-call delta with complete arguments, once whole: Gemini 3 streams a call's arguments in
    ``partialArgs`` pieces, see ``adapters.gemini_calls``), and on the last one ``finishReason``.
    Usage repeats, cumulative, on every chunk; the last seen is the usage. The stream has no end
    event: it ends with the HTTP body, and one that ends before any ``finishReason`` is a broken
    stream, unless it carried only usage (no candidate content at all): that is an empty
    completion, finish reason ``stop``. Its role chunk is sent as soon as a usage-only chunk
    arrives with nothing sent yet, because dispatch keeps an upstream only once a frame exists
    (a stream with no frame at all is retried elsewhere).
    """

    def __init__(self, *, model: str, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.state = GeminiStreamState(ChunkHead(new_id(), model, now()))
        self.usage: Usage | None = None
        self.usage_unreadable = False
        self.done = False

    def feed(self, event: SSEEvent) -> list[bytes]:
        if not event.data.strip():
            return []
        data = load_json_event(event.data)
        if "error" in data and "candidates" not in data:
            raise google_error(data, None)
        state = self.state
        if not state.candidates and not state.blocked:
            state.head.id = data.get("responseId") or state.head.id
            state.head.model = data.get("modelVersion") or state.head.model
        if data.get("usageMetadata") is not None:
            state.usage_seen = True
            read, self.usage_unreadable = read_usage(gemini_usage_to_usage, data["usageMetadata"])
            self.usage, state.reasoning_tokens = read or (None, 0)
        frames: list[bytes] = []
        candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
        for position, candidate in enumerate(candidates):
            frames.extend(self._candidate(candidate.get("index", position), candidate))
        if not candidates and not state.blocked:
            refusal = blocked_prompt_refusal(data)
            if refusal is not None:
                state.blocked = True
                first = state.candidates.setdefault(0, CandidateState())
                delta = {"content": None, "refusal": refusal} if first.role_sent else {"role": "assistant", "content": None, "refusal": refusal}
                first.role_sent = True
                frames.append(state.head.chunk(0, delta))
                frames.append(state.head.chunk(0, {}, "content_filter"))
        if not frames and state.usage_seen and not state.content_seen and not state.blocked:
            first = state.candidates.setdefault(0, CandidateState())
            if not first.role_sent:  # so far, a stream of only usage: commit to it (see the docstring)
                first.role_sent = True
                frames.append(state.head.chunk(0, {"role": "assistant", "content": ""}))
        return frames

    def _candidate(self, index: int, candidate: dict) -> list[bytes]:
        state = self.state.candidates.setdefault(index, CandidateState())
        if state.finished:
            return []
        parts = candidate_parts(candidate, state.calls)
        self.state.content_seen |= parts.any_parts
        reason = candidate.get("finishReason")
        if reason:
            parts.calls.extend(state.calls.close())
        delta: dict[str, Any] = {}
        if parts.text:
            delta["content"] = "".join(parts.text)
        if parts.calls:
            delta["tool_calls"] = [{"index": state.tool_calls + n, **call} for n, call in enumerate(parts.calls)]
            state.tool_calls += len(parts.calls)
        # This chunk's tokens' log probabilities go with its content, else with its finish chunk.
        logprobs = gemini_logprobs_to_logprobs(candidate.get("logprobsResult"))
        frames = []
        if delta:
            if not state.role_sent:
                state.role_sent = True
                delta = {"role": "assistant", **delta}
            frames.append(self.state.head.chunk(index, delta, logprobs=logprobs))
            logprobs = None
        if reason:
            state.finished = True
            delta = {} if state.role_sent else {"role": "assistant", "content": ""}
            state.role_sent = True
            finish = gemini_finish_reason_to_finish_reason(reason, has_tool_calls=state.tool_calls > 0)
            frames.append(self.state.head.chunk(index, delta, finish, logprobs=logprobs))
        return frames

    def finish(self) -> list[bytes]:
        state = self.state
        frames = []
        if not state.blocked and not any(c.finished for c in state.candidates.values()):
            if state.content_seen or not state.usage_seen:
                raise UpstreamError(Outcome.SERVER_ERROR, None, "the Gemini stream ended before a finishReason")
            # Only usage came: an empty completion (its role chunk normally went out from feed()).
            first = state.candidates.setdefault(0, CandidateState())
            frames.append(state.head.chunk(0, {} if first.role_sent else {"role": "assistant", "content": ""}, "stop"))
            first.role_sent = first.finished = True
        self.done = True
        if self.include_usage and self.usage is not None:
            frames.append(state.head.usage_chunk(usage_object(self.usage, state.reasoning_tokens)))
        frames.append(DONE_FRAME)
        return frames
