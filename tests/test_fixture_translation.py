"""Recorded real provider traffic (``shared/fixtures``) translated into OpenAI shapes.

Every chat response, stream and error fixture there is listed in ``EXPECTED`` with what its
translation must show, or in ``NOT_CHAT`` with the reason it does not apply; a new fixture that
is in neither fails ``test_every_shared_fixture_is_accounted_for``. Translated bodies and every
stream chunk are validated against OpenAI's published schemas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson
import pytest

from adapters import adapter_for
from adapters.base import SSEEvent
from balancer.health import Outcome
from streams import assemble, chunks_of, events_of, replay


@dataclass(frozen=True)
class Expect:
    kind: str  # response | stream | error
    provider: str  # the adapter that reads it: openai | custom | anthropic | gemini
    content: str | None = None  # exact text, or for long ones a prefix ending with "..."
    finish: str | None = None
    usage: tuple[int, int, int] | None = None  # prompt, completion, cached
    tools: tuple[tuple[str, dict], ...] = ()  # (name, arguments)
    refusal: str | None = None
    reasoning: int = 0
    outcome: Outcome | None = None  # errors
    status: int | None = None
    retry_after: float | None = None
    param: str | None = None


EXPECTED: dict[str, Expect] = {
    "anthropic/anthropic-text.json": Expect(
        "response", "anthropic",
        "Hello! I'm doing well, thanks for asking. How are you doing today? Is there anything I can help you with?",
        "stop", (12, 29, 0),
    ),
    "anthropic/anthropic-tool-no-args.json": Expect(
        "response", "anthropic", "<thinking>\nThe updateIssueList tool was provided...", "tool_calls", (602, 93, 0),
        tools=(("updateIssueList", {}),),
    ),
    "anthropic/anthropic-refusal.json": Expect(
        "response", "anthropic", None, "content_filter", (18, 5, 0),
        refusal="This request triggered restrictions on violative cyber content and was blocked under Anthropic's Usage Policy.",
    ),
    "anthropic/anthropic-text.chunks.txt": Expect(
        "stream", "anthropic",
        "Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can help you with?",
        "stop", (12, 30, 0),
    ),
    "anthropic/anthropic-tool-no-args.chunks.txt": Expect(
        "stream", "anthropic", "I'll update the issue list for you.", "tool_calls", (565, 48, 0), tools=(("updateIssueList", {}),),
    ),
    "anthropic/stream/basic_response.txt": Expect("stream", "anthropic", "Hello there!", "stop", (11, 6, 0)),
    "anthropic/stream/tool_use_response.txt": Expect(
        "stream", "anthropic", "I'll check the current weather in Paris for you.", "tool_calls", (377, 65, 0),
        tools=(("get_weather", {"location": "Paris"}),),
    ),
    "anthropic/stream/refusal_response.txt": Expect(
        "stream", "anthropic", "", "content_filter", (20, 0, 0), refusal="This request was refused due to policy.",
    ),
    "gemini/google-text.json": Expect(
        "response", "gemini", "There are **3** r's in strawberry.\n\nHere is the breakdown: st**r**awbe**rr**y.",
        "stop", (9, 28 + 244, 0), reasoning=244,
    ),
    "gemini/google-tool-call.json": Expect(
        "response", "gemini", None, "tool_calls", (29, 15 + 893, 0), tools=(("weather", {"location": "San Francisco"}),), reasoning=893,
    ),
    "gemini/google-text.chunks.txt": Expect(
        "stream", "gemini", 'There are **3** "r"s in strawberry.\n\nst**r**awbe**rr**y', "stop", (9, 23 + 185, 0), reasoning=185,
    ),
    "gemini/google-reasoning.chunks.txt": Expect(
        "stream", "gemini", 'There are **3** "r"s in strawberry.\n\nHere is the breakdown: st**r**awbe**rr**y.', "stop",
        (9, 29 + 256, 0), reasoning=256,
    ),
    "gemini/google-tool-call.chunks.txt": Expect(
        "stream", "gemini", "", "tool_calls", (29, 15 + 45, 0), tools=(("weather", {"location": "San Francisco"}),), reasoning=45,
    ),
    "gemini/google-429-retry-info.json": Expect(
        "error", "gemini", outcome=Outcome.RATE_LIMITED, status=429, retry_after=34.4,
        content="You exceeded your current quota, please check your plan.",
    ),
    "openai/openai-text.chunks.txt": Expect("stream", "openai", "**Holiday Name...", "stop", (16, 300, 0)),
    "openai/reasoning-model-legacy-parameter-error.json": Expect(
        "error", "openai", outcome=Outcome.CLIENT_ERROR, status=400, param="max_tokens",
        content="Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
    ),
    "openai/stream/text_gpt4o.sse": Expect(
        "stream", "openai",
        "I'm unable to provide real-time weather updates. To get the current weather in San Francisco, I recommend checking a reliable weather website or a weather app.",
        "stop", (14, 30, 0),
    ),
    "openai/stream/text_json_object_gpt4o.sse": Expect("stream", "openai", '\n  {\n    "location": "San Francisco, CA",...', "stop", (19, 177, 0)),
    "openai/stream/text_structured_output_gpt4o.sse": Expect(
        "stream", "openai", '{"city":"San Francisco","temperature":61,"units":"f"}', "stop", (79, 14, 0),
    ),
    "openai/stream/refusal_gpt4o.sse": Expect("stream", "openai", "", "stop", (79, 11, 0), refusal="I'm sorry, I can't assist with that request."),
    "openai/stream/tool_call_gpt4o.sse": Expect(
        "stream", "openai", "", "tool_calls", (76, 24, 0), tools=(("GetWeatherArgs", {"city": "Edinburgh", "country": "UK", "units": "c"}),),
    ),
    "openai/stream/tool_call_parallel_gpt4o.sse": Expect(
        "stream", "openai", "", "tool_calls", (149, 60, 0),
        tools=(("GetWeatherArgs", {"city": "Edinburgh", "country": "GB", "units": "c"}), ("get_stock_price", {"ticker": "AAPL", "exchange": "NASDAQ"})),
    ),
}

NOT_CHAT = {
    "README.md": "the folder's description",
    "openai/responses/issue-19493-gpt-5.1-tool-call.chunks.txt": "an OpenAI Responses API stream: the gateway serves Chat Completions, not /v1/responses",
}


def fixture_files(shared_dir) -> set[str]:
    root = shared_dir / "fixtures"
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_every_shared_fixture_is_accounted_for(shared_dir):
    files = fixture_files(shared_dir)
    assert files, "shared/fixtures is empty"
    assert files - set(EXPECTED) - set(NOT_CHAT) == set(), "new fixtures need an expectation here"
    assert set(EXPECTED) - files == set(), "expected fixtures are missing from shared/"


def readers(expect: Expect) -> list[str]:
    """OpenAI traffic must read the same through the ``openai`` fast path and the ``custom`` repairs."""
    return ["openai", "custom"] if expect.provider == "openai" else [expect.provider]


CASES = [(name, kind) for name, expect in EXPECTED.items() for kind in readers(expect)]


def wire_events(name: str, raw: bytes, expect: Expect) -> list[SSEEvent]:
    """The fixture's events as they came over the wire. vercel/ai's JSON-per-line captures
    dropped OpenAI's closing ``data: [DONE]`` (see shared/fixtures/README.md); the wire had it,
    and the ``openai`` type treats a stream without it as cut, so it is put back."""
    captured = name.endswith(".chunks.txt")
    events = events_of(raw, json_lines=captured)
    return events + [SSEEvent(b"[DONE]")] if captured and expect.provider == "openai" else events


def check_text(actual: str | None, expected: str | None) -> None:
    if expected is not None and expected.endswith("..."):
        assert actual is not None and actual.startswith(expected[:-3])
    else:
        assert actual == expected


def check_usage(usage: dict, expect: Expect) -> None:
    prompt, completion, cached = expect.usage
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (prompt, completion, prompt + completion)
    assert (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) == cached
    if expect.reasoning:
        assert usage["completion_tokens_details"]["reasoning_tokens"] == expect.reasoning


@pytest.mark.parametrize("name,kind", CASES, ids=[f"{n}[{k}]" for n, k in CASES])
def test_fixture_translates_to_the_openai_shape(shared_dir, openai_schemas, name, kind):
    expect = EXPECTED[name]
    raw = (shared_dir / "fixtures" / name).read_bytes()
    adapter = adapter_for(kind)
    if expect.kind == "error":
        error = adapter.parse_error(expect.status, {}, raw)
        assert error.outcome is expect.outcome and error.status == expect.status
        assert error.retry_after == expect.retry_after
        assert error.message == expect.content
        assert set(error.envelope["error"]) == {"message", "type", "param", "code"}
        assert error.envelope["error"]["param"] == expect.param
        return
    if expect.kind == "response":
        result = adapter.parse_chat(raw, model="client-model")
        body = orjson.loads(result.body)
        openai_schemas.check("CreateChatCompletionResponse", body)
        [choice] = body["choices"]
        message = choice["message"]
        check_text(message["content"], expect.content)
        assert choice["finish_reason"] == expect.finish
        assert message["refusal"] == expect.refusal
        calls = message.get("tool_calls") or []
        assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == list(expect.tools)
        assert all(c["id"] for c in calls) and len({c["id"] for c in calls}) == len(calls)
        check_usage(body["usage"], expect)
        assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.cached_tokens) == expect.usage
        return
    translator = adapter.stream_translator(model="client-model", include_usage=True)
    chunks = chunks_of(replay(translator, wire_events(name, raw, expect)))
    for chunk in chunks:
        openai_schemas.check("CreateChatCompletionStreamResponse", chunk)
    assert len({c["id"] for c in chunks}) == 1, "every chunk of one stream shares its id"
    got = assemble(chunks)
    check_text(got.content, expect.content)
    assert got.refusal == (expect.refusal or "")
    assert got.finish_reasons == [expect.finish], "exactly one finish reason"
    assert got.roles == ["assistant"]
    assert [(c["name"], json.loads(c["arguments"])) for _, c in sorted(got.tool_calls.items())] == list(expect.tools)
    assert all(c["id"] for c in got.tool_calls.values())
    assert len(got.usage) == 1 and got.usage_last, "usage comes once, in a final choices: [] chunk"
    check_usage(got.usage[0], expect)
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == expect.usage[:2]


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e.kind == "stream"])
def test_fixture_stream_without_include_usage_sends_no_usage(shared_dir, name):
    expect = EXPECTED[name]
    raw = (shared_dir / "fixtures" / name).read_bytes()
    translator = adapter_for(expect.provider).stream_translator(model="m", include_usage=False)
    chunks = chunks_of(replay(translator, wire_events(name, raw, expect)))
    assert all(not c.get("usage") for c in chunks) and all(c["choices"] for c in chunks)
    assert translator.usage is not None, "the gateway still reads usage for its own accounting"
