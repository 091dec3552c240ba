"""The gateway's own OpenAPI 3.1 document, served at ``GET /openapi.json`` (``app.routes.health``).

Written by hand as data: ``DOCUMENT`` (a dict) and ``DOCUMENT_JSON`` (its bytes, rendered once).
It describes every route the gateway serves, and nothing else: methods, path and query
parameters, request bodies, the statuses each operation answers and the error envelopes, and
who may call what (``securitySchemes``: the client key as a bearer token, or as ``x-api-key`` on
``/v1/messages``; the admin key on ``/admin/v1``).

Request bodies follow the boundary that reads them, field by field:

- chat: ``app.inbound.parse_chat_request`` (unknown fields pass through: ``additionalProperties``);
- embeddings: ``app.inbound.parse_embeddings_request``;
- Responses: ``adapters.responses.responses_request_to_chat`` (strict: unknown fields are a 400);
- Anthropic Messages: ``adapters.messages`` (unknown fields are dropped);
- files and batches: ``app.routes.files``, ``app.batches.parse_create``;
- admin clients: ``app.clients.ClientInput`` / ``ClientChange`` (strict).

Every optional field may be ``null`` (the gateway reads null as "absent"), so their types
include ``"null"``. The limits that live in code (list sizes, expiry bounds, batch endpoints,
usage groups) are imported from it rather than copied. ``tests/test_openapi.py`` holds the
document to the router (every registered route is described, every described path is routed)
and validates it; ``tests/test_no_server_errors.py`` runs schemathesis against it.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.batch_input import BATCH_ENDPOINTS
from app.batches import LIST_LIMIT_MAX, METADATA_KEYS
from app.config import MAX_CONFIG_BYTES
from app.files import EXPIRES_MAX, EXPIRES_MIN
from app.inbound import ENCODING_FORMATS, MAX_EMBEDDING_INPUTS, MAX_STOP_SEQUENCES, ROLES, TOOL_CHOICE_MODES
from storage.base import RECENT_MAX
from storage.usage import GROUPS

JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    """``schema`` or ``null``: how every optional field reads (null means absent)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, dict], *, required: tuple[str, ...] = (), extra: bool = True, **more: Any) -> dict:
    """An object whose optional properties may be null; ``extra``: unknown fields allowed."""
    return {
        "type": "object",
        "properties": {name: schema if name in required else _nullable(schema) for name, schema in properties.items()},
        **({"required": list(required)} if required else {}),
        "additionalProperties": extra,
        **more,
    }


STRING = {"type": "string"}
NAME = {"type": "string", "minLength": 1}
BOOLEAN = {"type": "boolean"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
ANY_OBJECT = {"type": "object", "additionalProperties": True}
JSON_SCHEMA = {"type": "object", "additionalProperties": True, "description": "A JSON Schema (checked keyword by keyword, nesting at most 64 levels)."}
STRING_MAP = {"type": "object", "additionalProperties": STRING}
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"event": STRING, "data": STRING, "id": STRING},
    "description": "One server-sent event (OpenAPI before 3.2 describes each event): `data` is JSON, or `[DONE]` at a chat stream's end.",
}

# ---------------------------------------------------------------------------------- error envelopes

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": STRING,
                "type": STRING,
                "param": {"type": ["string", "null"], "description": "the request field at fault, as a path (messages[2].content)"},
                "code": {"type": ["string", "null"]},
            },
            "additionalProperties": True,
        }
    },
    "additionalProperties": True,
}
ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {"type": "object", "required": ["type", "message"], "properties": {"type": STRING, "message": STRING}, "additionalProperties": True},
    },
    "additionalProperties": True,
}

ERROR_TEXT = {
    400: "A malformed request: the body is not a JSON object, or a field is missing or wrong (`param` names it).",
    401: "No client key, or an unknown, revoked or expired one.",
    403: "The key may not use this model or provider.",
    404: "No such object, model or URL.",
    405: "The URL does not take this method.",
    409: "The request conflicts with the gateway's state.",
    413: "The body is larger than `server.max_body_mb` (for uploads, `files.max_mb`).",
    429: "A key window, the client's own window or its budget is full (`Retry-After` says when to come back).",
    502: "The upstream kept failing or rejected the gateway's key (never the gateway itself).",
    503: "Upstreams overloaded, or the runtime store unreachable.",
    504: "The retry budget ran out waiting for upstreams.",
}


def _error(status: int | str, schema: str = "Error") -> dict:
    description = ERROR_TEXT.get(status, "The upstream's own client error, relayed (provider keys scrubbed).")  # type: ignore[call-overload]
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _errors(*statuses: int | str, schema: str = "Error") -> dict[str, dict]:
    return {str(status): _error(status, schema) for status in statuses}


def _ok(schema: dict | str, description: str = "OK", *, status: int = 200, media: str = JSON, stream: bool = False) -> dict:
    content = {media: {"schema": _ref(schema) if isinstance(schema, str) else schema}}
    if stream:
        content["text/event-stream"] = {"schema": SSE_EVENT}
    return {str(status): {"description": description, "content": content}}


