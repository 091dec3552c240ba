"""The inbound boundary: a chat or embeddings body is decoded once and checked whole.

``parse_chat_request(raw)`` and ``parse_embeddings_request(raw)`` decode the bytes with orjson and
check every field the gateway reads or an adapter translates, following OpenAI's
``CreateChatCompletionRequest`` / ``CreateEmbeddingRequest``: types and numeric ranges as the spec
gives them, the values adapters branch on (roles, content part, tool, tool-call, tool_choice and
response_format types, tool_choice modes), and the JSON Schemas in ``tools`` and
``response_format``, recursively. A violation raises ``InvalidRequest`` naming the parameter
(``param="messages[2].tool_calls[0].function.name"``) with code ``invalid_type``,
``invalid_value`` or ``missing_required_parameter``; bytes that are not a JSON object are
``invalid_json``. ``check_nesting`` holds the other front doors' bodies (Responses, Anthropic
Messages) to the same nesting limit. Whatever the boundary accepts, every adapter either
translates or refuses with ``AdapterError``; nothing downstream checks types again
(``tests/test_inbound.py`` holds both sides to that with generated bodies).

Lenient where real clients are:

- ``null`` for an optional field means "the default"; integers are numbers.
- Fields the gateway does not know, at the top level and inside messages, content parts, tools
  and tool calls, pass through untouched, and so do objects whose ``type`` it does not know (a
  vLLM content part, a newer tool type): the upstream judges them, and a translating adapter
  refuses what it cannot carry.
- String enums OpenAI keeps extending (``reasoning_effort``, ``service_tier``, ``verbosity``,
  ``modalities``, audio voices and formats, image ``detail``) are checked as strings only.
- Tool-call ``arguments`` may be an object as well as a JSON string, a content array may hold
  bare strings, a tool or tool call without ``type`` is a function.

Anywhere in the body, arrays and objects nest at most ``MAX_NESTING`` (64) levels, the body
itself being level 0; deeper is a 400 naming the top-level field holding it (orjson reads 1,024
levels but writes only 254, so such a body used to crash the adapters' ``orjson.dumps``).

The prompt estimate is computed in the same pass, with ``app.tokens``' arithmetic.
Why orjson and hand-written checks rather than msgspec or pydantic: ``python -m
bench.inbound_speed`` (its docstring has the numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping

import orjson

from adapters.shapes import MAX_NESTING, nesting_exceeds
from app.errors import InvalidRequest
from app.tokens import IMAGE_PART_TYPES, prompt_estimate, text_tokens

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TOOL_CHOICE_MODES = ("none", "auto", "required")
ENCODING_FORMATS = ("float", "base64")
MAX_STOP_SEQUENCES = 4  # CreateChatCompletionRequest.stop: maxItems 4
MAX_EMBEDDING_INPUTS = 2048  # CreateEmbeddingRequest.input: maxItems 2048


# Not frozen: a frozen dataclass's __init__ costs more (0.6 µs) than checking a small body's fields.
@dataclass(slots=True)
class ChatRequest:
    """A checked chat request. ``body`` is the client's JSON as decoded (unknown fields kept)."""

    body: dict
    model: str
    stream: bool
    include_usage: bool  # stream_options.include_usage on a stream
    max_tokens: int | None  # max_completion_tokens, else max_tokens
    prompt_tokens: int  # the estimate the windows reserve


@dataclass(slots=True)
class EmbeddingsRequest:
    body: dict
    model: str
    prompt_tokens: int


def parse_json_object(raw: bytes) -> dict:
    """The decoded body; ``InvalidRequest(code="invalid_json")`` unless it is one JSON object."""
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("We could not parse the JSON body of your request.", code="invalid_json") from None
    if type(body) is not dict:
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


# ------------------------------------------------------------------ violations


class _Invalid(Exception):
    """A violation below the top level. ``path`` grows as the exception unwinds through the
    containers, so the happy path never builds a path string."""

    def __init__(self, code: str, detail: str = "", *path: str | int) -> None:
        self.code = code
        self.detail = detail
        self.path: list[str | int] = list(path)

    def under(self, *segments: str | int) -> "_Invalid":
        self.path[:0] = segments
        return self

    def request_error(self) -> InvalidRequest:
        param = _param(self.path)
        if self.code == "missing_required_parameter":
            message = f"Missing required parameter: '{param}'."
        elif self.code == "invalid_type":
            message = f"Invalid type for '{param}': {self.detail}."
        else:
            message = f"Invalid value for '{param}': {self.detail}."
        return InvalidRequest(message, param=param, code=self.code)


