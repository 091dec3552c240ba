"""Anthropic Messages inbound (``/v1/messages``): requests to chat, chat answers and streams back,
the native pass-through, and the official ``anthropic`` SDK against a loopback server built on them."""

from __future__ import annotations

import asyncio
import copy
import threading

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter_cases import target
from adapters import AdapterError, SSEEvent, UpstreamError, adapter_for
from adapters.base import Outcome, Usage
from adapters.messages import (
    DROPPED_FIELDS,
    REJECTED_FIELDS,
    TOKENS_PER_IMAGE,
    count_tokens_estimate,
    messages_request_to_chat,
    thinking_budget_to_reasoning_effort,
)
from adapters.messages_answer import (
    MessagesStream,
    anthropic_error_body,
    chat_completion_to_message,
    finish_reason_to_anthropic_stop_reason,
    message_to_events,
)
from adapters.messages_native import NativeMessagesStream, message_usage, native_messages_request
from streams import chunks_of, events_of, replay

KINDS = ("openai", "custom", "gemini")


def body(*messages: dict, **fields) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": list(messages), **fields}


def user(content) -> dict:
    return {"role": "user", "content": content}


def assistant(content) -> dict:
    return {"role": "assistant", "content": content}


PNG_B64 = "iVBORw0KGgo="
WEATHER_TOOL = {"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
WEATHER_FUNCTION = {"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER_TOOL["input_schema"]}}


# ------------------------------------------------------------------ a Claude Code-shaped request (from the documented shapes)

def claude_code_tool(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }


CLAUDE_CODE_TOOLS = [
    claude_code_tool("Bash", "Executes a given bash command.", {"command": {"type": "string"}, "timeout": {"type": "number"}, "description": {"type": "string"}}, ["command"]),
    claude_code_tool("Read", "Reads a file from the local filesystem.", {"file_path": {"type": "string"}, "offset": {"type": "number"}, "limit": {"type": "number"}}, ["file_path"]),
    claude_code_tool("Edit", "Performs exact string replacements in files.", {"file_path": {"type": "string"}, "old_string": {"type": "string"}, "new_string": {"type": "string"}, "replace_all": {"type": "boolean", "default": False}}, ["file_path", "old_string", "new_string"]),
    claude_code_tool("Glob", "Fast file pattern matching.", {"pattern": {"type": "string"}, "path": {"type": "string"}}, ["pattern"]),
    claude_code_tool("Grep", "Searches file contents with ripgrep.", {"pattern": {"type": "string"}, "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]}}, ["pattern"]),
    claude_code_tool("TodoWrite", "Writes the session's todo list.", {"todos": {"type": "array", "items": {"type": "object", "properties": {"content": {"type": "string"}, "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]}}, "required": ["content", "status"]}}}, ["todos"]),
]

CLAUDE_CODE_REQUEST = {
    "model": "claude-sonnet-4-5-20250929",
    "max_tokens": 32000,
    "temperature": 1,
    "stream": True,
    "metadata": {"user_id": "user_5e8b2c0d9f_account__session_7f0c6d0e-95c1-4b6b-9d43-2f8c1a4e7b10"},
    "thinking": {"type": "enabled", "budget_tokens": 31999},
    "system": [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "You are an interactive CLI tool that helps users with software engineering tasks.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        user([
            {"type": "text", "text": "<system-reminder>\nThe date is 2025-10-01.\n</system-reminder>"},
            {"type": "text", "text": "Why does test_parse fail?", "cache_control": {"type": "ephemeral"}},
        ]),
        assistant([
            {"type": "thinking", "thinking": "Read the test, then run it.", "signature": "EqQBCkYIBxgCKkBsignature"},
            {"type": "text", "text": "I'll read the test and run it."},
            {"type": "tool_use", "id": "toolu_01Read", "name": "Read", "input": {"file_path": "/repo/tests/test_parse.py"}},
            {"type": "tool_use", "id": "toolu_01Bash", "name": "Bash", "input": {"command": "pytest -q tests/test_parse.py", "description": "Run the failing test"}},
        ]),
        user([
            {"type": "tool_result", "tool_use_id": "toolu_01Read", "content": "     1\tdef test_parse():\n     2\t    assert parse('1') == 1\n"},
            {"type": "tool_result", "tool_use_id": "toolu_01Bash", "content": [{"type": "text", "text": "FAILED tests/test_parse.py::test_parse"}], "is_error": True},
            {"type": "text", "text": "<system-reminder>\nKeep the todo list current.\n</system-reminder>", "cache_control": {"type": "ephemeral"}},
        ]),
        assistant([{"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}, {"type": "text", "text": "parse() returns a string."}]),
        user("Fix it."),
    ],
    "tools": CLAUDE_CODE_TOOLS,
}


def test_claude_code_request_translates_for_every_hub_provider():
    for kind in KINDS:
        chat = messages_request_to_chat(copy.deepcopy(CLAUDE_CODE_REQUEST), provider_kind=kind)
        assert chat["messages"][0] == {
            "role": "system",
            "content": "You are Claude Code, Anthropic's official CLI for Claude.\n\nYou are an interactive CLI tool that helps users with software engineering tasks.",
        }
        assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool", "tool", "user", "assistant", "user"]
        assert chat["messages"][1] == {"role": "user", "content": "<system-reminder>\nThe date is 2025-10-01.\n</system-reminder>\n\nWhy does test_parse fail?"}
        assert chat["messages"][2] == {
            "role": "assistant",
            "content": "I'll read the test and run it.",
            "tool_calls": [
                {"id": "toolu_01Read", "type": "function", "function": {"name": "Read", "arguments": '{"file_path":"/repo/tests/test_parse.py"}'}},
                {"id": "toolu_01Bash", "type": "function", "function": {"name": "Bash", "arguments": '{"command":"pytest -q tests/test_parse.py","description":"Run the failing test"}'}},
            ],
        }
        assert chat["messages"][3] == {"role": "tool", "tool_call_id": "toolu_01Read", "content": "     1\tdef test_parse():\n     2\t    assert parse('1') == 1\n"}
        assert chat["messages"][4] == {"role": "tool", "tool_call_id": "toolu_01Bash", "content": "(tool error) FAILED tests/test_parse.py::test_parse"}
        assert chat["messages"][5] == {"role": "user", "content": "<system-reminder>\nKeep the todo list current.\n</system-reminder>"}
        assert chat["messages"][6] == {"role": "assistant", "content": "parse() returns a string."}
        assert [t["function"]["name"] for t in chat["tools"]] == [t["name"] for t in CLAUDE_CODE_TOOLS]
        assert chat["tools"][0]["function"]["parameters"] == CLAUDE_CODE_TOOLS[0]["input_schema"]
        assert chat["user"] == CLAUDE_CODE_REQUEST["metadata"]["user_id"]
        assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
        assert chat["temperature"] == 1
        text = orjson.dumps(chat)
        assert b"cache_control" not in text and b"signature" not in text and b"EmwKAhgBEgy3va3pzix" not in text
        if kind == "gemini":
            assert chat["reasoning_effort"] == "xhigh" and chat["max_tokens"] == 32000
        else:
            assert "reasoning_effort" not in chat and "thinking" not in chat


def test_claude_code_request_is_accepted_by_the_hub_adapters():
    """The chat goes on through the provider adapters unchanged: they must build an upstream call from it."""
    for kind in KINDS:
        chat = messages_request_to_chat(copy.deepcopy(CLAUDE_CODE_REQUEST), provider_kind=kind)
        request = adapter_for(kind).build_chat(chat, target(kind), stream=True)
        sent = orjson.loads(request.body)
        if kind == "gemini":
            assert sent["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 32768
            roles = [c["role"] for c in sent["contents"]]
            assert roles[0] == "user" and "model" in roles
        else:
            assert sent["model"] == "up-model" and len(sent["messages"]) == 8


def test_translated_requests_hold_only_fields_openai_accepts(openai_schemas):
    """OpenAI rejects unknown fields: every openai/custom translation validates against the closed schema."""
    requests = [
        CLAUDE_CODE_REQUEST,
        body(user("hi"), top_k=5, service_tier="auto", speed="fast", inference_geo="us", cache_control={"type": "ephemeral"},
             context_management={"edits": []}, diagnostics={"previous_message_id": None}, stop_sequences=["\n\nHuman:"],
             tool_choice={"type": "any", "disable_parallel_tool_use": True}, tools=[WEATHER_TOOL], top_p=0.9,
             output_config={"effort": "high", "format": {"type": "json_schema", "schema": {"type": "object"}}}, brand_new_field=1),
        body(user([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                   {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.png"}}, {"type": "text", "text": "what?"}])),
    ]
    for request in requests:
        for kind in ("openai", "custom"):
            chat = messages_request_to_chat(copy.deepcopy(request), provider_kind=kind)
            openai_schemas.check("CreateChatCompletionRequest", chat, closed=True)


# ------------------------------------------------------------------ requests, table-driven

REQUEST_CASES = [
    ("string content", body(user("hi")), "openai",
     {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 1024}),
    ("custom keeps max_tokens", body(user("hi")), "custom",
     {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1024}),
    ("system string", body(user("hi"), system="Be brief."), "custom",
     {"model": "claude-sonnet-4-5", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], "max_tokens": 1024}),
    ("images: base64 to a data URL, url kept, order kept",
     body(user([{"type": "text", "text": "compare"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                {"type": "image", "source": {"type": "url", "url": "https://example.test/b.jpg"}, "cache_control": {"type": "ephemeral"}}])), "custom",
     {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": [
         {"type": "text", "text": "compare"},
         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
         {"type": "image_url", "image_url": {"url": "https://example.test/b.jpg"}}]}]}),
    ("sampling, stop, user, stream; top_k and Anthropic-only fields dropped",
     body(user("hi"), temperature=0.2, top_p=0.8, top_k=40, stop_sequences=["END", "STOP"], metadata={"user_id": "u-1"}, stream=True,
          service_tier="standard_only", thinking={"type": "enabled", "budget_tokens": 2048}), "openai",
     {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 1024, "temperature": 0.2,
      "top_p": 0.8, "stop": ["END", "STOP"], "user": "u-1", "stream": True, "stream_options": {"include_usage": True}}),
    ("gemini gets top_k and a reasoning effort",
     body(user("hi"), top_k=40, thinking={"type": "enabled", "budget_tokens": 2048}), "gemini",
     {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1024, "top_k": 40, "reasoning_effort": "medium"}),
    ("tools and tool_choice tool, parallel off",
     body(user("weather?"), tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}), "openai",
     {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "weather?"}], "max_completion_tokens": 1024, "tools": [WEATHER_FUNCTION],
      "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "parallel_tool_calls": False}),
    ("gemini has no parallel switch: dropped",
     body(user("weather?"), tools=[WEATHER_TOOL], tool_choice={"type": "any", "disable_parallel_tool_use": True}), "gemini",
     {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "weather?"}], "max_tokens": 1024, "tools": [WEATHER_FUNCTION], "tool_choice": "required"}),
    ("tool_choice auto and none without tools are dropped", body(user("hi"), tool_choice={"type": "none"}), "custom",
     {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1024}),
    ("tool round trip: results first, in order, then the turn's text",
     body(user("weather in Hanoi and Hue?"),
          assistant([{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Hanoi"}},
                     {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}]),
          user([{"type": "text", "text": "here you go"}, {"type": "tool_result", "tool_use_id": "toolu_1", "content": "31C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "29C"}, {"type": "text", "text": "humid"}]}]),
          tools=[WEATHER_TOOL]), "custom",
     {"model": "claude-sonnet-4-5", "max_tokens": 1024, "tools": [WEATHER_FUNCTION], "messages": [
         {"role": "user", "content": "weather in Hanoi and Hue?"},
         {"role": "assistant", "content": None, "tool_calls": [
             {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Hanoi"}'}},
             {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
         {"role": "tool", "tool_call_id": "toolu_1", "content": "31C"},
         {"role": "tool", "tool_call_id": "toolu_2", "content": "29C\n\nhumid"},
         {"role": "user", "content": "here you go"}]}),
    ("images in a tool result open the next user message",
     body(assistant([{"type": "tool_use", "id": "toolu_s", "name": "screenshot", "input": {}}]),
          user([{"type": "tool_result", "tool_use_id": "toolu_s", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}}]},
                {"type": "text", "text": "what do you see?"}])), "custom",
     {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [
         {"role": "assistant", "content": None, "tool_calls": [{"id": "toolu_s", "type": "function", "function": {"name": "screenshot", "arguments": "{}"}}]},
         {"role": "tool", "tool_call_id": "toolu_s", "content": "[1 image(s) from this result follow in the next user message]"},
         {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}, {"type": "text", "text": "what do you see?"}]}]}),
    ("thinking blocks in history dropped; an assistant turn of thinking only disappears",
     body(user("a"), assistant([{"type": "thinking", "thinking": "hmm", "signature": "sig"}]), user("b"),
          assistant([{"type": "redacted_thinking", "data": "xyz"}, {"type": "text", "text": "answer"}])), "openai",
     {"model": "claude-sonnet-4-5", "max_completion_tokens": 1024, "messages": [
         {"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "answer"}]}),
    ("structured output", body(user("json please"), output_config={"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}), "custom",
     {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "json please"}],
      "response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}),
    ("effort to gemini", body(user("hi"), output_config={"effort": "max"}), "gemini",
     {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "xhigh"}),
]


@pytest.mark.parametrize("name,request_body,kind,expected", REQUEST_CASES, ids=[case[0] for case in REQUEST_CASES])
def test_request_translation(name, request_body, kind, expected):
    original = copy.deepcopy(request_body)
    assert messages_request_to_chat(request_body, provider_kind=kind) == expected
    assert request_body == original  # the client's body is not mutated


@pytest.mark.parametrize("budget,effort", [(1, "minimal"), (128, "minimal"), (1024, "low"), (1025, "medium"), (8192, "medium"), (20000, "high"), (31999, "xhigh"), (10**6, "xhigh")])
def test_thinking_budgets_fall_in_the_smallest_gemini_band_that_holds_them(budget, effort):
    assert thinking_budget_to_reasoning_effort(budget) == effort


ERROR_CASES = [
    ("not an object", [1, 2], None, "invalid_type"),
    ("no model", {"max_tokens": 5, "messages": [user("hi")]}, "model", "missing"),
    ("no max_tokens", {"model": "m", "messages": [user("hi")]}, "max_tokens", "missing"),
    ("max_tokens zero", body(user("hi"), max_tokens=0), "max_tokens", "invalid_value"),
    ("max_tokens a string", body(user("hi"), max_tokens="10"), "max_tokens", "invalid_type"),
    ("no messages", {"model": "m", "max_tokens": 5}, "messages", "missing"),
    ("empty messages", body(), "messages", "invalid_value"),
    ("only thinking", body(assistant([{"type": "thinking", "thinking": "x", "signature": "s"}])), "messages", "invalid_value"),
    ("bad role", body({"role": "system", "content": "x"}), "messages[0].role", "invalid_value"),
    ("no content", body({"role": "user"}), "messages[0].content", "missing"),
    ("content a number", body(user(5)), "messages[0].content", "invalid_type"),
    ("block without type", body(user([{"text": "x"}])), "messages[0].content[0]", "invalid_type"),
    ("text not a string", body(user([{"type": "text", "text": 3}])), "messages[0].content[0].text", "invalid_type"),
    ("document block", body(user([{"type": "text", "text": "read"}, {"type": "document", "source": {"type": "text", "data": "x", "media_type": "text/plain"}}])),
     "messages[0].content[1]", "unsupported_parameter"),
    ("search_result block", body(user([{"type": "search_result", "source": "s", "title": "t", "content": []}])), "messages[0].content[0]", "unsupported_parameter"),
    ("server tool block", body(assistant([{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}])), "messages[0].content[0]", "unsupported_parameter"),
    ("image without source", body(user([{"type": "image"}])), "messages[0].content[0].source", "missing"),
    ("image source a string", body(user([{"type": "image", "source": "x"}])), "messages[0].content[0].source", "invalid_type"),
    ("image source kind", body(user([{"type": "image", "source": {"type": "ftp"}}])), "messages[0].content[0].source.type", "invalid_value"),
    ("image media type", body(user([{"type": "image", "source": {"type": "base64", "media_type": "png", "data": "AA"}}])), "messages[0].content[0].source.media_type", "invalid_value"),
    ("image data missing", body(user([{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}])), "messages[0].content[0].source.data", "missing"),
    ("image url scheme", body(user([{"type": "image", "source": {"type": "url", "url": "file:///etc/passwd"}}])), "messages[0].content[0].source.url", "invalid_value"),
    ("file image source", body(user([{"type": "image", "source": {"type": "file", "file_id": "file_1"}}])), "messages[0].content[0].source", "unsupported_parameter"),
    ("tool_use in a user turn", body(user([{"type": "tool_use", "id": "t", "name": "f", "input": {}}])), "messages[0].content[0]", "invalid_value"),
    ("tool_result in an assistant turn", body(assistant([{"type": "tool_result", "tool_use_id": "t"}])), "messages[0].content[0]", "invalid_value"),
    ("tool_use input a list", body(assistant([{"type": "tool_use", "id": "t", "name": "f", "input": [1]}])), "messages[0].content[0].input", "invalid_type"),
    ("tool_use without id", body(assistant([{"type": "tool_use", "name": "f", "input": {}}])), "messages[0].content[0].id", "missing"),
    ("tool_result without id", body(user([{"type": "tool_result", "content": "x"}])), "messages[0].content[0].tool_use_id", "missing"),
    ("tool_result content a dict", body(user([{"type": "tool_result", "tool_use_id": "t", "content": {"a": 1}}])), "messages[0].content[0].content", "invalid_type"),
    ("tool_result with a document", body(user([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document", "source": {}}]}])),
     "messages[0].content[0].content[0]", "unsupported_parameter"),
    ("tool_result is_error a string", body(user([{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}])), "messages[0].content[0].is_error", "invalid_type"),
    ("system image block", body(user("hi"), system=[{"type": "image", "source": {}}]), "system[0]", "invalid_value"),
    ("system a number", body(user("hi"), system=7), "system", "invalid_type"),
    ("server tool", body(user("hi"), tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]), "tools[0].type", "unsupported_parameter"),
    ("bash tool", body(user("hi"), tools=[WEATHER_TOOL, {"type": "bash_20250124", "name": "bash"}]), "tools[1].type", "unsupported_parameter"),
    ("tool without schema", body(user("hi"), tools=[{"name": "f"}]), "tools[0].input_schema", "missing"),
    ("tool without name", body(user("hi"), tools=[{"input_schema": {}}]), "tools[0].name", "missing"),
    ("tools an object", body(user("hi"), tools={"name": "f"}), "tools", "invalid_type"),
    ("tool_choice any without tools", body(user("hi"), tool_choice={"type": "any"}), "tool_choice", "invalid_value"),
    ("tool_choice unknown tool", body(user("hi"), tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "nope"}), "tool_choice.name", "invalid_value"),
    ("tool_choice type", body(user("hi"), tools=[WEATHER_TOOL], tool_choice={"type": "required"}), "tool_choice.type", "invalid_value"),
    ("disable_parallel a string", body(user("hi"), tools=[WEATHER_TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": "no"}),
     "tool_choice.disable_parallel_tool_use", "invalid_type"),
    ("thinking without budget", body(user("hi"), thinking={"type": "enabled"}), "thinking.budget_tokens", "missing"),
    ("thinking type", body(user("hi"), thinking={"type": "maybe"}), "thinking.type", "invalid_value"),
    ("stop_sequences a string", body(user("hi"), stop_sequences="END"), "stop_sequences", "invalid_type"),
    ("stop_sequences holding a number", body(user("hi"), stop_sequences=["a", 1]), "stop_sequences[1]", "invalid_type"),
    ("metadata user_id a number", body(user("hi"), metadata={"user_id": 42}), "metadata.user_id", "invalid_type"),
    ("temperature a string", body(user("hi"), temperature="hot"), "temperature", "invalid_type"),
    ("stream a string", body(user("hi"), stream="yes"), "stream", "invalid_type"),
    ("effort", body(user("hi"), output_config={"effort": "extreme"}), "output_config.effort", "invalid_value"),
    ("output format type", body(user("hi"), output_format={"type": "xml"}), "output_format.type", "invalid_value"),
    ("container", body(user("hi"), container="container_1"), "container", "unsupported_parameter"),
    ("mcp_servers", body(user("hi"), mcp_servers=[{"type": "url", "url": "https://mcp.test", "name": "m"}]), "mcp_servers", "unsupported_parameter"),
    ("huge integer input", body(assistant([{"type": "tool_use", "id": "t", "name": "f", "input": {"n": 2**80}}])), "messages[0].content[0].input", "invalid_value"),
]


@pytest.mark.parametrize("name,request_body,param,code", ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_malformed_requests_raise_adapter_errors_naming_the_path(name, request_body, param, code):
    with pytest.raises(AdapterError) as caught:
        messages_request_to_chat(request_body, provider_kind="openai")
    assert (caught.value.param, caught.value.code) == (param, code)
    if param:
        assert param in caught.value.message or param.split(".")[0] in caught.value.message


def test_url_images_are_rejected_for_gemini_but_not_for_openai_types():
    request = body(user([{"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}]))
    with pytest.raises(AdapterError) as caught:
        messages_request_to_chat(request, provider_kind="gemini")
    assert caught.value.param == "messages[0].content[0].source"
    assert messages_request_to_chat(request, provider_kind="openai")["messages"][0]["content"][0]["image_url"]["url"] == "https://example.test/a.png"


def test_docstring_table_lists_every_dropped_and_rejected_field():
    import adapters.messages as module

    for name in [*DROPPED_FIELDS, *REJECTED_FIELDS]:
        assert f"``{name}``" in module.__doc__, name


def test_unknown_fields_are_dropped_with_a_warning(warnings_logged):
    chat = messages_request_to_chat(body(user("hi"), frobnicate=True), provider_kind="openai")
    assert "frobnicate" not in chat
    assert any("frobnicate" in str(record["extra"].get("fields")) for record in warnings_logged)


# ------------------------------------------------------------------ any JSON: AdapterError or a serializable chat

JSON_SCALARS = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)

BLOCK_TYPES = ["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "document", "search_result", "server_tool_use", "x"]
BLOCK_KEYS = ["text", "source", "id", "name", "input", "tool_use_id", "content", "is_error", "cache_control", "signature", "thinking"]


def mostly(valid, junk=JSON_VALUES, *, odds: int = 8):
    """``valid`` but one time in ``odds`` anything: deep code is only reached through valid outer layers."""
    return st.sampled_from([True] * (odds - 1) + [False]).flatmap(lambda keep: valid if keep else junk)


NAMES = st.text(min_size=1, max_size=5)
SOURCES = mostly(st.fixed_dictionaries({
    "type": mostly(st.sampled_from(["base64", "url", "file"])),
    "media_type": mostly(st.sampled_from(["image/png", "image/webp"])),
    "data": mostly(st.text(min_size=1, max_size=6)),
    "url": mostly(st.sampled_from(["https://a.test/i.png", "http://b.test/j.jpg"])),
}))
TEXT_BLOCK = st.fixed_dictionaries({"type": st.just("text"), "text": mostly(st.text(max_size=6))}, optional={"cache_control": JSON_VALUES})
IMAGE_BLOCK = st.fixed_dictionaries({"type": st.just("image"), "source": SOURCES})
TOOL_USE_BLOCK = st.fixed_dictionaries({"type": st.just("tool_use"), "id": mostly(NAMES), "name": mostly(NAMES),
                                        "input": mostly(st.dictionaries(st.text(max_size=3), JSON_VALUES, max_size=3))})
TOOL_RESULT_BLOCK = st.fixed_dictionaries(
    {"type": st.just("tool_result"), "tool_use_id": mostly(NAMES)},
    optional={"content": mostly(st.text(max_size=6) | st.lists(mostly(TEXT_BLOCK | IMAGE_BLOCK), max_size=3)), "is_error": mostly(st.booleans())},
)
THINKING_BLOCK = st.fixed_dictionaries({"type": st.sampled_from(["thinking", "redacted_thinking"])}, optional={"thinking": JSON_VALUES, "signature": JSON_VALUES})
RANDOM_BLOCK = st.builds(lambda kind, extra: {**extra, "type": kind}, st.sampled_from(BLOCK_TYPES) | JSON_VALUES,
                         st.dictionaries(st.sampled_from(BLOCK_KEYS), JSON_VALUES | SOURCES, max_size=4))
BLOCKS = st.one_of(TEXT_BLOCK, IMAGE_BLOCK, TOOL_USE_BLOCK, TOOL_RESULT_BLOCK, THINKING_BLOCK, RANDOM_BLOCK)
MESSAGES = st.lists(st.fixed_dictionaries({
    "role": mostly(st.sampled_from(["user", "assistant"])),
    "content": mostly(st.text(max_size=5) | st.lists(BLOCKS, max_size=4)),
}), min_size=1, max_size=4)
TOOLS = st.lists(mostly(st.fixed_dictionaries(
    {"name": mostly(NAMES), "input_schema": mostly(st.dictionaries(st.text(max_size=3), JSON_VALUES, max_size=3))},
    optional={"type": mostly(st.sampled_from(["custom", None]), st.sampled_from(["bash_20250124", "web_search_20250305"]) | JSON_VALUES),
              "description": mostly(st.text(max_size=5))},
)), max_size=3)
ABSENT_OR = lambda values, odds=2: mostly(st.none(), values, odds=odds)  # noqa: E731

PLAUSIBLE_BODIES = st.fixed_dictionaries({
    "model": mostly(NAMES),
    "max_tokens": mostly(st.integers(min_value=1, max_value=10**6)),
    "messages": mostly(MESSAGES),
    "system": ABSENT_OR(mostly(st.text(max_size=5) | st.lists(mostly(TEXT_BLOCK), max_size=2))),
    "tools": ABSENT_OR(mostly(TOOLS)),
    "tool_choice": ABSENT_OR(mostly(st.fixed_dictionaries({"type": mostly(st.sampled_from(["auto", "any", "tool", "none"]))},
                                                          optional={"name": mostly(NAMES), "disable_parallel_tool_use": mostly(st.booleans())}))),
    "thinking": ABSENT_OR(mostly(st.fixed_dictionaries({"type": mostly(st.sampled_from(["enabled", "disabled", "adaptive"]))},
                                                       optional={"budget_tokens": mostly(st.integers(min_value=0, max_value=10**5))}))),
    "output_config": ABSENT_OR(mostly(st.fixed_dictionaries({}, optional={"effort": mostly(st.sampled_from(["low", "max"])),
                                                                         "format": mostly(st.fixed_dictionaries({"type": st.just("json_schema"), "schema": JSON_VALUES}))}))),
    "metadata": ABSENT_OR(mostly(st.fixed_dictionaries({}, optional={"user_id": mostly(st.text(max_size=5))}))),
    "stop_sequences": ABSENT_OR(mostly(st.lists(st.text(max_size=3), max_size=3))),
    "temperature": ABSENT_OR(mostly(st.floats(min_value=0, max_value=1))),
    "stream": ABSENT_OR(mostly(st.booleans())),
    **{name: ABSENT_OR(JSON_VALUES, 40) for name in ("top_p", "top_k", "container", "output_format", "service_tier")},
})


def translate_or_adapter_error(request) -> None:
    for kind in KINDS:
        try:
            chat = messages_request_to_chat(request, provider_kind=kind)
        except AdapterError as error:
            assert isinstance(error.message, str) and (error.param is None or isinstance(error.param, str))
            continue
        assert isinstance(chat["messages"], list) and chat["messages"]
        orjson.dumps(chat)  # whatever was accepted can be sent on
    try:
        assert count_tokens_estimate(request) >= 0
    except AdapterError:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PLAUSIBLE_BODIES)
def test_any_plausible_body_gives_a_chat_or_an_adapter_error(request):
    translate_or_adapter_error(request)


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_gives_a_chat_or_an_adapter_error(request):
    translate_or_adapter_error(request)


def paths_of(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths_of(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths_of(value, (*path, index))


CLAUDE_CODE_PATHS = [path for path in paths_of(CLAUDE_CODE_REQUEST) if path]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CLAUDE_CODE_PATHS), JSON_VALUES)
def test_any_one_value_of_a_real_request_replaced_gives_a_chat_or_an_adapter_error(path, value):
    request = copy.deepcopy(CLAUDE_CODE_REQUEST)
    node = request
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    translate_or_adapter_error(request)


# ------------------------------------------------------------------ count_tokens

def test_count_tokens_estimate_counts_text_tools_and_images_and_validates():
    text = "x" * 400
    plain = count_tokens_estimate({"model": "m", "messages": [user(text)]})
    assert 100 <= plain <= 110
    with_system = count_tokens_estimate({"model": "m", "system": text, "messages": [user(text)]})
    assert with_system >= plain + 100
    with_tools = count_tokens_estimate({"model": "m", "messages": [user(text)], "tools": CLAUDE_CODE_TOOLS})
    assert with_tools > plain + len(orjson.dumps([t["input_schema"] for t in CLAUDE_CODE_TOOLS])) // 4
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 100_000}}
    with_image = count_tokens_estimate({"model": "m", "messages": [user([image, {"type": "text", "text": text}])]})
    assert with_image - plain == TOKENS_PER_IMAGE  # a flat amount, not the base64 length
    assert count_tokens_estimate(CLAUDE_CODE_REQUEST) > 0
    with pytest.raises(AdapterError) as caught:
        count_tokens_estimate({"model": "m", "messages": [user([{"type": "document", "source": {}}])]})
    assert caught.value.param == "messages[0].content[0]"


# ------------------------------------------------------------------ unary answers

def completion(message: dict, finish_reason: str | None, usage: dict | None = None, **choice_fields) -> dict:
    out = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x",
           "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason, **choice_fields}]}
    if usage is not None:
        out["usage"] = usage
    return out


USAGE = {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280, "prompt_tokens_details": {"cached_tokens": 1000}}
ANTHROPIC_USAGE = {"input_tokens": 200, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1000, "output_tokens": 80}

UNARY_CASES = [
    ("text", completion({"content": "Hi there"}, "stop", USAGE), [{"type": "text", "text": "Hi there"}], "end_turn", None, ANTHROPIC_USAGE),
    ("length", completion({"content": "Hi th"}, "length"), [{"type": "text", "text": "Hi th"}], "max_tokens", None,
     {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}),
    ("tool calls, arguments parsed, bad ones {}",
     completion({"content": "Checking.", "tool_calls": [
         {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Hanoi"}'}},
         {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
         {"id": "call_3", "type": "function", "function": {"name": "get_weather", "arguments": "{not json"}},
         {"id": "call_4", "type": "function", "function": {"name": "get_weather", "arguments": "[1, 2]"}}]}, "tool_calls", USAGE),
     [{"type": "text", "text": "Checking."},
      {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Hanoi"}},
      {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
      {"type": "tool_use", "id": "call_3", "name": "get_weather", "input": {}},
      {"type": "tool_use", "id": "call_4", "name": "get_weather", "input": {}}], "tool_use", None, ANTHROPIC_USAGE),
    ("tool calls under finish stop still mean tool_use",
     completion({"content": None, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "stop", USAGE),
     [{"type": "tool_use", "id": "c", "name": "f", "input": {}}], "tool_use", None, ANTHROPIC_USAGE),
    ("content filter", completion({"content": ""}, "content_filter", USAGE), [], "refusal", None, ANTHROPIC_USAGE),
    ("OpenAI refusal", completion({"content": None, "refusal": "I can't help with that."}, "stop", USAGE),
     [{"type": "text", "text": "I can't help with that."}], "refusal", None, ANTHROPIC_USAGE),
    ("a stop string the server names (vLLM)", completion({"content": "1, 2, 3"}, "stop", USAGE, stop_reason="\n\n"),
     [{"type": "text", "text": "1, 2, 3"}], "stop_sequence", "\n\n", ANTHROPIC_USAGE),
    ("reasoning becomes a thinking block first", completion({"content": "4", "reasoning_content": "2+2=4"}, "stop", USAGE),
     [{"type": "thinking", "thinking": "2+2=4", "signature": ""}, {"type": "text", "text": "4"}], "end_turn", None, ANTHROPIC_USAGE),
    ("junk usage", completion({"content": "x"}, "stop", {"prompt_tokens": "many"}), [{"type": "text", "text": "x"}], "end_turn", None,
     {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}),
]


@pytest.mark.parametrize("name,chat,content,stop_reason,stop_sequence,usage", UNARY_CASES, ids=[case[0] for case in UNARY_CASES])
def test_chat_completion_to_message(name, chat, content, stop_reason, stop_sequence, usage):
    message = chat_completion_to_message(chat, model="claude-sonnet-4-5")
    assert message["id"].startswith("msg_") and message["type"] == "message" and message["role"] == "assistant"
    assert message["model"] == "claude-sonnet-4-5"
    assert (message["content"], message["stop_reason"], message["stop_sequence"], message["usage"]) == (content, stop_reason, stop_sequence, usage)


@pytest.mark.parametrize("finish,stop", [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("function_call", "tool_use"),
                                         ("content_filter", "refusal"), (None, "end_turn")])
def test_finish_reason_to_anthropic_stop_reason(finish, stop):
    assert finish_reason_to_anthropic_stop_reason(finish) == stop


def test_unknown_finish_reason_is_end_turn_with_a_warning(warnings_logged):
    assert finish_reason_to_anthropic_stop_reason("sleepy") == "end_turn"
    assert any(record["extra"].get("finish_reason") == "sleepy" for record in warnings_logged)


# ------------------------------------------------------------------ streams

def parse_events(frames: list[bytes]) -> list[tuple[str, dict]]:
    """``(event name, payload)`` of each frame; every frame must be ``event:`` + one ``data:`` line."""
    out = []
    for raw in frames:
        assert raw.endswith(b"\n\n"), raw
        event_line, data_line = raw[:-2].split(b"\n")
        assert event_line.startswith(b"event: ") and data_line.startswith(b"data: "), raw
        payload = orjson.loads(data_line[6:])
        assert payload["type"] == event_line[7:].decode()
        out.append((payload["type"], payload))
    return out


def assemble_events(events: list[tuple[str, dict]]) -> dict:
    """Check the Anthropic event grammar and put the message together as a client does."""
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"] and names.count("message_delta") == 1
    message = copy.deepcopy(events[0][1]["message"])
    assert message["content"] == [] and message["stop_reason"] is None
    json_parts: dict[int, str] = {}
    open_index = None
    for name, payload in events[1:-2]:
        if name == "ping":
            continue
        if name == "content_block_start":
            assert open_index is None, "a block started while another was open"
            assert payload["index"] == len(message["content"])
            open_index = payload["index"]
            message["content"].append(copy.deepcopy(payload["content_block"]))
        elif name == "content_block_delta":
            assert payload["index"] == open_index
            block, delta = message["content"][open_index], payload["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                assert delta["type"] == "input_json_delta" and block["type"] in ("tool_use", "server_tool_use")
                json_parts[open_index] = json_parts.get(open_index, "") + delta["partial_json"]
        else:
            assert name == "content_block_stop" and payload["index"] == open_index
            if open_index in json_parts:
                message["content"][open_index]["input"] = orjson.loads(json_parts[open_index])
            open_index = None
    assert open_index is None
    delta = events[-2][1]
    message.update(delta["delta"])
    message["usage"] = {**message["usage"], **delta["usage"]}
    return message


def chunk(delta: dict | None = None, finish_reason: str | None = None, usage: dict | None = None) -> dict:
    out = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
           "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
    if usage is not None:
        out["usage"] = usage
    return out


PARALLEL_TOOL_CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Checking "}),
    chunk({"content": "both."}),
    chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Hanoi"}'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Hue"}'}}]}),
    chunk({}, "tool_calls"),
    chunk(None, usage={"prompt_tokens": 1500, "completion_tokens": 42, "total_tokens": 1542, "prompt_tokens_details": {"cached_tokens": 1024}}),
]


def run_stream(chunks: list[dict], *, estimate: int = 333, usage: Usage | None = None) -> tuple[MessagesStream, list[bytes]]:
    stream = MessagesStream(model="claude-sonnet-4-5", message_id="msg_test", input_tokens_estimate=estimate)
    frames = [frame for piece in chunks for frame in stream.feed(piece)]
    return stream, frames + stream.finish(usage)


def test_stream_of_text_and_parallel_tool_calls_with_a_usage_chunk():
    stream, frames = run_stream(PARALLEL_TOOL_CHUNKS)
    events = parse_events(frames)
    assert [name for name, _ in events[:2]] == ["message_start", "ping"]
    assert events[0][1]["message"]["usage"]["input_tokens"] == 333  # usage comes last: the estimate
    message = assemble_events(events)
    expected_content = [
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Hanoi"}},
        {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {"city": "Hue"}},
    ]
    assert message["content"] == expected_content
    assert (message["stop_reason"], message["stop_sequence"]) == ("tool_use", None)
    assert events[-2][1]["usage"] == {"input_tokens": 476, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024, "output_tokens": 42}
    assert stream.message == {**message, "id": "msg_test"}
    assert stream.usage == Usage(1500, 42, 1024)


def test_stream_start_carries_real_input_tokens_when_the_first_chunk_has_usage():
    chunks = [chunk({"role": "assistant", "content": "Hi"}, "stop", usage={"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13})]
    _, frames = run_stream(chunks)
    events = parse_events(frames)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 12
    assert events[-2][1]["usage"]["output_tokens"] == 1


def test_finish_usage_wins_and_without_any_usage_output_is_estimated():
    chunks = [chunk({"content": "x" * 40}), chunk({}, "length")]
    _, frames = run_stream(chunks, usage=Usage(50, 10, 0))
    assert parse_events(frames)[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                                           "usage": {"input_tokens": 50, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 10}}
    stream, frames = run_stream(chunks)
    assert parse_events(frames)[-2][1]["usage"] == {"output_tokens": 10}
    assert stream.message["usage"]["input_tokens"] == 333


def test_reasoning_streams_as_a_thinking_block_before_the_text():
    chunks = [chunk({"role": "assistant", "reasoning_content": "Two and "}), chunk({"reasoning_content": "two."}), chunk({"content": "4"}),
              chunk({}, "stop", usage={"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14})]
    _, frames = run_stream(chunks)
    events = parse_events(frames)
    assert [p["delta"]["type"] for n, p in events if n == "content_block_delta"] == ["thinking_delta", "thinking_delta", "text_delta"]
    message = assemble_events(events)
    assert message["content"] == [{"type": "thinking", "thinking": "Two and two.", "signature": ""}, {"type": "text", "text": "4"}]


def test_text_after_a_tool_call_opens_a_new_block_and_a_tool_call_without_arguments_keeps_input_empty():
    chunks = [chunk({"tool_calls": [{"index": 0, "id": "call_z", "type": "function", "function": {"name": "ping", "arguments": ""}}]}),
              chunk({"content": "done"}), chunk({}, "tool_calls")]
    stream, frames = run_stream(chunks)
    message = assemble_events(parse_events(frames))
    assert message["content"] == [{"type": "tool_use", "id": "call_z", "name": "ping", "input": {}}, {"type": "text", "text": "done"}]
    assert stream.message["content"] == message["content"]


def test_interleaved_tool_arguments_raise_an_upstream_error():
    stream = MessagesStream(model="m", input_tokens_estimate=1)
    stream.feed(chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}}]}))
    stream.feed(chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}))
    with pytest.raises(UpstreamError) as caught:
        stream.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}))
    assert caught.value.outcome is Outcome.SERVER_ERROR


def test_fail_emits_an_error_event_and_ends_the_stream():
    stream = MessagesStream(model="m", input_tokens_estimate=1)
    first = stream.feed(chunk({"content": "partial"}))
    failed = stream.fail("overloaded_error", "upstream went away")
    assert parse_events(failed) == [("error", {"type": "error", "error": {"type": "overloaded_error", "message": "upstream went away"}})]
    assert [name for name, _ in parse_events(first)] == ["message_start", "ping", "content_block_start", "content_block_delta"]
    assert stream.feed(chunk({"content": "more"})) == [] and stream.finish() == []


def shared_chat_chunks(shared_dir, name: str, kind: str) -> list[dict]:
    """A recorded upstream stream, through that provider's own adapter, as the chat chunks a client gets."""
    folder = {"openai": "openai/stream", "anthropic": "anthropic/stream"}[kind]
    path = shared_dir / "fixtures" / folder / name
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    translator = adapter_for(kind).stream_translator(model="hub-model", include_usage=True)
    return chunks_of(replay(translator, events_of(path.read_bytes())))


def test_recorded_openai_parallel_tool_stream_through_the_hub(shared_dir):
    chunks = shared_chat_chunks(shared_dir, "tool_call_parallel_gpt4o.sse", "openai")
    arguments: dict[int, str] = {}
    for piece in chunks:
        for choice in piece["choices"]:
            for call in choice["delta"].get("tool_calls") or []:
                arguments[call["index"]] = arguments.get(call["index"], "") + call["function"].get("arguments", "")
    stream, frames = run_stream(chunks)
    message = assemble_events(parse_events(frames))
    tools = [block for block in message["content"] if block["type"] == "tool_use"]
    assert [block["name"] for block in tools] == ["GetWeatherArgs", "get_stock_price"]
    assert [block["input"] for block in tools] == [orjson.loads(arguments[0]), orjson.loads(arguments[1])]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 149, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 60}
    assert stream.message == {**message, "id": "msg_test"}


def test_recorded_openai_text_stream_through_the_hub(shared_dir):
    chunks = shared_chat_chunks(shared_dir, "text_gpt4o.sse", "openai")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    _, frames = run_stream(chunks)
    message = assemble_events(parse_events(frames))
    assert message["content"] == [{"type": "text", "text": text}] and text
    assert message["stop_reason"] == "end_turn" and message["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("name", ["basic_response.txt", "tool_use_response.txt"])
def test_anthropic_to_chat_to_anthropic_keeps_what_the_native_stream_says(shared_dir, name):
    """A recorded Anthropic stream, natively relayed and assembled, equals the same stream through the hub and back."""
    raw = (shared_dir / "fixtures" / "anthropic" / "stream" / name)
    if not raw.is_file():
        pytest.skip(f"{raw} is not present")
    native = NativeMessagesStream()
    relayed = [frame for event in events_of(raw.read_bytes()) for frame in native.feed(event)] + native.finish()
    direct = assemble_events([(e.event, orjson.loads(e.data)) for e in events_of(b"".join(relayed))])
    _, frames = run_stream(shared_chat_chunks(shared_dir, name, "anthropic"))
    via_hub = assemble_events(parse_events(frames))
    strip = lambda blocks: [{k: v for k, v in b.items() if k not in ("caller",)} for b in blocks]  # noqa: E731
    assert strip(via_hub["content"]) == strip(direct["content"])
    assert via_hub["stop_reason"] == direct["stop_reason"]
    assert via_hub["usage"]["output_tokens"] == direct["usage"]["output_tokens"]
    assert via_hub["usage"]["input_tokens"] == direct["usage"]["input_tokens"]


# ------------------------------------------------------------------ replaying a whole message

def test_message_to_events_replays_every_block_kind():
    message = {
        "id": "msg_cached", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBsig"},
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "text", "text": "Here:"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Hanoi", "days": [1, 2]}},
            {"type": "tool_use", "id": "toolu_2", "name": "ping", "input": {}},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 20, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 70},
    }
    events = parse_events(message_to_events(message))
    assert assemble_events(events) == message
    assert events[0][1]["message"]["usage"]["input_tokens"] == 20


def test_a_streamed_message_replays_to_the_same_message():
    stream, _ = run_stream(PARALLEL_TOOL_CHUNKS)
    assert assemble_events(parse_events(message_to_events(stream.message))) == stream.message


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("status,error_type", [
    (400, "invalid_request_error"), (401, "authentication_error"), (402, "billing_error"), (403, "permission_error"), (404, "not_found_error"),
    (405, "invalid_request_error"), (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"), (502, "api_error"),
    (503, "overloaded_error"), (504, "timeout_error"), (529, "overloaded_error"), (599, "api_error"),
])
def test_anthropic_error_body_by_status(status, error_type):
    assert anthropic_error_body(status, "nope") == {"type": "error", "error": {"type": error_type, "message": "nope"}}


def test_openai_quota_errors_are_billing_errors():
    assert anthropic_error_body(429, "quota", openai_type="insufficient_quota")["error"]["type"] == "billing_error"
    assert anthropic_error_body(429, "slow down", openai_type="rate_limit_error")["error"]["type"] == "rate_limit_error"


# ------------------------------------------------------------------ native pass-through

def test_native_request_replaces_only_the_model():
    request = copy.deepcopy(CLAUDE_CODE_REQUEST)
    request["brand_new_field"] = {"nested": [1, 2.5, None, True]}
    request["context_management"] = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    sent = native_messages_request(request, "claude-sonnet-4-5-20250929-upstream")
    decoded = orjson.loads(sent)
    assert decoded == {**request, "model": "claude-sonnet-4-5-20250929-upstream"}
    assert list(decoded) == list(request)  # field order kept
    assert decoded["messages"][1]["content"][0]["signature"] == "EqQBCkYIBxgCKkBsignature"
    assert decoded["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert request["model"] == "claude-sonnet-4-5-20250929"  # not mutated


def test_message_usage_reads_recorded_messages_and_tolerates_junk(shared_dir):
    path = shared_dir / "fixtures" / "anthropic" / "anthropic-tool-no-args.json"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    assert message_usage(orjson.loads(path.read_bytes())) == Usage(602, 93, 0)
    assert message_usage({"usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 50, "output_tokens": 7}}) == Usage(150, 7, 90)
    for junk in ({"usage": {"input_tokens": "10", "output_tokens": 1}}, {"usage": {"input_tokens": True}}, {"usage": []}, {}, [], None,
                 {"usage": {"input_tokens": -1}}):
        assert message_usage(junk) is None


@pytest.mark.parametrize("name,usage,json_lines", [
    ("stream/basic_response.txt", Usage(11, 6, 0), False),
    ("stream/tool_use_response.txt", Usage(377, 65, 0), False),
    ("stream/refusal_response.txt", Usage(20, 0, 0), False),
    ("anthropic-text.chunks.txt", Usage(12, 30, 0), True),
    ("anthropic-tool-no-args.chunks.txt", Usage(565, 48, 0), True),
])
def test_native_stream_relays_recorded_events_untouched_and_reads_usage(shared_dir, name, usage, json_lines):
    path = shared_dir / "fixtures" / "anthropic" / name
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    upstream = events_of(path.read_bytes(), json_lines=json_lines)
    native = NativeMessagesStream()
    frames = [frame for event in upstream for frame in native.feed(event)]
    assert native.finish() == [] and native.done
    relayed = events_of(b"".join(frames))
    assert [e.data for e in relayed] == [e.data for e in upstream]  # data byte for byte
    assert [e.event for e in relayed] == [e.event or orjson.loads(e.data)["type"] for e in upstream]
    assert native.usage == usage


def test_native_stream_errors():
    native = NativeMessagesStream()
    native.feed(SSEEvent(b'{"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":1}}}', "message_start"))
    with pytest.raises(UpstreamError) as caught:
        native.feed(SSEEvent(b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', "error"))
    assert caught.value.outcome is Outcome.OVERLOADED and caught.value.message == "Overloaded"
    with pytest.raises(UpstreamError) as caught:
        native.feed(SSEEvent(b'{"type":"content_block_delta",', "content_block_delta"))
    assert caught.value.outcome is Outcome.SERVER_ERROR
    with pytest.raises(UpstreamError):
        native.feed(SSEEvent(b"[1, 2]", "content_block_delta"))
    with pytest.raises(UpstreamError) as caught:
        native.finish()  # no message_stop
    assert "message_stop" in caught.value.message
    assert native.usage == Usage(5, 1, 0)


def test_native_stream_keeps_multi_line_data_and_ignores_junk_usage():
    native = NativeMessagesStream()
    frames = native.feed(SSEEvent(b'{"type":"message_delta",\n"usage":{"output_tokens":"lots"}}', "message_delta"))
    assert frames == [b'event: message_delta\ndata: {"type":"message_delta",\ndata: "usage":{"output_tokens":"lots"}}\n\n']
    assert native.usage is None


# ------------------------------------------------------------------ the official SDK against a loopback server

SDK_COMPLETION = completion(
    {"content": "It is sunny.", "tool_calls": [{"id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Hanoi"}'}}]},
    "tool_calls", USAGE,
)


class MessagesServer:
    """A tiny Messages API on 127.0.0.1 answering with this module's translators (in a thread)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None

    def start(self) -> "MessagesServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _serve(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    @staticmethod
    def _json(payload: dict, status: int = 200):
        from aiohttp import web

        return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")

    async def _messages(self, request):
        from aiohttp import web

        body = orjson.loads(await request.read())
        self.requests.append(body)
        try:
            chat = messages_request_to_chat(body, provider_kind="openai")
        except AdapterError as error:
            return self._json(anthropic_error_body(400, f"{error.param}: {error.message}"), 400)
        model = body["model"]
        if model.startswith("status-"):
            status = int(model.removeprefix("status-"))
            return self._json(anthropic_error_body(status, "scripted failure"), status)
        if not chat.get("stream"):
            return self._json(chat_completion_to_message(SDK_COMPLETION, model=model))
        stream = MessagesStream(model=model, input_tokens_estimate=count_tokens_estimate(body))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for piece in PARALLEL_TOOL_CHUNKS:
            for frame in stream.feed(piece):
                await response.write(frame)
        for frame in stream.fail("overloaded_error", "upstream went away") if model == "fail-mid-stream" else stream.finish():
            await response.write(frame)
        await response.write_eof()
        return response

    async def _count_tokens(self, request):
        body = orjson.loads(await request.read())
        try:
            return self._json({"input_tokens": count_tokens_estimate(body)})
        except AdapterError as error:
            return self._json(anthropic_error_body(400, error.message), 400)


@pytest.fixture(scope="module")
def sdk():
    anthropic = pytest.importorskip("anthropic")
    server = MessagesServer().start()
    client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{server.port}", api_key="test-key", max_retries=0, timeout=10)
    yield anthropic, client, server
    client.close()
    server.stop()


SDK_TOOLS = [{"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def test_sdk_messages_create(sdk):
    anthropic, client, server = sdk
    message = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=256, tools=SDK_TOOLS,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Weather in Hanoi?"}],
    )
    assert isinstance(message, anthropic.types.Message)
    assert message.content[0].type == "text" and message.content[0].text == "It is sunny."
    assert message.content[1].type == "tool_use" and message.content[1].input == {"city": "Hanoi"} and message.content[1].id == "call_w"
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (200, 1000, 80)
    assert server.requests[-1]["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_sdk_messages_stream(sdk):
    anthropic, client, _ = sdk
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=256, tools=SDK_TOOLS, messages=[{"role": "user", "content": "Weather in Hanoi and Hue?"}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["Checking ", "both."]
    assert [block.type for block in final.content] == ["text", "tool_use", "tool_use"]
    assert [block.input for block in final.content[1:]] == [{"city": "Hanoi"}, {"city": "Hue"}]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (476, 1024, 42)


def test_sdk_count_tokens(sdk):
    _, client, _ = sdk
    short = client.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    long = client.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi " * 400}], tools=SDK_TOOLS)
    assert 0 < short.input_tokens < long.input_tokens


def test_sdk_raises_its_own_exception_classes(sdk):
    anthropic, client, _ = sdk
    ask = {"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    for status, error_class in [(429, anthropic.RateLimitError), (401, anthropic.AuthenticationError), (404, anthropic.NotFoundError),
                                (529, anthropic.InternalServerError), (504, anthropic.InternalServerError)]:
        with pytest.raises(error_class) as caught:
            client.messages.create(model=f"status-{status}", **ask)
        assert caught.value.status_code == status
        assert caught.value.body["error"]["type"] == anthropic_error_body(status, "")["error"]["type"]
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}])
    assert "messages[0].content[0]" in str(caught.value)


def test_sdk_stream_error_event_raises(sdk):
    anthropic, client, _ = sdk
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model="fail-mid-stream", max_tokens=16, messages=[{"role": "user", "content": "hi"}]) as stream:
            for _ in stream.text_stream:
                pass
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "upstream went away"}