# Error statuses by kind of route: any route can answer a malformed request and a wrong method.
ANY_ROUTE = (400, 405)
CLIENT_ROUTE = (*ANY_ROUTE, 401)  # every /v1 route checks the client key
ADMIN_ROUTE = (*ANY_ROUTE, 401, 404)  # 404: admin_disabled while server.admin_api_key is unset
UPSTREAM_ROUTE = (403, 404, 413, "4XX", 429, 502, 503, 504)  # routes that reach a provider

CLIENT_SECURITY = [{"clientKey": []}]
ANTHROPIC_SECURITY = [{"anthropicKey": []}, {"clientKey": []}]
ADMIN_SECURITY = [{"adminKey": []}]


def _operation(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    responses: dict,
    security: list | None = None,
    parameters: list | None = None,
    body: dict | None = None,
    required: bool = True,
    description: str | None = None,
) -> dict:
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag], "security": security if security is not None else []}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": required, "content": body}
    operation["responses"] = responses
    return operation


def _json_body(schema: str) -> dict:
    return {JSON: {"schema": _ref(schema)}}


def _path(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": STRING}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _limit(maximum: int, default: int) -> dict:
    return _query("limit", {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}, f"page size, 1 to {maximum}")


AFTER = _query("after", STRING, "an id: the page starts after it")
ORDER = _query("order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}, "oldest or newest first")

# ---------------------------------------------------------------------------------- chat (app.inbound)

_CONTENT_PART = {
    "description": "A content part: a bare string, or an object whose `type` chooses its fields (unknown types pass through).",
    "anyOf": [
        STRING,
        _object({"type": {"enum": ["text", "input_text"]}, "text": STRING}, required=("type", "text")),
        _object(
            {
                "type": {"const": "image_url"},
                "image_url": {"anyOf": [STRING, _object({"url": STRING, "detail": STRING}, required=("url",))]},
            },
            required=("type", "image_url"),
        ),
        _object({"type": {"const": "input_audio"}, "input_audio": _object({"data": STRING, "format": STRING}, required=("data", "format"))}, required=("type", "input_audio")),
        _object({"type": {"const": "file"}, "file": _object({"filename": STRING, "file_data": STRING, "file_id": STRING})}, required=("type", "file")),
        _object({"type": {"const": "refusal"}, "refusal": STRING}, required=("type", "refusal")),
    ],
}
_TOOL_CALL = {
    "anyOf": [
        _object(
            {
                "id": STRING,
                "type": {"const": "function"},
                "function": _object({"name": STRING, "arguments": {"anyOf": [STRING, ANY_OBJECT]}}, required=("name",)),
            },
            required=("function",),
        ),
        _object({"id": STRING, "type": {"const": "custom"}, "custom": _object({"name": STRING, "input": STRING}, required=("name",))}, required=("type", "custom")),
    ]
}
CHAT_MESSAGE = _object(
    {
        "role": {"type": "string", "enum": sorted(ROLES)},
        "content": {"anyOf": [STRING, {"type": "array", "items": _CONTENT_PART}]},
        "name": STRING,
        "tool_call_id": {"type": "string", "description": "required for role tool"},
        "refusal": STRING,
        "tool_calls": {"type": "array", "items": _TOOL_CALL},
        "audio": _object({"id": STRING}, required=("id",)),
        "function_call": _object({"name": STRING, "arguments": STRING}),
    },
    required=("role",),
    description="A chat message; role `tool` needs `tool_call_id`, role `function` needs `name`.",
)
_FUNCTION_TOOL = _object(
    {
        "type": {"const": "function"},
        "function": _object({"name": NAME, "description": STRING, "parameters": JSON_SCHEMA, "strict": BOOLEAN}, required=("name",)),
    },
    required=("function",),
)
_CUSTOM_TOOL = _object(
    {"type": {"const": "custom"}, "custom": _object({"name": NAME, "description": STRING, "format": ANY_OBJECT}, required=("name",))},
    required=("type", "custom"),
)
_NAMED = {
    kind: _object({"type": {"const": kind}, kind: _object({"name": STRING}, required=("name",))}, required=("type", kind)) for kind in ("function", "custom")
}
TOOL_CHOICE = {
    "anyOf": [
        {"type": "string", "enum": list(TOOL_CHOICE_MODES)},
        _NAMED["function"],
        _NAMED["custom"],
        _object(
            {
                "type": {"const": "allowed_tools"},
                "allowed_tools": _object({"mode": STRING, "tools": {"type": "array", "items": ANY_OBJECT}}, required=("mode", "tools")),
            },
            required=("type", "allowed_tools"),
        ),
    ]
}
RESPONSE_FORMAT = _object(
    {
        "type": STRING,
        "json_schema": _object({"name": STRING, "description": STRING, "schema": JSON_SCHEMA, "strict": BOOLEAN}, required=("name",)),
    },
    required=("type",),
    description="`text`, `json_object`, or `json_schema` (which needs `json_schema.name`).",
)
CHAT_REQUEST = _object(
    {
        "model": NAME,
        "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "n": {"type": "integer", "minimum": 1, "maximum": 128},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "seed": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
        "top_k": INTEGER,
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "logprobs": BOOLEAN,
        "stream": BOOLEAN,
        "store": BOOLEAN,
        "parallel_tool_calls": BOOLEAN,
        "user": STRING,
        "safety_identifier": {"type": "string", "maxLength": 64},
        "prompt_cache_key": STRING,
        "prompt_cache_retention": STRING,
        "reasoning_effort": STRING,
        "service_tier": STRING,
        "verbosity": STRING,
        "stop": {"anyOf": [STRING, {"type": "array", "maxItems": MAX_STOP_SEQUENCES, "items": STRING}]},
        "logit_bias": {"type": "object", "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100}},
        "metadata": STRING_MAP,
        "modalities": {"type": "array", "items": STRING},
        "audio": _object({"voice": {"anyOf": [STRING, _object({"id": STRING}, required=("id",))]}, "format": STRING}, required=("voice", "format")),
        "prediction": _object(
            {"type": STRING, "content": {"anyOf": [STRING, {"type": "array", "items": _object({"type": STRING, "text": STRING}, required=("type", "text"))}]}},
            required=("type", "content"),
        ),
        "stream_options": _object({"include_usage": BOOLEAN, "include_obfuscation": BOOLEAN}),
        "response_format": RESPONSE_FORMAT,
        "tools": {"type": "array", "items": {"anyOf": [_FUNCTION_TOOL, _CUSTOM_TOOL]}},
        "tool_choice": TOOL_CHOICE,
        "functions": {"type": "array", "items": _object({"name": NAME, "description": STRING, "parameters": JSON_SCHEMA}, required=("name",))},
        "function_call": {"anyOf": [{"type": "string", "enum": ["none", "auto"]}, _object({"name": STRING}, required=("name",))]},
        "web_search_options": ANY_OBJECT,
        "prompt_cache_options": ANY_OBJECT,
        "moderation": ANY_OBJECT,
    },
    required=("model", "messages"),
    description="OpenAI's CreateChatCompletionRequest as far as the gateway reads it; every other field travels upstream untouched.",
)
CHAT_COMPLETION = {
    "type": "object",
    "required": ["id", "object", "choices"],
    "properties": {"id": STRING, "object": {"const": "chat.completion"}, "model": STRING, "choices": {"type": "array", "items": ANY_OBJECT}, "usage": ANY_OBJECT},
    "additionalProperties": True,
}

# ---------------------------------------------------------------------------------- embeddings

_TOKENS = {"type": "array", "minItems": 1, "items": INTEGER}
EMBEDDINGS_REQUEST = _object(
    {
        "model": NAME,
        "input": {
            "anyOf": [
                NAME,
                {"type": "array", "minItems": 1, "maxItems": MAX_EMBEDDING_INPUTS, "items": NAME},
                _TOKENS,
                {"type": "array", "minItems": 1, "maxItems": MAX_EMBEDDING_INPUTS, "items": _TOKENS},
            ]
        },
        "encoding_format": {"type": "string", "enum": list(ENCODING_FORMATS)},
        "dimensions": {"type": "integer", "minimum": 1},
        "user": STRING,
    },
    required=("model", "input"),
)
EMBEDDINGS = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ANY_OBJECT}, "model": STRING, "usage": ANY_OBJECT},
    "additionalProperties": True,
}