class _TooDeep(_Invalid):
    def __init__(self) -> None:
        super().__init__("invalid_value")

    def request_error(self) -> InvalidRequest:
        field = str(self.path[0])
        message = f"Invalid value for '{field}': arrays and objects nest more than {MAX_NESTING} levels deep."
        return InvalidRequest(message, param=field, code=self.code)


def _param(path: list[str | int]) -> str:
    out = ""
    for segment in path:
        out += f"[{segment}]" if type(segment) is int else (f".{segment}" if out else segment)
    return out


_KINDS = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array", dict: "an object"}


def _wrong_type(expected: str, value: Any, *path: str | int) -> _Invalid:
    return _Invalid("invalid_type", f"expected {expected}, got {_KINDS.get(type(value), 'something else')}", *path)


def _bad_value(detail: str, *path: str | int) -> _Invalid:
    return _Invalid("invalid_value", detail, *path)


def _missing(*path: str | int) -> _Invalid:
    return _Invalid("missing_required_parameter", "", *path)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


# ------------------------------------------------------------------ field checkers
#
# A checker takes a value that is not null (null means "absent" and is skipped by the caller) and
# raises _Invalid with the path below that value. Levels: the body is 0, a top-level field's
# value 1, and so on; a container at a level above MAX_NESTING is too deep.

Check = Callable[[Any], Any]


def _free(value: Any, level: int) -> None:
    """Any JSON at ``level``, as long as it does not nest too deeply."""
    if (type(value) is dict or type(value) is list) and nesting_exceeds(value, MAX_NESTING - level + 1):
        raise _TooDeep()


def _fields(known: Mapping[str, Check], level: int, required: tuple[str, ...], value: Any) -> None:
    """An object at ``level``: its ``known`` fields checked, ``required`` ones present, the rest free."""
    if type(value) is not dict:
        raise _wrong_type("an object", value)
    for name in required:
        if value.get(name) is None:
            raise _missing(name)
    for name, item in value.items():
        if item is None:
            continue
        check = known.get(name)
        if check is _string:  # the most common check, without a call
            if type(item) is not str:
                raise _wrong_type("a string", item, name)
        elif check is None:
            if type(item) is dict or type(item) is list:
                _free(item, level + 1)
        else:
            try:
                check(item)
            except _Invalid as bad:
                raise bad.under(name)


def _object(known: Mapping[str, Check], *, level: int, required: tuple[str, ...] = ()) -> Check:
    return partial(_fields, known, level, required)  # a partial costs no Python frame of its own


def _any_object(level: int) -> Check:
    return _object({}, level=level)


def _string(value: Any) -> None:
    if type(value) is not str:
        raise _wrong_type("a string", value)


def _short_string(limit: int) -> Check:
    def check(value: Any) -> None:
        _string(value)
        if len(value) > limit:
            raise _bad_value(f"must be at most {limit} characters, got {len(value)}")

    return check


def _name(value: Any) -> None:
    _string(value)
    if not value:
        raise _bad_value("must not be empty")


def _boolean(value: Any) -> None:
    if type(value) is not bool:
        raise _wrong_type("a boolean", value)


def _number(low: float, high: float) -> Check:
    def check(value: Any) -> None:
        kind = type(value)
        if kind is not int and kind is not float:
            raise _wrong_type("a number", value)
        if not low <= value <= high:
            raise _bad_value(f"must be between {low} and {high}, got {value}")

    return check


