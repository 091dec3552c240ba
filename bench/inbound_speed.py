"""How fast each way of decoding and checking an inbound body is: ``python -m bench.inbound_speed``.

Each way ends with what the gateway needs from ``app.inbound``: the fields typed and in range, the
JSON Schemas in tools checked, nothing nested past 64 levels, unknown fields kept in the dict the
adapters get, and the prompt estimate.

- (a) ``app.inbound``: ``orjson.loads`` and hand-written checks, one decode and one pass that also
  counts the prompt.
- (b) msgspec Structs (below): (b1) a typed ``msgspec.json.decode`` checks, and ``orjson.loads``
  gives the dict passed on (typed decoding drops unknown fields, so two decodes); (b2) one untyped
  ``msgspec.json.decode``, then ``msgspec.convert`` to check it. Then the depth walk and the estimate.
- (c) pydantic models (below, strict, ``extra="allow"``): (c1) ``orjson.loads`` then
  ``validate_python``; (c2) ``validate_json`` then ``orjson.loads``. Then the depth walk and the estimate.

The Structs and models cover the fields the three bodies here use, so (b) and (c) are measured
doing less checking than (a), never more. ``decode only`` is the floor: ``orjson.loads`` alone.

Measured 2026-12-04 on the shared 2-core machine (Python 3.11.7, orjson 3.13.0, msgspec 0.23.0,
pydantic 2.14.4), µs per request, best of 9 interleaved rounds, ratio to (a) in brackets:

    body                   decode only   (a) inbound   (b1) msgspec x2   (b2) msgspec convert   (c1) pydantic   (c2) pydantic json
    small chat                     0.3           1.9        1.7 (0.94)             1.8 (0.95)      3.2 (1.75)           3.2 (1.73)
    20 messages + 5 tools         10.2          42.7       41.6 (0.97)            39.4 (0.92)     95.0 (2.23)         101.7 (2.38)
    embeddings (8 inputs)          0.4           2.7        2.8 (1.00)             2.5 (0.91)      3.9 (1.43)           6.1 (2.23)

Across runs msgspec stays within about 10% of (a) either way (0.85-1.22), which is the noise on
this machine; pydantic is 1.4-2.4x slower. (a) is kept. It is as fast as msgspec while it checks
more: msgspec's tagged unions refuse the content part, tool and response_format types the gateway
lets through, and it cannot express the depth limit. Its error paths are also weaker: object keys
come out as ``[...]`` (``$.properties[...].type``), and the code (type, value, missing) would have
to be parsed out of the message text. Pydantic reports one error per union member, with model
names in the path. (a) names the exact parameter (``tools[0].function.parameters.properties.city.type``)
with OpenAI's codes, in the same pass that counts the prompt. msgspec is only a test dependency,
for this benchmark and its test in ``tests/test_inbound.py``.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any, Callable, Literal, Union

import msgspec
import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from adapters.shapes import MAX_NESTING, nesting_exceeds
from app.errors import InvalidRequest
from app.inbound import parse_chat_request, parse_embeddings_request
from app.tokens import estimate_embedding_tokens, estimate_prompt_tokens

# ------------------------------------------------------------------ the bodies


def _schema(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city.", "strict": True, "parameters": _schema(
        {"city": {"type": "string", "description": "City name"}, "unit": {"type": "string", "enum": ["c", "f"]}, "days": {"type": ["integer", "null"], "minimum": 1}},
        ["city", "unit", "days"])}},
    {"type": "function", "function": {"name": "search_docs", "description": "Search the knowledge base.", "parameters": _schema(
        {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 50}, "tags": {"type": "array", "items": {"type": "string"}}},
        ["query"])}},
    {"type": "function", "function": {"name": "create_ticket", "description": "Open a support ticket.", "parameters": _schema(
        {"title": {"type": "string", "maxLength": 120}, "priority": {"type": "string", "enum": ["low", "normal", "high"]},
         "customer": {"$ref": "#/$defs/Customer"}, "labels": {"type": "array", "items": {"type": "string"}, "maxItems": 5}},
        ["title", "priority", "customer"]) | {"$defs": {"Customer": _schema({"id": {"type": "string"}, "email": {"type": "string", "format": "email"}}, ["id"])}}}},
    {"type": "function", "function": {"name": "convert_currency", "description": "Convert an amount.", "parameters": _schema(
        {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}}, ["amount", "from", "to"])}},
    {"type": "function", "function": {"name": "schedule", "description": "Book a meeting.", "parameters": _schema(
        {"when": {"type": "string", "format": "date-time"}, "attendees": {"type": "array", "items": _schema({"name": {"type": "string"}, "email": {"type": "string"}}, ["email"])},
         "room": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, ["when", "attendees"])}},
]


def _conversation() -> list[dict]:
    messages: list[dict] = [{"role": "system", "content": "You are a helpful support assistant. Use the tools when they help; answer briefly."}]
    for turn in range(6):
        messages.append({"role": "user", "content": f"Question {turn}: what is the weather in Paris, and can you open a ticket about my invoice number {1000 + turn}?"})
        call = {"id": f"call_{turn}", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c", "days": null}'}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"call_{turn}", "content": '{"temperature": 21.5, "sky": "clear", "wind_kmh": 12}'})
    messages.append({"role": "assistant", "content": "It is 21.5 °C and clear in Paris. I opened ticket T-1005 about your invoice."})
    return messages


BODIES = {
    "small chat": orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello! How are you today?"}], "temperature": 0.7, "max_tokens": 256}),
    "20 messages + 5 tools": orjson.dumps(
        {"model": "gpt-4o", "messages": _conversation(), "tools": TOOLS, "tool_choice": "auto", "temperature": 0.2, "max_completion_tokens": 800,
         "stream": True, "stream_options": {"include_usage": True}, "user": "user-1234"}
    ),
    "embeddings (8 inputs)": orjson.dumps(
        {"model": "text-embedding-3-small", "input": [f"The quick brown fox number {i} jumps over the lazy dog." for i in range(8)], "encoding_format": "float"}
    ),
}
MALFORMED = orjson.dumps(
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"city": {"type": 5}}}}}]}
)

# ------------------------------------------------------------------ (b) msgspec Structs

Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]


class MSchema(msgspec.Struct, rename={"any_of": "anyOf", "one_of": "oneOf", "all_of": "allOf", "defs": "$defs", "ref": "$ref", "additional": "additionalProperties"}):
    type: Union[str, list[str], None] = None
    properties: Union[dict[str, Union["MSchema", bool]], None] = None
    items: Union["MSchema", list[Union["MSchema", bool]], bool, None] = None
    any_of: Union[list[Union["MSchema", bool]], None] = None
    one_of: Union[list[Union["MSchema", bool]], None] = None
    all_of: Union[list[Union["MSchema", bool]], None] = None
    required: Union[list[str], None] = None
    enum: Union[list[Any], None] = None
    defs: Union[dict[str, Union["MSchema", bool]], None] = None
    ref: Union[str, None] = None
    additional: Union["MSchema", bool, None] = None
    format: Union[str, None] = None
    description: Union[str, None] = None


class MFunction(msgspec.Struct):
    name: str
    description: Union[str, None] = None
    parameters: Union[MSchema, None] = None
    strict: Union[bool, None] = None


class MTool(msgspec.Struct):
    function: MFunction
    type: str = "function"


class MCalled(msgspec.Struct):
    name: str
    arguments: Union[str, dict, None] = None


class MToolCall(msgspec.Struct):
    function: MCalled
    id: Union[str, None] = None
    type: Union[str, None] = None


class MImageUrl(msgspec.Struct):
    url: str
    detail: Union[str, None] = None


class MText(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class MImage(msgspec.Struct, tag_field="type", tag="image_url"):
    image_url: Union[str, MImageUrl]


MParts = list[Union[MText, MImage]]


class MSystem(msgspec.Struct, tag_field="role", tag="system"):
    content: Union[str, MParts]
    name: Union[str, None] = None


class MUser(msgspec.Struct, tag_field="role", tag="user"):
    content: Union[str, MParts]
    name: Union[str, None] = None


class MAssistant(msgspec.Struct, tag_field="role", tag="assistant"):
    content: Union[str, MParts, None] = None
    tool_calls: Union[list[MToolCall], None] = None
    refusal: Union[str, None] = None
    name: Union[str, None] = None


class MToolResult(msgspec.Struct, tag_field="role", tag="tool"):
    tool_call_id: str
    content: Union[str, MParts]


class MStreamOptions(msgspec.Struct):
    include_usage: Union[bool, None] = None


class MChat(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[Union[MSystem, MUser, MAssistant, MToolResult]], msgspec.Meta(min_length=1)]
    temperature: Union[Annotated[float, msgspec.Meta(ge=0, le=2)], None] = None
    top_p: Union[Probability, None] = None
    max_tokens: Union[Annotated[int, msgspec.Meta(ge=1)], None] = None
    max_completion_tokens: Union[Annotated[int, msgspec.Meta(ge=1)], None] = None
    stream: Union[bool, None] = None
    stream_options: Union[MStreamOptions, None] = None
    stop: Union[str, Annotated[list[str], msgspec.Meta(max_length=4)], None] = None
    tools: Union[list[MTool], None] = None
    tool_choice: Union[str, dict, None] = None
    user: Union[str, None] = None


class MEmbeddings(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    input: Union[Annotated[str, msgspec.Meta(min_length=1)], Annotated[list[Union[str, int, list[int]]], msgspec.Meta(min_length=1, max_length=2048)]]
    encoding_format: Union[Literal["float", "base64"], None] = None
    dimensions: Union[Annotated[int, msgspec.Meta(ge=1)], None] = None
    user: Union[str, None] = None


# ------------------------------------------------------------------ (c) pydantic models


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)


class PSchema(_Open):
    type: str | list[str] | None = None
    properties: dict[str, "PSchema | bool"] | None = None
    items: "PSchema | list[PSchema | bool] | bool | None" = None
    any_of: "list[PSchema | bool] | None" = Field(None, alias="anyOf")
    one_of: "list[PSchema | bool] | None" = Field(None, alias="oneOf")
    all_of: "list[PSchema | bool] | None" = Field(None, alias="allOf")
    required: list[str] | None = None
    enum: list[Any] | None = None
    defs: "dict[str, PSchema | bool] | None" = Field(None, alias="$defs")
    ref: str | None = Field(None, alias="$ref")
    additional: "PSchema | bool | None" = Field(None, alias="additionalProperties")
    format: str | None = None
    description: str | None = None


class PFunction(_Open):
    name: str
    description: str | None = None
    parameters: PSchema | None = None
    strict: bool | None = None


class PTool(_Open):
    type: str = "function"
    function: PFunction


class PCalled(_Open):
    name: str
    arguments: str | dict | None = None


class PToolCall(_Open):
    id: str | None = None
    type: str | None = None
    function: PCalled


class PImageUrl(_Open):
    url: str
    detail: str | None = None


class PText(_Open):
    type: Literal["text"]
    text: str


class PImage(_Open):
    type: Literal["image_url"]
    image_url: str | PImageUrl


PParts = list[Annotated[Union[PText, PImage], Field(discriminator="type")]]


class PSystem(_Open):
    role: Literal["system"]
    content: str | PParts
    name: str | None = None


class PUser(_Open):
    role: Literal["user"]
    content: str | PParts
    name: str | None = None


class PAssistant(_Open):
    role: Literal["assistant"]
    content: str | PParts | None = None
    tool_calls: list[PToolCall] | None = None
    refusal: str | None = None
    name: str | None = None


class PToolResult(_Open):
    role: Literal["tool"]
    tool_call_id: str
    content: str | PParts


class PStreamOptions(_Open):
    include_usage: bool | None = None


class PChat(_Open):
    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[Annotated[Union[PSystem, PUser, PAssistant, PToolResult], Field(discriminator="role")]], Field(min_length=1)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stream: bool | None = None
    stream_options: PStreamOptions | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    tools: list[PTool] | None = None
    tool_choice: str | dict | None = None
    user: str | None = None


class PEmbeddings(_Open):
    model: Annotated[str, Field(min_length=1)]
    input: Annotated[str, Field(min_length=1)] | Annotated[list[str] | list[int] | list[list[int]], Field(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None


P_CHAT = TypeAdapter(PChat)
P_EMBEDDINGS = TypeAdapter(PEmbeddings)

# ------------------------------------------------------------------ the ways


def _rest(body: dict, estimate: Callable[[dict], int]) -> int:
    """What (b) and (c) still owe after their checks: the depth limit, then the estimate."""
    if nesting_exceeds(body, MAX_NESTING):
        raise ValueError("nested too deeply")
    return estimate(body)


def _ways(struct: type, model: TypeAdapter, inbound: Callable, estimate: Callable) -> dict[str, Callable[[bytes], Any]]:
    typed = msgspec.json.Decoder(struct)
    untyped = msgspec.json.Decoder()
    return {
        "decode only": orjson.loads,
        "(a) inbound": inbound,
        "(b1) msgspec x2": lambda raw: (typed.decode(raw), _rest(orjson.loads(raw), estimate)),
        "(b2) msgspec convert": lambda raw: (body := untyped.decode(raw), msgspec.convert(body, struct), _rest(body, estimate)),
        "(c1) pydantic": lambda raw: (body := orjson.loads(raw), model.validate_python(body), _rest(body, estimate)),
        "(c2) pydantic json": lambda raw: (model.validate_json(raw), _rest(orjson.loads(raw), estimate)),
    }


CHAT_WAYS = _ways(MChat, P_CHAT, parse_chat_request, estimate_prompt_tokens)
EMBEDDING_WAYS = _ways(MEmbeddings, P_EMBEDDINGS, parse_embeddings_request, estimate_embedding_tokens)


def _loops(call: Callable[[bytes], Any], raw: bytes, seconds: float) -> int:
    """How many calls take about ``seconds``."""
    loops = 1
    while True:
        started = time.perf_counter()
        for _ in range(loops):
            call(raw)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds / 4:
            return max(1, int(loops * seconds / elapsed))
        loops *= 2


def microseconds(ways: dict[str, Callable[[bytes], Any]], raw: bytes, *, repeats: int = 9, seconds: float = 0.02) -> dict[str, float]:
    """Each way's best per-call time. The ways take turns within every round, so load from
    elsewhere on the (shared) machine falls on all of them alike."""
    loops = {name: _loops(call, raw, seconds) for name, call in ways.items()}
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(repeats):
        for name, call in ways.items():
            started = time.perf_counter()
            for _ in range(loops[name]):
                call(raw)
            best[name] = min(best[name], (time.perf_counter() - started) / loops[name])
    return {name: seconds * 1e6 for name, seconds in best.items()}


def error_paths() -> dict[str, str]:
    """Where each way says the error in ``MALFORMED`` is (a property's ``type`` that is a number)."""
    out = {}
    try:
        parse_chat_request(MALFORMED)
    except InvalidRequest as error:
        out["(a) inbound"] = f"{error.param} ({error.code})"
    try:
        msgspec.json.decode(MALFORMED, type=MChat)
    except msgspec.ValidationError as error:
        out["(b) msgspec"] = str(error)
    try:
        P_CHAT.validate_python(orjson.loads(MALFORMED))
    except pydantic.ValidationError as error:
        out["(c) pydantic"] = "; ".join(".".join(map(str, e["loc"])) for e in error.errors()[:3]) + f" ({error.error_count()} errors)"
    return out


def main() -> int:
    for name, raw in BODIES.items():  # every way accepts every body before anything is timed
        for way in (EMBEDDING_WAYS if name.startswith("embeddings") else CHAT_WAYS).values():
            way(raw)
    ways = list(CHAT_WAYS)
    print(f"µs per request, best of 9 (Python {sys.version.split()[0]}, orjson {orjson.__version__}, msgspec {msgspec.__version__}, pydantic {pydantic.VERSION})")
    print(f"{'body':24}" + "".join(f"{way:>22}" for way in ways))
    for name, raw in BODIES.items():
        table = EMBEDDING_WAYS if name.startswith("embeddings") else CHAT_WAYS
        times = microseconds(table, raw)
        print(f"{name:24}" + "".join(f"{times[way]:22.1f}" for way in ways))
        base = times["(a) inbound"]
        print(f"{'  ratio to (a)':24}" + "".join(f"{times[way] / base:21.2f}x" for way in ways))
    print("\nerror paths for a tool parameter's type given as a number:")
    for way, where in error_paths().items():
        print(f"  {way:14} {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