# ---------------------------------------------------------------------------------- models

MODEL = {
    "type": "object",
    "required": ["id", "object", "owned_by"],
    "properties": {"id": STRING, "object": {"const": "model"}, "created": INTEGER, "owned_by": STRING},
    "additionalProperties": False,
}


def _list_of(item: str, *, paged: bool = False) -> dict:
    properties: dict[str, Any] = {"object": {"const": "list"}, "data": {"type": "array", "items": _ref(item)}}
    if paged:
        properties |= {"first_id": {"type": ["string", "null"]}, "last_id": {"type": ["string", "null"]}, "has_more": BOOLEAN}
    return {"type": "object", "required": ["object", "data"], "properties": properties, "additionalProperties": True}


# ---------------------------------------------------------------------------------- Responses (adapters.responses)

_INPUT_PART = _object(
    {"type": {"enum": ["input_text", "output_text", "refusal", "input_image"]}, "text": STRING, "refusal": STRING, "image_url": STRING, "detail": {"enum": ["auto", "low", "high"]}},
    required=("type",),
    description="`input_text` / `output_text` with `text`, `refusal` with `refusal`, `input_image` with an http(s) or data `image_url` (user messages only).",
)
RESPONSES_INPUT_ITEM = {
    "anyOf": [
        _object(
            {
                "type": {"const": "message"},
                "role": {"enum": ["user", "system", "developer", "assistant"]},
                "content": {"anyOf": [STRING, {"type": "array", "items": _INPUT_PART}]},
                "id": STRING,
            },
            required=("role", "content"),
        ),
        _object({"type": {"const": "function_call"}, "call_id": NAME, "name": NAME, "arguments": STRING, "id": STRING}, required=("type", "call_id", "name", "arguments")),
        _object(
            {
                "type": {"const": "function_call_output"},
                "call_id": NAME,
                "output": {"anyOf": [STRING, {"type": "array", "items": _object({"type": {"const": "input_text"}, "text": STRING}, required=("type", "text"))}]},
                "id": STRING,
            },
            required=("type", "call_id", "output"),
        ),
        _object({"type": {"const": "reasoning"}}, required=("type",), description="kept in storage, not sent to the model"),
    ]
}
RESPONSES_REQUEST = _object(
    {
        "model": NAME,
        "input": {"anyOf": [STRING, {"type": "array", "items": RESPONSES_INPUT_ITEM}]},
        "instructions": STRING,
        "previous_response_id": NAME,
        "temperature": NUMBER,
        "top_p": NUMBER,
        "max_output_tokens": INTEGER,
        "parallel_tool_calls": BOOLEAN,
        "store": BOOLEAN,
        "metadata": STRING_MAP,
        "include": {"type": "array", "items": STRING},
        "truncation": {"const": "disabled"},
        "service_tier": STRING,
        "prompt_cache_key": STRING,
        "background": {"const": False},
        "stream_options": ANY_OBJECT,
        "tools": {
            "type": "array",
            "items": _object({"type": {"const": "function"}, "name": NAME, "description": STRING, "parameters": ANY_OBJECT, "strict": BOOLEAN}, required=("type", "name"), extra=False),
        },
        "tool_choice": {"anyOf": [{"enum": ["auto", "none", "required"]}, _object({"type": {"const": "function"}, "name": NAME}, required=("type", "name"), extra=False)]},
        "text": _object(
            {
                "format": _object(
                    {"type": {"enum": ["text", "json_object", "json_schema"]}, "name": NAME, "schema": ANY_OBJECT, "strict": BOOLEAN, "description": STRING},
                    required=("type",),
                    extra=False,
                    description="`json_schema` needs `name` and `schema`",
                ),
                "verbosity": {"enum": ["low", "medium", "high"]},
            },
            extra=False,
        ),
        "reasoning": _object({"effort": STRING, "summary": STRING, "generate_summary": STRING, "mode": STRING, "context": STRING}, extra=False),
        "user": STRING,
        "safety_identifier": STRING,
        "stream": BOOLEAN,
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
    },
    required=("model",),
    extra=False,
    description="OpenAI's Responses request as the gateway translates it to chat; a field it cannot carry is a 400 `unsupported_parameter`.",
)
RESPONSE = {
    "type": "object",
    "required": ["id", "object"],
    "properties": {"id": STRING, "object": {"const": "response"}, "status": STRING, "model": STRING, "output": {"type": "array", "items": ANY_OBJECT}},
    "additionalProperties": True,
}