def _integer(low: int | None = None, high: int | None = None) -> Check:
    def check(value: Any) -> None:
        if type(value) is not int:
            raise _wrong_type("an integer", value)
        if low is not None and value < low:
            raise _bad_value(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise _bad_value(f"must be at most {high}, got {value}")

    return check


def _list_of(item: Check, what: str) -> Check:
    def check(value: Any) -> None:
        if type(value) is not list:
            raise _wrong_type(what, value)
        for index, element in enumerate(value):
            try:
                item(element)
            except _Invalid as bad:
                raise bad.under(index)

    return check


def _map_of(item: Check, what: str) -> Check:
    def check(value: Any) -> None:
        if type(value) is not dict:
            raise _wrong_type(what, value)
        for key, element in value.items():
            try:
                item(element)
            except _Invalid as bad:
                raise bad.under(key)

    return check


# ------------------------------------------------------------------ JSON Schema (tools, response_format)


# What each JSON Schema keyword's value must be. One walk with a branch per kind, ordered by how
# often a keyword appears, costs less than a call per keyword.
_TYPE, _TEXT, _MAP, _STRINGS, _SUB, _ITEMS, _ENUM, _LIST, _NUMBER, _COUNT, _FLAG, _BOUND, _DEPENDENCIES, _DEPENDENT_REQUIRED = range(14)
_SCHEMA_KEYWORDS: dict[str, int] = {
    "type": _TYPE,
    **dict.fromkeys(
        ("description", "title", "format", "pattern", "$ref", "$id", "$schema", "$anchor", "$comment", "$dynamicRef", "$dynamicAnchor",
         "contentEncoding", "contentMediaType"),
        _TEXT,
    ),
    **dict.fromkeys(("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"), _MAP),
    "required": _STRINGS,
    **dict.fromkeys(
        ("additionalProperties", "not", "if", "then", "else", "contains", "propertyNames", "unevaluatedProperties", "unevaluatedItems", "additionalItems"),
        _SUB,
    ),
    "items": _ITEMS,
    "enum": _ENUM,
    **dict.fromkeys(("anyOf", "oneOf", "allOf", "prefixItems"), _LIST),
    **dict.fromkeys(("minimum", "maximum", "multipleOf"), _NUMBER),
    **dict.fromkeys(("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains", "maxContains"), _COUNT),
    **dict.fromkeys(("uniqueItems", "nullable", "readOnly", "writeOnly", "deprecated"), _FLAG),
    **dict.fromkeys(("exclusiveMinimum", "exclusiveMaximum"), _BOUND),  # numbers, or booleans in draft 4
    "dependencies": _DEPENDENCIES,
    "dependentRequired": _DEPENDENT_REQUIRED,
}


def _schema(value: Any, level: int) -> None:
    """A JSON Schema at ``level``: an object, or (below the root) ``true`` / ``false``. Keywords it
    does not list (annotations, defaults, examples, vendor keywords) may hold any JSON."""
    if type(value) is not dict:
        if type(value) is bool:
            return
        raise _wrong_type("a JSON Schema object", value)
    if level > MAX_NESTING:
        raise _TooDeep()
    inner = level + 1
    for keyword, item in value.items():
        kind = _SCHEMA_KEYWORDS.get(keyword)
        if kind is None:
            if type(item) is dict or type(item) is list:
                _free(item, inner)
            continue
        try:
            if kind == _TYPE:
                if type(item) is not str:
                    _names(item, "a type name or an array of type names")
            elif kind == _TEXT:
                if type(item) is not str:
                    raise _wrong_type("a string", item)
            elif kind == _MAP:
                _schema_map(item, inner)
            elif kind == _STRINGS:
                _names(item, "an array of strings")
            elif kind == _SUB:
                _schema(item, inner)
            elif kind == _ITEMS:
                if type(item) is list:  # draft 4-2019 tuple validation
                    _schema_list(item, inner)
                else:
                    _schema(item, inner)
            elif kind == _ENUM:
                if type(item) is not list:
                    raise _wrong_type("an array", item)
                _free(item, inner)
            elif kind == _LIST:
                _schema_list(item, inner)
            elif kind == _NUMBER or (kind == _BOUND and type(item) is not bool):
                if type(item) is not int and type(item) is not float:
                    raise _wrong_type("a number", item)
            elif kind == _COUNT:
                if type(item) is not int:
                    raise _wrong_type("an integer", item)
                if item < 0:
                    raise _bad_value(f"must not be negative, got {item}")
            elif kind == _FLAG:
                if type(item) is not bool:
                    raise _wrong_type("a boolean", item)
            elif kind == _DEPENDENCIES:
                _map_of_names_or_schemas(item, inner, schemas=True)
            elif kind == _DEPENDENT_REQUIRED:
                _map_of_names_or_schemas(item, inner, schemas=False)
        except _Invalid as bad:
            raise bad.under(keyword)


def _schema_root(level: int) -> Check:
    def check(value: Any) -> None:
        if type(value) is not dict:
            raise _wrong_type("a JSON Schema object", value)
        _schema(value, level)

    return check


def _schema_map(value: Any, level: int) -> None:
    if type(value) is not dict:
        raise _wrong_type("an object of JSON Schemas", value)
    for name, sub in value.items():
        try:
            _schema(sub, level + 1)
        except _Invalid as bad:
            raise bad.under(name)


def _schema_list(value: Any, level: int) -> None:
    if type(value) is not list:
        raise _wrong_type("an array of JSON Schemas", value)
    for index, sub in enumerate(value):
        try:
            _schema(sub, level + 1)
        except _Invalid as bad:
            raise bad.under(index)


def _names(value: Any, what: str) -> None:
    """An array of strings (``required``, a ``type`` list)."""
    if type(value) is not list:
        raise _wrong_type(what, value)
    for index, name in enumerate(value):
        if type(name) is not str:
            raise _wrong_type("a string", name, index)


def _map_of_names_or_schemas(value: Any, level: int, *, schemas: bool) -> None:
    """``dependencies`` (arrays of names or schemas) and ``dependentRequired`` (arrays of names)."""
    if type(value) is not dict:
        raise _wrong_type("an object", value)
    for name, sub in value.items():
        try:
            if schemas and type(sub) is not list:
                _schema(sub, level + 1)
            else:
                _names(sub, "an array of strings")
        except _Invalid as bad:
            raise bad.under(name)


# ------------------------------------------------------------------ messages (level 2)


def _image_url(value: Any) -> None:
    if type(value) is str:
        return
    if type(value) is not dict:
        raise _wrong_type("a URL string or an object with a url", value)
    _fields(_IMAGE_URL_FIELDS, 5, ("url",), value)


_IMAGE_URL_FIELDS = {"url": _string, "detail": _string}
_TEXT_PART = ({"type": _string, "text": _string}, ("text",))
_UNKNOWN_PART = ({"type": _string}, ())
# content part type -> (fields, required fields); a part is at level 4
_PARTS: dict[str, tuple[dict[str, Check], tuple[str, ...]]] = {
    "text": _TEXT_PART,
    "input_text": _TEXT_PART,
    "image_url": ({"type": _string, "image_url": _image_url}, ("image_url",)),
    "input_audio": (
        {"type": _string, "input_audio": _object({"data": _string, "format": _string}, level=5, required=("data", "format"))},
        ("input_audio",),
    ),
    "file": ({"type": _string, "file": _object({"filename": _string, "file_data": _string, "file_id": _string}, level=5)}, ("file",)),
    "refusal": ({"type": _string, "refusal": _string}, ("refusal",)),
}


def _content(content: Any) -> tuple[int, int]:
    """Check a message ``content``; its (characters, images) for the prompt estimate."""
    if type(content) is str:
        return len(content), 0
    if type(content) is not list:
        raise _wrong_type("a string or an array of content parts", content)
    chars = images = 0
    for index, part in enumerate(content):
        if type(part) is str:
            chars += len(part)
            continue
        try:
            if type(part) is not dict:
                raise _wrong_type("a content part object", part)
            kind = part.get("type")
            if kind is None:
                raise _missing("type")
            if type(kind) is not str:
                raise _wrong_type("a string", kind, "type")
            known, required = _PARTS.get(kind, _UNKNOWN_PART)
            _fields(known, 4, required, part)
        except _Invalid as bad:
            raise bad.under(index)
        if kind in IMAGE_PART_TYPES:
            images += 1
        else:
            text = part.get("text")
            if type(text) is str:
                chars += len(text)
    return chars, images


def _arguments(value: Any) -> None:
    if type(value) is str:
        return
    if type(value) is not dict:
        raise _wrong_type("a JSON string or an object", value)
    _free(value, 6)


_CALLED_FUNCTION = {"name": _string, "arguments": _arguments}
_CALLED_CUSTOM = {"name": _string, "input": _string}
_FUNCTION_CALL_FIELDS = {"id": _string, "type": _string, "function": _object(_CALLED_FUNCTION, level=5, required=("name",))}
_CUSTOM_CALL_FIELDS = {"id": _string, "type": _string, "custom": _object(_CALLED_CUSTOM, level=5, required=("name",))}


def _by_type(label: str, level: int, function: dict, custom: dict, unknown: dict) -> Callable[[Any], None]:
    """The check of a tool or tool-call object at ``level``: by its ``type``, the ``function``
    or ``custom`` fields; a type this gateway does not know gets only ``unknown`` checked (the
    upstream judges the rest)."""

    def check(value: Any) -> None:
        if type(value) is not dict:
            raise _wrong_type(label, value)
        kind = value.get("type")
        if kind is None or kind == "function":
            _fields(function, level, ("function",), value)
        elif kind == "custom":
            _fields(custom, level, ("custom",), value)
        elif type(kind) is not str:
            raise _wrong_type("a string", kind, "type")
        else:
            _fields(unknown, level, (), value)

    return check


_tool_call = _by_type("a tool call object", 4, _FUNCTION_CALL_FIELDS, _CUSTOM_CALL_FIELDS, {"id": _string})


_tool_calls = _list_of(_tool_call, "an array of tool calls")

_MESSAGE_FIELDS: dict[str, Check] = {
    "name": _string,
    "tool_call_id": _string,
    "refusal": _string,
    "audio": _object({"id": _string}, level=3, required=("id",)),
    "function_call": _object({"name": _string, "arguments": _string}, level=3),
}
_REQUIRED_BY_ROLE = {"tool": ("tool_call_id",), "function": ("name",)}
_ROLE_LIST = ", ".join(sorted(ROLES))


def _message(message: Any) -> tuple[int, int]:
    """Check one message; its (characters, images) for the prompt estimate."""
    if type(message) is not dict:
        raise _wrong_type("a message object", message)
    role = message.get("role")
    if role is None:
        raise _missing("role")
    if type(role) is not str:
        raise _wrong_type("a string", role, "role")
    if role not in ROLES:
        raise _bad_value(f"{_shown(role)} is not a role; use one of {_ROLE_LIST}", "role")
    for name in _REQUIRED_BY_ROLE.get(role, ()):
        if message.get(name) is None:
            raise _missing(name)
    chars = images = 0
    for name, value in message.items():
        if value is None or name == "role":
            continue
        try:
            if name == "content":
                if type(value) is str:
                    chars += len(value)
                else:
                    more_chars, more_images = _content(value)
                    chars += more_chars
                    images += more_images
            elif name == "tool_calls":
                _tool_calls(value)
                if value:
                    chars += len(orjson.dumps(value))
            else:
                check = _MESSAGE_FIELDS.get(name)
                if check is _string:
                    if type(value) is not str:
                        raise _wrong_type("a string", value)
                elif check is None:
                    _free(value, 3)
                else:
                    check(value)
        except _Invalid as bad:
            raise bad.under(name)
    return chars, images


# ------------------------------------------------------------------ tools (level 1)

_FUNCTION_FIELDS = {"name": _name, "description": _string, "parameters": _schema_root(4), "strict": _boolean}
_CUSTOM_TOOL_FIELDS = {"name": _name, "description": _string, "format": _any_object(4)}
_FUNCTION_TOOL = {"type": _string, "function": _object(_FUNCTION_FIELDS, level=3, required=("name",))}
_CUSTOM_TOOL = {"type": _string, "custom": _object(_CUSTOM_TOOL_FIELDS, level=3, required=("name",))}


_tool = _by_type("a tool object", 2, _FUNCTION_TOOL, _CUSTOM_TOOL, {})


_tools = _list_of(_tool, "an array of tools")
_functions = _list_of(
    _object({"name": _name, "description": _string, "parameters": _schema_root(3)}, level=2, required=("name",)),
    "an array of functions",
)


def _named(kind: str) -> dict[str, Check]:
    return {"type": _string, kind: _object({"name": _string}, level=2, required=("name",))}


_NAMED_CHOICES: dict[str, tuple[dict[str, Check], tuple[str, ...]]] = {
    "function": (_named("function"), ("function",)),
    "custom": (_named("custom"), ("custom",)),
    "allowed_tools": (
        {
            "type": _string,
            "allowed_tools": _object(
                {"mode": _string, "tools": _list_of(_any_object(3), "an array of tool objects")}, level=2, required=("mode", "tools")
            ),
        },
        ("allowed_tools",),
    ),
}


def _tool_choice(value: Any) -> None:
    if type(value) is str:
        if value not in TOOL_CHOICE_MODES:
            raise _bad_value(f"{_shown(value)} is not a mode; use none, auto, required or an object naming a tool")
        return
    _typed_object(value, _NAMED_CHOICES, "'none', 'auto', 'required' or an object")


def _typed_object(value: Any, kinds: Mapping[str, tuple[dict[str, Check], tuple[str, ...]]], what: str) -> None:
    """A top-level object with a required ``type`` choosing its fields (unknown types pass)."""
    if type(value) is not dict:
        raise _wrong_type(what, value)
    kind = value.get("type")
    if kind is None:
        raise _missing("type")
    if type(kind) is not str:
        raise _wrong_type("a string", kind, "type")
    known, required = kinds.get(kind, ({}, ()))
    _fields(known, 1, required, value)


_RESPONSE_FORMATS: dict[str, tuple[dict[str, Check], tuple[str, ...]]] = {
    "json_schema": (
        {
            "type": _string,
            "json_schema": _object(
                {"name": _string, "description": _string, "schema": _schema_root(3), "strict": _boolean}, level=2, required=("name",)
            ),
        },
        ("json_schema",),
    ),
}


def _response_format(value: Any) -> None:
    _typed_object(value, _RESPONSE_FORMATS, "an object")


def _function_call(value: Any) -> None:
    if type(value) is str:
        if value not in ("none", "auto"):
            raise _bad_value(f"{_shown(value)} is not a mode; use none, auto or an object naming a function")
        return
    _fields({"name": _string}, 1, ("name",), value)


def _stop(value: Any) -> None:
    if type(value) is str:
        return
    if type(value) is not list:
        raise _wrong_type("a string or an array of strings", value)
    if len(value) > MAX_STOP_SEQUENCES:
        raise _bad_value(f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(value)}")
    for index, item in enumerate(value):
        if type(item) is not str:
            raise _wrong_type("a string", item, index)


def _voice(value: Any) -> None:
    if type(value) is not str:
        _fields({"id": _string}, 2, ("id",), value)


_TEXT_PARTS = _list_of(_object({"type": _string, "text": _string}, level=3, required=("type", "text")), "an array of text parts")


def _prediction_content(value: Any) -> None:
    if type(value) is not str:
        _TEXT_PARTS(value)


_CHAT_FIELDS: dict[str, Check] = {
    "model": _string,
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "n": _integer(1, 128),
    "max_tokens": _integer(1),
    "max_completion_tokens": _integer(1),
    "seed": _integer(-(2**63), 2**63 - 1),
    "top_k": _integer(),
    "top_logprobs": _integer(0, 20),
    "logprobs": _boolean,
    "stream": _boolean,
    "store": _boolean,
    "parallel_tool_calls": _boolean,
    "user": _string,
    "safety_identifier": _short_string(64),
    "prompt_cache_key": _string,
    "prompt_cache_retention": _string,
    "reasoning_effort": _string,
    "service_tier": _string,
    "verbosity": _string,
    "stop": _stop,
    "logit_bias": _map_of(_number(-100, 100), "an object of token ids to biases"),
    "metadata": _map_of(_string, "an object of strings"),
    "modalities": _list_of(_string, "an array of strings"),
    "audio": _object({"voice": _voice, "format": _string}, level=1, required=("voice", "format")),
    "prediction": _object({"type": _string, "content": _prediction_content}, level=1, required=("type", "content")),
    "stream_options": _object({"include_usage": _boolean, "include_obfuscation": _boolean}, level=1),
    "response_format": _response_format,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "functions": _functions,
    "function_call": _function_call,
    "web_search_options": _any_object(1),
    "prompt_cache_options": _any_object(1),
    "moderation": _any_object(1),
}


def _model(body: dict) -> str:
    model = body.get("model")
    if model is None:
        raise _missing("model").request_error()
    if type(model) is not str:
        raise _wrong_type("a string", model, "model").request_error()
    if not model:
        raise _bad_value("must not be empty", "model").request_error()
    return model


def check_nesting(body: dict) -> None:
    """Every top-level field of a decoded body nests at most ``MAX_NESTING`` levels (the body is
    level 0); ``InvalidRequest`` naming the first that nests deeper. For the front doors that
    translate only the fields they know and keep or forward the whole body (Responses, Anthropic
    Messages): orjson reads 1,024 levels but writes only 254."""
    for name, value in body.items():
        if (type(value) is dict or type(value) is list) and nesting_exceeds(value, MAX_NESTING):
            raise _TooDeep().under(name).request_error()


# ------------------------------------------------------------------ the two entry points


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Decode and check a ``/v1/chat/completions`` body; ``InvalidRequest`` naming the param."""
    return check_chat_body(parse_json_object(raw))


def check_chat_body(body: dict) -> ChatRequest:
    """Check a decoded chat body (also the hub request another front door translated to)."""
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages").request_error()
    if type(messages) is not list:
        raise _wrong_type("an array of messages", messages, "messages").request_error()
    if not messages:
        raise _bad_value("must hold at least one message", "messages").request_error()
    chars = images = 0
    for name, value in body.items():
        if value is None:
            continue
        try:
            if name == "messages":
                for index, message in enumerate(value):
                    try:
                        more_chars, more_images = _message(message)
                    except _Invalid as bad:
                        raise bad.under(index)
                    chars += more_chars
                    images += more_images
                continue
            check = _CHAT_FIELDS.get(name)
            if check is None:
                _free(value, 1)
                continue
            check(value)
            if name == "tools" and value:
                chars += len(orjson.dumps(value))
        except _Invalid as bad:
            raise bad.under(name).request_error() from None
    stream = body.get("stream") is True
    options = body.get("stream_options")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    include_usage = stream and options is not None and options.get("include_usage") is True
    return ChatRequest(body, model, stream, include_usage, max_tokens, prompt_estimate(chars, images, len(messages)))


def _embedding_input(value: Any) -> int:
    """Check an embeddings ``input``; its token estimate."""
    if type(value) is str:
        if not value:
            raise _bad_value("must not be an empty string")
        return text_tokens(value)
    if type(value) is not list:
        raise _wrong_type("a string or an array of strings, token ids or token-id arrays", value)
    if not value:
        raise _bad_value("must not be an empty array")
    if len(value) > MAX_EMBEDDING_INPUTS:
        raise _bad_value(f"at most {MAX_EMBEDDING_INPUTS} inputs, got {len(value)}")
    first = type(value[0])
    if first is int:  # one text as token ids
        for index, token in enumerate(value):
            if type(token) is not int:
                raise _wrong_type("a token id (an integer), as input[0] is", token, index)
        return len(value)
    if first is str and all(type(item) is str and item for item in value):  # the common case, in one sweep
        return sum(map(text_tokens, value))
    tokens = 0
    for index, item in enumerate(value):
        if first is str:
            if type(item) is not str:
                raise _wrong_type("a string, as input[0] is", item, index)
            if not item:
                raise _bad_value("must not be an empty string", index)
        elif first is list:
            if type(item) is not list:
                raise _wrong_type("an array of token ids, as input[0] is", item, index)
            if not item:
                raise _bad_value("must not be an empty array", index)
            for position, token in enumerate(item):
                if type(token) is not int:
                    raise _wrong_type("a token id (an integer)", token, index, position)
            tokens += len(item)
        else:
            raise _wrong_type("a string, a token id or an array of token ids", item, index)
    return tokens


def _encoding_format(value: Any) -> None:
    _string(value)
    if value not in ENCODING_FORMATS:
        raise _bad_value(f"{_shown(value)} is not a format; use float or base64")


_EMBEDDING_FIELDS: dict[str, Check] = {"model": _string, "encoding_format": _encoding_format, "dimensions": _integer(1), "user": _string}


def parse_embeddings_request(raw: bytes) -> EmbeddingsRequest:
    """Decode and check a ``/v1/embeddings`` body; ``InvalidRequest`` naming the param."""
    body = parse_json_object(raw)
    model = _model(body)
    if body.get("input") is None:
        raise _missing("input").request_error()
    tokens = 0
    for name, value in body.items():
        if value is None:
            continue
        try:
            if name == "input":
                tokens = _embedding_input(value)
                continue
            check = _EMBEDDING_FIELDS.get(name)
            if check is None:
                _free(value, 1)
            else:
                check(value)
        except _Invalid as bad:
            raise bad.under(name).request_error() from None
    return EmbeddingsRequest(body, model, tokens)