# ---------------------------------------------------------------------------------- Anthropic Messages (adapters.messages)

_TEXT_BLOCK = _object({"type": {"const": "text"}, "text": STRING}, required=("type", "text"))
_IMAGE_SOURCE = {
    "anyOf": [
        _object({"type": {"const": "base64"}, "media_type": {"type": "string", "pattern": r"^[\w.+\-]+/[\w.+\-]+$"}, "data": NAME}, required=("type", "media_type", "data")),
        _object({"type": {"const": "url"}, "url": {"type": "string", "pattern": "^https?://"}}, required=("type", "url")),
    ]
}
_IMAGE_BLOCK = _object({"type": {"const": "image"}, "source": _IMAGE_SOURCE}, required=("type", "source"))
_MESSAGE_BLOCK = {
    "anyOf": [
        _TEXT_BLOCK,
        _IMAGE_BLOCK,
        _object({"type": {"const": "tool_use"}, "id": NAME, "name": NAME, "input": ANY_OBJECT}, required=("type", "id", "name")),
        _object(
            {"type": {"const": "tool_result"}, "tool_use_id": NAME, "content": {"anyOf": [STRING, {"type": "array", "items": {"anyOf": [_TEXT_BLOCK, _IMAGE_BLOCK]}}]}, "is_error": BOOLEAN},
            required=("type", "tool_use_id"),
        ),
        _object({"type": {"enum": ["thinking", "redacted_thinking"]}}, required=("type",)),
    ]
}
_MESSAGES_FIELDS = {
    "model": NAME,
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    "system": {"anyOf": [STRING, {"type": "array", "items": _TEXT_BLOCK}]},
    "messages": {
        "type": "array",
        "minItems": 1,
        "items": _object({"role": {"enum": ["user", "assistant"]}, "content": {"anyOf": [STRING, {"type": "array", "items": _MESSAGE_BLOCK}]}}, required=("role", "content")),
    },
    "stop_sequences": {"type": "array", "items": NAME},
    "temperature": NUMBER,
    "top_p": NUMBER,
    "top_k": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    "metadata": _object({"user_id": STRING}),
    "stream": BOOLEAN,
    "tools": {"type": "array", "items": _object({"type": {"const": "custom"}, "name": NAME, "description": STRING, "input_schema": ANY_OBJECT}, required=("name", "input_schema"))},
    "tool_choice": _object({"type": {"enum": ["auto", "any", "tool", "none"]}, "name": NAME, "disable_parallel_tool_use": BOOLEAN}, required=("type",)),
    "thinking": _object({"type": {"enum": ["enabled", "disabled", "adaptive"]}, "budget_tokens": {"type": "integer", "minimum": 0}}, required=("type",)),
    "output_config": _object({"effort": {"enum": ["low", "medium", "high", "xhigh", "max"]}, "format": _object({"type": {"const": "json_schema"}, "schema": ANY_OBJECT}, required=("type", "schema"))}),
    "output_format": _object({"type": {"const": "json_schema"}, "schema": ANY_OBJECT}, required=("type", "schema")),
}
MESSAGES_REQUEST = _object(
    _MESSAGES_FIELDS,
    required=("model", "max_tokens", "messages"),
    description="Anthropic's Messages request: sent natively to Anthropic providers, translated for the others (unknown fields dropped).",
)
COUNT_TOKENS_REQUEST = _object({name: schema for name, schema in _MESSAGES_FIELDS.items() if name != "max_tokens"}, required=("model", "messages"))
MESSAGE = {
    "type": "object",
    "required": ["id", "type", "role", "content"],
    "properties": {"id": STRING, "type": {"const": "message"}, "role": {"const": "assistant"}, "content": {"type": "array", "items": ANY_OBJECT}},
    "additionalProperties": True,
}

# ---------------------------------------------------------------------------------- files and batches

FILE_UPLOAD = {
    "type": "object",
    "required": ["file", "purpose"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "UTF-8 JSONL"},
        "purpose": {"const": "batch"},
        "expires_after[anchor]": {"const": "created_at"},
        "expires_after[seconds]": {"type": "integer", "minimum": EXPIRES_MIN, "maximum": EXPIRES_MAX},
    },
}
FILE = {
    "type": "object",
    "required": ["id", "object"],
    "properties": {"id": STRING, "object": {"const": "file"}, "bytes": INTEGER, "filename": STRING, "purpose": STRING},
    "additionalProperties": True,
}
DELETED = {"type": "object", "required": ["id", "deleted"], "properties": {"id": STRING, "object": STRING, "deleted": BOOLEAN}, "additionalProperties": True}
BATCH_REQUEST = _object(
    {
        "input_file_id": NAME,
        "endpoint": {"enum": list(BATCH_ENDPOINTS)},
        "completion_window": {"type": "string", "description": "`24h`, or a shorter duration such as `1h`"},
        "metadata": {"type": "object", "maxProperties": METADATA_KEYS, "additionalProperties": {"type": "string", "maxLength": 512}},
        "output_expires_after": _object(
            {"anchor": {"const": "created_at"}, "seconds": {"type": "integer", "minimum": EXPIRES_MIN, "maximum": EXPIRES_MAX}}, required=("anchor", "seconds")
        ),
    },
    required=("input_file_id", "endpoint", "completion_window"),
)
BATCH = {
    "type": "object",
    "required": ["id", "object", "status"],
    "properties": {"id": STRING, "object": {"const": "batch"}, "status": STRING, "endpoint": STRING, "request_counts": ANY_OBJECT},
    "additionalProperties": True,
}

# ---------------------------------------------------------------------------------- admin (app.clients)

_CLIENT_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "allowed_providers": {"type": "array", "minItems": 1, "items": STRING, "description": "provider ids, or `*`"},
    "allowed_models": {"type": "array", "minItems": 1, "items": NAME},
    "limits": _object({"req_per_min": {"type": "integer", "exclusiveMinimum": 0}, "tokens_per_min": {"type": "integer", "exclusiveMinimum": 0}}, extra=False),
    "budgets": _object({"usd_per_day": {"type": "number", "minimum": 0}, "usd_per_month": {"type": "number", "minimum": 0}}, extra=False),
    "expires_at": {"type": "string", "format": "date-time", "description": "in the future"},
    "cache_namespace": {"type": "string", "minLength": 1, "maxLength": 200},
    "metadata": {"type": "object", "additionalProperties": True, "description": "at most 16 KiB of JSON"},
}
CLIENT_INPUT = _object(_CLIENT_FIELDS, required=("name",), extra=False)
CLIENT_CHANGE = _object(_CLIENT_FIELDS, extra=False, description="`limits`, `budgets` and `metadata` merge (null removes a field); the others replace.")
CLIENT = {
    "type": "object",
    "required": ["object", "id", "name", "key_hint", "revoked"],
    "properties": {"object": {"const": "client"}, "id": STRING, "name": STRING, "key_hint": STRING, "revoked": BOOLEAN, "key": {"type": "string", "description": "only when created"}},
    "additionalProperties": True,
}
CONFIG_CHECK = {
    "type": "object",
    "required": ["valid", "errors"],
    "properties": {"valid": BOOLEAN, "errors": {"type": "array", "items": STRING}},
    "additionalProperties": False,
}
RELOAD = {"type": "object", "required": ["reloaded", "errors"], "properties": {"reloaded": {"type": ["boolean", "string"]}, "errors": {"type": "array"}}, "additionalProperties": True}

# ---------------------------------------------------------------------------------- the operations

_CHAT_ERRORS = _errors(*CLIENT_ROUTE, *UPSTREAM_ROUTE)
_STORE_ERRORS = _errors(*CLIENT_ROUTE, 404, 503)
_ANTHROPIC_ERRORS = _errors(*CLIENT_ROUTE, *UPSTREAM_ROUTE, schema="AnthropicError")
_ADMIN_ERRORS = _errors(*ADMIN_ROUTE, 503)

MODEL_ID = _path("model_id", "a model id as `GET /v1/models` lists it (may contain `/`)")
RESPONSE_ID = _path("response_id", "a response id (`resp_...`)")
FILE_ID = _path("file_id", "a file id (`file-...`)")
BATCH_ID = _path("batch_id", "a batch id (`batch_...`)")
CLIENT_ID = _path("client_id", "a runtime client id (`cl_...`)")
KEY_LABEL = _path("label", "a provider key's masked id, URL-encoded (`openai%232`), or its `state_id`")
ASSET = _path("name", "a dashboard file name")
TEXT = {"type": "string"}

PATHS: dict[str, dict] = {
    "/openapi.json": {
        "get": _operation("getOpenAPI", "This document", tag="meta", responses={**_ok({"type": "object"}), **_errors(*ANY_ROUTE)}),
    },
    "/health/live": {
        "get": _operation("live", "Liveness: the process is up", tag="health", responses={**_ok(ANY_OBJECT), **_errors(*ANY_ROUTE)}),
    },
    "/health/ready": {
        "get": _operation(
            "ready",
            "Readiness: storage answers and a provider has keys",
            tag="health",
            responses={**_ok(ANY_OBJECT), "503": {"description": "not ready, or draining", "content": {JSON: {"schema": ANY_OBJECT}}}, **_errors(*ANY_ROUTE)},
        ),
    },
    "/metrics": {
        "get": _operation("metrics", "Prometheus metrics", tag="health", responses={**_ok(TEXT, media="text/plain"), **_errors(*ANY_ROUTE)}),
    },
    "/v1/chat/completions": {
        "post": _operation(
            "createChatCompletion",
            "Chat, unary or streamed (`stream: true`)",
            tag="openai",
            security=CLIENT_SECURITY,
            body=_json_body("ChatRequest"),
            responses={**_ok("ChatCompletion", stream=True), **_CHAT_ERRORS},
        ),
    },
    "/v1/embeddings": {
        "post": _operation(
            "createEmbeddings", "Embeddings", tag="openai", security=CLIENT_SECURITY, body=_json_body("EmbeddingsRequest"), responses={**_ok("Embeddings"), **_CHAT_ERRORS}
        ),
    },
    "/v1/models": {
        "get": _operation("listModels", "The models this key may use", tag="openai", security=CLIENT_SECURITY, responses={**_ok(_list_of("Model")), **_errors(*CLIENT_ROUTE)}),
    },
    "/v1/models/{model_id}": {
        "get": _operation(
            "getModel", "One model", tag="openai", security=CLIENT_SECURITY, parameters=[MODEL_ID], responses={**_ok("Model"), **_errors(*CLIENT_ROUTE, 404)}
        ),
    },
    "/v1/responses": {
        "post": _operation(
            "createResponse",
            "A Responses API turn, unary or streamed",
            tag="openai",
            security=CLIENT_SECURITY,
            body=_json_body("ResponsesRequest"),
            responses={**_ok("Response", stream=True), **_CHAT_ERRORS},
        ),
    },
    "/v1/responses/{response_id}": {
        "get": _operation("getResponse", "A stored response", tag="openai", security=CLIENT_SECURITY, parameters=[RESPONSE_ID], responses={**_ok("Response"), **_STORE_ERRORS}),
        "delete": _operation(
            "deleteResponse", "Delete a stored response", tag="openai", security=CLIENT_SECURITY, parameters=[RESPONSE_ID], responses={**_ok(DELETED), **_STORE_ERRORS}
        ),
    },
    "/v1/responses/{response_id}/input_items": {
        "get": _operation(
            "listInputItems",
            "A stored response's input items",
            tag="openai",
            security=CLIENT_SECURITY,
            parameters=[RESPONSE_ID, ORDER, _limit(100, 20), AFTER],
            responses={**_ok({"type": "object", "required": ["object", "data"], "properties": {"object": {"const": "list"}, "data": {"type": "array"}}}), **_STORE_ERRORS},
        ),
    },
    "/v1/messages": {
        "post": _operation(
            "createMessage",
            "Anthropic Messages, unary or streamed",
            tag="anthropic",
            security=ANTHROPIC_SECURITY,
            body=_json_body("MessagesRequest"),
            responses={**_ok("Message", stream=True), **_ANTHROPIC_ERRORS},
            description="Errors on this path come in Anthropic's envelope.",
        ),
    },
    "/v1/messages/count_tokens": {
        "post": _operation(
            "countTokens",
            "The prompt's size as the gateway reserves it (no upstream call)",
            tag="anthropic",
            security=ANTHROPIC_SECURITY,
            body=_json_body("CountTokensRequest"),
            responses={
                **_ok({"type": "object", "required": ["input_tokens"], "properties": {"input_tokens": INTEGER}}),
                **_errors(*CLIENT_ROUTE, 403, 404, schema="AnthropicError"),
            },
        ),
    },
    "/v1/files": {
        "post": _operation(
            "uploadFile",
            "Upload a batch input file",
            tag="batches",
            security=CLIENT_SECURITY,
            body={"multipart/form-data": {"schema": _ref("FileUpload")}},
            responses={**_ok("File"), **_errors(*CLIENT_ROUTE, 413, 503)},
        ),
        "get": _operation(
            "listFiles",
            "The key's files",
            tag="batches",
            security=CLIENT_SECURITY,
            parameters=[ORDER, _limit(10_000, 10_000), AFTER, _query("purpose", STRING, "only files of this purpose")],
            responses={**_ok(_list_of("File", paged=True)), **_errors(*CLIENT_ROUTE, 503)},
        ),
    },
    "/v1/files/{file_id}": {
        "get": _operation("getFile", "A file's metadata", tag="batches", security=CLIENT_SECURITY, parameters=[FILE_ID], responses={**_ok("File"), **_STORE_ERRORS}),
        "delete": _operation("deleteFile", "Delete a file", tag="batches", security=CLIENT_SECURITY, parameters=[FILE_ID], responses={**_ok(DELETED), **_STORE_ERRORS}),
    },
    "/v1/files/{file_id}/content": {
        "get": _operation(
            "getFileContent",
            "A file's bytes",
            tag="batches",
            security=CLIENT_SECURITY,
            parameters=[FILE_ID],
            responses={**_ok({"type": "string", "format": "binary"}, media="application/octet-stream"), **_STORE_ERRORS},
        ),
    },
    "/v1/batches": {
        "post": _operation(
            "createBatch", "Create a batch", tag="batches", security=CLIENT_SECURITY, body=_json_body("BatchRequest"), responses={**_ok("Batch"), **_STORE_ERRORS}
        ),
        "get": _operation(
            "listBatches",
            "The key's batches",
            tag="batches",
            security=CLIENT_SECURITY,
            parameters=[_limit(LIST_LIMIT_MAX, 20), AFTER],
            responses={**_ok(_list_of("Batch", paged=True)), **_errors(*CLIENT_ROUTE, 503)},
        ),
    },
    "/v1/batches/{batch_id}": {
        "get": _operation("getBatch", "A batch", tag="batches", security=CLIENT_SECURITY, parameters=[BATCH_ID], responses={**_ok("Batch"), **_STORE_ERRORS}),
    },
    "/v1/batches/{batch_id}/cancel": {
        "post": _operation("cancelBatch", "Cancel a batch", tag="batches", security=CLIENT_SECURITY, parameters=[BATCH_ID], responses={**_ok("Batch"), **_STORE_ERRORS}),
    },
    "/admin": {
        "get": _operation(
            "dashboardRedirect",
            "Redirect to the dashboard",
            tag="dashboard",
            responses={"308": {"description": "to /admin/"}, **_errors(*ANY_ROUTE, 404)},
        ),
    },
    "/admin/": {
        "get": _operation(
            "dashboard",
            "The dashboard page (its data needs the admin key)",
            tag="dashboard",
            responses={**_ok(TEXT, media="text/html"), **_errors(*ANY_ROUTE, 404)},
        ),
    },
    "/admin/assets/{name}": {
        "get": _operation(
            "dashboardAsset",
            "A dashboard file",
            tag="dashboard",
            parameters=[ASSET],
            responses={
                "200": {"description": "OK", "content": {media: {"schema": TEXT} for media in ("text/css", "text/javascript", "image/svg+xml", "text/html")}},
                **_errors(*ANY_ROUTE, 404),
            },
        ),
    },
    "/admin/v1/config": {
        "get": _operation("getConfig", "The effective config, secrets masked", tag="admin", security=ADMIN_SECURITY, responses={**_ok(ANY_OBJECT), **_errors(*ADMIN_ROUTE)}),
    },
    "/admin/v1/config/reload": {
        "post": _operation(
            "reloadConfig",
            "Read the config file again and apply it",
            tag="admin",
            security=ADMIN_SECURITY,
            responses={
                **_ok(RELOAD),
                "202": {"description": "every worker is reloading", "content": {JSON: {"schema": RELOAD}}},
                "400": {"description": "the file is invalid: nothing changed", "content": {JSON: {"schema": {"anyOf": [RELOAD, _ref("Error")]}}}},
                **_errors(405, 401, 404, 409),
            },
        ),
    },
    "/admin/v1/config/validate": {
        "post": _operation(
            "validateConfig",
            "Validate a posted YAML or JSON config",
            tag="admin",
            security=ADMIN_SECURITY,
            body={
                media: {"schema": {"type": "string", "maxLength": MAX_CONFIG_BYTES} if media != JSON else ANY_OBJECT}
                for media in ("application/yaml", JSON, "text/plain")
            },
            required=False,
            responses={**_ok("ConfigCheck", "Any document gets this answer, valid or not"), **_errors(*ADMIN_ROUTE, 413)},
        ),
    },
    "/admin/v1/usage": {
        "get": _operation(
            "getUsage",
            "Usage totals in a time range",
            tag="admin",
            security=ADMIN_SECURITY,
            parameters=[
                _query("from", STRING, "unix seconds or ISO 8601 (default: 24 h before `to`)"),
                _query("to", STRING, "unix seconds or ISO 8601 (default: now)"),
                _query("group_by", {"enum": list(GROUPS), "default": "provider"}, "how rows are grouped"),
            ],
            responses={**_ok(ANY_OBJECT), **_ADMIN_ERRORS},
        ),
    },
    "/admin/v1/cache": {
        "delete": _operation(
            "purgeCache",
            "Purge the response cache",
            tag="admin",
            security=ADMIN_SECURITY,
            responses={**_ok({"type": "object", "required": ["object", "deleted"], "properties": {"object": {"const": "cache.purge"}, "deleted": INTEGER}}), **_ADMIN_ERRORS},
        ),
    },
    "/admin/v1/queue": {
        "get": _operation("getQueue", "The job queue and unfinished batches", tag="admin", security=ADMIN_SECURITY, responses={**_ok(ANY_OBJECT), **_ADMIN_ERRORS}),
    },
    "/admin/v1/keys": {
        "get": _operation(
            "listKeys",
            "Each provider key's windows, limits, health and history",
            tag="admin",
            security=ADMIN_SECURITY,
            parameters=[_query("minutes", {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60}, "history length")],
            responses={**_ok(ANY_OBJECT), **_ADMIN_ERRORS},
        ),
    },
    "/admin/v1/keys/{label}/reset": {
        "post": _operation(
            "resetKey",
            "Lift a key's cooldown and clear its failures",
            tag="admin",
            security=ADMIN_SECURITY,
            parameters=[KEY_LABEL],
            responses={**_ok({"type": "object", "required": ["object", "id"], "properties": {"object": {"const": "key.reset"}, "id": STRING}}), **_ADMIN_ERRORS},
        ),
    },
    "/admin/v1/overview": {
        "get": _operation("getOverview", "The gateway's last minute and day so far", tag="admin", security=ADMIN_SECURITY, responses={**_ok(ANY_OBJECT), **_ADMIN_ERRORS}),
    },
    "/admin/v1/requests": {
        "get": _operation(
            "listRequests",
            "The newest request records",
            tag="admin",
            security=ADMIN_SECURITY,
            parameters=[_limit(RECENT_MAX, 50)],
            responses={**_ok({"type": "object", "required": ["object", "data"], "properties": {"object": {"const": "list"}, "data": {"type": "array"}}}), **_ADMIN_ERRORS},
        ),
    },
    "/admin/v1/clients": {
        "post": _operation(
            "createClient",
            "Create a client key (shown once)",
            tag="admin",
            security=ADMIN_SECURITY,
            body=_json_body("ClientInput"),
            responses={**_ok("Client", "Created", status=201), **_ADMIN_ERRORS},
        ),
        "get": _operation("listClients", "Runtime clients with their spend", tag="admin", security=ADMIN_SECURITY, responses={**_ok(_list_of("Client")), **_ADMIN_ERRORS}),
    },
    "/admin/v1/clients/{client_id}": {
        "get": _operation("getClient", "A runtime client", tag="admin", security=ADMIN_SECURITY, parameters=[CLIENT_ID], responses={**_ok("Client"), **_ADMIN_ERRORS}),
        "patch": _operation(
            "changeClient",
            "Change a client",
            tag="admin",
            security=ADMIN_SECURITY,
            parameters=[CLIENT_ID],
            body=_json_body("ClientChange"),
            responses={**_ok("Client"), **_ADMIN_ERRORS},
        ),
        "delete": _operation("revokeClient", "Revoke a client key", tag="admin", security=ADMIN_SECURITY, parameters=[CLIENT_ID], responses={**_ok("Client"), **_ADMIN_ERRORS}),
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "coo-llm",
        "version": "1",
        "description": (
            "An OpenAI-compatible LLM gateway. Every error is an OpenAI error envelope (Anthropic's on /v1/messages). "
            "The gateway answers no request with a 5xx of its own: 502, 503 and 504 mean an upstream (or the runtime store) failed."
        ),
    },
    "servers": [{"url": "/"}],
    "tags": [{"name": name} for name in ("openai", "anthropic", "batches", "admin", "dashboard", "health", "meta")],
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "clientKey": {"type": "http", "scheme": "bearer", "description": "a client key (config `api_keys`, or a runtime client's `sk-coo-...`)"},
            "anthropicKey": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "a client key, the way the anthropic SDKs send it"},
            "adminKey": {"type": "http", "scheme": "bearer", "description": "`server.admin_api_key`"},
        },
        "schemas": {
            "Error": ERROR,
            "AnthropicError": ANTHROPIC_ERROR,
            "ChatRequest": CHAT_REQUEST,
            "ChatMessage": CHAT_MESSAGE,
            "ChatCompletion": CHAT_COMPLETION,
            "EmbeddingsRequest": EMBEDDINGS_REQUEST,
            "Embeddings": EMBEDDINGS,
            "Model": MODEL,
            "ResponsesRequest": RESPONSES_REQUEST,
            "Response": RESPONSE,
            "MessagesRequest": MESSAGES_REQUEST,
            "CountTokensRequest": COUNT_TOKENS_REQUEST,
            "Message": MESSAGE,
            "FileUpload": FILE_UPLOAD,
            "File": FILE,
            "BatchRequest": BATCH_REQUEST,
            "Batch": BATCH,
            "ClientInput": CLIENT_INPUT,
            "ClientChange": CLIENT_CHANGE,
            "Client": CLIENT,
            "ConfigCheck": CONFIG_CHECK,
        },
    },
}

DOCUMENT_JSON: bytes = orjson.dumps(DOCUMENT)
