"""Wire formats the fake upstream speaks: OpenAI, Anthropic Messages and Gemini.

Each ``Wire`` turns a request body and a scripted ``Step`` into that provider's answer (a JSON
body, or the SSE frames of a stream), its error envelope for a status, and its embeddings. Each
also checks the rules the real provider enforces (Anthropic: alternating roles, ``max_tokens``;
Gemini: known roles, function responses naming an earlier call, no key in the URL) and answers
a provider-shaped 400 when a request breaks them, so a translation mistake fails the tests.

``understand(body)`` reads a request of that wire format back into one provider-neutral ``Seen``,
so one conformance test can assert what the upstream received, whatever the provider.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

RESPONSE_TOOL = "respond_with_json"  # the gateway's Anthropic response_format emulation


@dataclass
class Seen:
    """What an upstream understood from a request, in provider-neutral terms."""

    system: str | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)  # (user | assistant | tool, text)
    images: list[str] = field(default_factory=list)  # data URLs or http(s) URLs
    tools: list[str] = field(default_factory=list)
    tool_calls: list[tuple[str, dict]] = field(default_factory=list)  # (name, arguments) in the history
    tool_results: list[tuple[str, Any]] = field(default_factory=list)  # (call id or function name, result)
    json_schema: dict | None = None  # the JSON answer format asked for, if any
    max_tokens: int | None = None


def split(text: str, parts: int) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def last_user_text(seen: Seen) -> str:
    texts = [text for role, text in seen.turns if role == "user"]
    return texts[-1] if texts else ""


def reply_text(seen: Seen, step) -> str:
    return step.reply if step.reply is not None else f"echo: {last_user_text(seen)}"


def token_counts(body: Any, text: str, step) -> tuple[int, int]:
    prompt = step.prompt_tokens
    if prompt is None:
        prompt = 10 + len(orjson.dumps(body)) // 40
    completion = step.completion_tokens if step.completion_tokens is not None else max(1, len(text) // 4)
    return prompt, completion


def forced_json(step, text: str) -> dict:
    """The input of a forced tool call: the scripted call's arguments, else the reply as JSON."""
    if step.tool_call:
        return step.tool_call.get("arguments", {})
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


# ------------------------------------------------------------------ OpenAI


class OpenAIWire:
    name = "openai"

    def problem(self, body: Any, query) -> str | None:
        if not isinstance(body, dict) or "messages" not in body and "input" not in body:
            return "request must have messages (or input)"
        return None

    def understand(self, body: dict) -> Seen:
        seen = Seen(max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"))
        system = []
        for message in body.get("messages") or []:
            role, content = message.get("role"), message.get("content")
            if role in ("system", "developer"):
                system.append(_text_of(content))
            elif role == "tool":
                seen.turns.append(("tool", _text_of(content)))
                seen.tool_results.append((message.get("tool_call_id"), _text_of(content)))
            else:
                seen.turns.append((role, _text_of(content)))
                for part in content if isinstance(content, list) else []:
                    if isinstance(part, dict) and part.get("type") == "image_url":
                        seen.images.append(part["image_url"]["url"])
                for call in message.get("tool_calls") or []:
                    seen.tool_calls.append((call["function"]["name"], orjson.loads(call["function"]["arguments"] or "{}")))
        seen.system = "\n\n".join(system) or None
        seen.tools = [t["function"]["name"] for t in body.get("tools") or []]
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            seen.json_schema = response_format["json_schema"].get("schema") or {"type": "object"}
        elif response_format.get("type") == "json_object":
            seen.json_schema = {"type": "object"}
        return seen

    def completion(self, body: dict, step, ids) -> dict:
        text = reply_text(self.understand(body), step)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        finish = "stop"
        if step.tool_call:
            message["content"] = None
            arguments = orjson.dumps(step.tool_call.get("arguments", {})).decode()
            message["tool_calls"] = [{"id": f"call_fake{next(ids)}", "type": "function", "function": {"name": step.tool_call["name"], "arguments": arguments}}]
            finish = "tool_calls"
        out = {
            "id": f"chatcmpl-fake{next(ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": step.stop_reason or finish}],
            "system_fingerprint": "fp_fake",
        }
        if not step.no_usage:
            prompt, completion = token_counts(body, text, step)
            out["usage"] = self._usage(prompt, completion, step)
        return out

    @staticmethod
    def _usage(prompt: int, completion: int, step) -> dict:
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        if step.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": step.cached_tokens}
        return usage

    def stream(self, body: dict, step, ids) -> list[bytes]:
        text = reply_text(self.understand(body), step)
        head = {"id": f"chatcmpl-fake{next(ids)}", "object": "chat.completion.chunk", "created": int(time.time()), "model": body.get("model")}
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not step.no_usage
        payloads: list[dict] = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
        finish = "stop"
        if step.tool_call:
            arguments = orjson.dumps(step.tool_call.get("arguments", {})).decode()
            first = {"index": 0, "id": f"call_fake{next(ids)}", "type": "function", "function": {"name": step.tool_call["name"], "arguments": ""}}
            payloads.append({**head, "choices": [{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}]})
            for piece in split(arguments, max(1, step.chunks)):
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                payloads.append({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            finish = "tool_calls"
        else:
            for piece in split(text, max(1, step.chunks)):
                payloads.append({**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        prompt, completion = token_counts(body, text, step)
        finish_payload = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        if wants_usage and step.usage_on_finish:
            finish_payload["usage"] = self._usage(prompt, completion, step)
        payloads.append(finish_payload)
        if wants_usage and not step.usage_on_finish:
            payloads.append({**head, "choices": [], "usage": self._usage(prompt, completion, step)})
        frames = [b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads]
        if step.stream_error_after is not None:
            error = {"error": {"message": "fake upstream broke mid-stream", "type": "server_error", "param": None, "code": None}}
            frames.insert(step.stream_error_after, b"data: " + orjson.dumps(error) + b"\n\n")
        return frames + [b"data: [DONE]\n\n"]

    def error(self, status: int, step) -> dict:
        kinds = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error", 429: "rate_limit_exceeded"}
        return {"error": {"message": f"fake upstream says {status}", "type": kinds.get(status, "server_error"), "param": None, "code": None}}

    def embeddings(self, body: dict, step) -> dict:
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]} for i in range(len(items))]
        tokens = step.prompt_tokens if step.prompt_tokens is not None else sum(max(1, len(str(x)) // 4) for x in items)
        return {"object": "list", "data": data, "model": body.get("model"), "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# ------------------------------------------------------------------ Anthropic Messages


ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class AnthropicWire:
    name = "anthropic"

    def problem(self, body: Any, query) -> str | None:
        if not isinstance(body, dict):
            return "body must be a JSON object"
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        tool_uses: set[str] = set()
        for index, message in enumerate(messages):
            expected = "user" if index % 2 == 0 else "assistant"
            if message.get("role") != expected:
                return f"messages.{index}.role: roles must alternate between user and assistant, starting with user"
            for block in message.get("content") if isinstance(message.get("content"), list) else []:
                kind = block.get("type")
                if kind not in ("text", "image", "tool_use", "tool_result"):
                    return f"messages.{index}.content: unknown block type {kind!r}"
                if kind == "text" and not block.get("text"):
                    return f"messages.{index}.content: text content blocks must be non-empty"
                if kind == "tool_use":
                    tool_uses.add(block["id"])
                if kind == "tool_result" and block.get("tool_use_id") not in tool_uses:
                    return f"messages.{index}.content: tool_result for an unknown tool_use id"
        choice = body.get("tool_choice")
        if choice and choice.get("type") == "tool" and choice.get("name") not in [t["name"] for t in body.get("tools") or []]:
            return "tool_choice names a tool that is not in tools"
        return None

    def understand(self, body: dict) -> Seen:
        system = body.get("system")
        if isinstance(system, list):
            system = " ".join(b.get("text", "") for b in system)
        seen = Seen(system=system or None, max_tokens=body.get("max_tokens"))
        for message in body.get("messages") or []:
            content = message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            texts = []
            for block in blocks:
                kind = block.get("type")
                if kind == "text":
                    texts.append(block["text"])
                elif kind == "image":
                    source = block["source"]
                    seen.images.append(source["url"] if source["type"] == "url" else f"data:{source['media_type']};base64,{source['data']}")
                elif kind == "tool_use":
                    seen.tool_calls.append((block["name"], block["input"]))
                elif kind == "tool_result":
                    result = block.get("content")
                    seen.tool_results.append((block["tool_use_id"], _text_of(result)))
                    seen.turns.append(("tool", _text_of(result)))
            if texts:
                seen.turns.append((message["role"], " ".join(texts)))
        tools = body.get("tools") or []
        seen.tools = [t["name"] for t in tools if t["name"] != RESPONSE_TOOL]
        for tool in tools:
            if tool["name"] == RESPONSE_TOOL:
                seen.json_schema = tool["input_schema"]
        return seen

    def _answer(self, body: dict, step) -> tuple[list[dict], str, str]:
        """(content blocks, stop_reason, text used for token counts)."""
        seen = self.understand(body)
        text = reply_text(seen, step)
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool":
            return [{"type": "tool_use", "id": "", "name": choice["name"], "input": forced_json(step, text)}], "tool_use", text
        if step.tool_call:
            return [{"type": "tool_use", "id": "", "name": step.tool_call["name"], "input": step.tool_call.get("arguments", {})}], "tool_use", text
        return [{"type": "text", "text": text}], step.stop_reason or "end_turn", text

    def _usage(self, prompt: int, completion: int, step) -> dict:
        cached = step.cached_tokens or 0
        return {"input_tokens": prompt - cached, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached, "output_tokens": completion}

    def completion(self, body: dict, step, ids) -> dict:
        blocks, stop_reason, text = self._answer(body, step)
        for block in blocks:
            if block["type"] == "tool_use":
                block["id"] = f"toolu_fake{next(ids)}"
        out = {
            "id": f"msg_fake{next(ids)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
        }
        if not step.no_usage:
            out["usage"] = self._usage(*token_counts(body, text, step), step)
        return out

    def stream(self, body: dict, step, ids) -> list[bytes]:
        blocks, stop_reason, text = self._answer(body, step)
        prompt, completion = token_counts(body, text, step)
        usage = self._usage(prompt, completion, step)
        events: list[tuple[str, dict]] = [
            ("message_start", {"message": {"id": f"msg_fake{next(ids)}", "type": "message", "role": "assistant", "model": body.get("model"),
                                            "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}}),
            ("ping", {}),
        ]
        block = blocks[0]
        if block["type"] == "text":
            events.append(("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
            for piece in split(text, max(1, step.chunks)):
                events.append(("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}}))
        else:
            start = {"type": "tool_use", "id": f"toolu_fake{next(ids)}", "name": block["name"], "input": {}}
            events.append(("content_block_start", {"index": 0, "content_block": start}))
            for piece in split(orjson.dumps(block["input"]).decode(), max(1, step.chunks)):
                events.append(("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}}))
        events.append(("content_block_stop", {"index": 0}))
        events.append(("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": completion}}))
        events.append(("message_stop", {}))
        if step.stream_error_after is not None:
            events.insert(step.stream_error_after, ("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
        return [f"event: {name}\n".encode() + b"data: " + orjson.dumps({"type": name, **data}) + b"\n\n" for name, data in events]

    def error(self, status: int, step) -> dict:
        return {"type": "error", "error": {"type": ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": f"fake upstream says {status}"}}

    def embeddings(self, body: dict, step) -> dict:
        raise AssertionError("Anthropic has no embeddings endpoint")


# ------------------------------------------------------------------ Gemini


GOOGLE_STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                   429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class GeminiWire:
    name = "gemini"

    def problem(self, body: Any, query) -> str | None:
        if "key" in query:
            return "API keys must not be sent in the URL"
        if not isinstance(body, dict):
            return "body must be a JSON object"
        if "requests" in body:
            return None
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return "contents is not specified"
        called: set[str] = set()
        for index, content in enumerate(contents):
            if content.get("role") not in ("user", "model"):
                return f"contents[{index}].role must be user or model"
            for part in content.get("parts") or []:
                if "functionCall" in part:
                    called.add(part["functionCall"]["name"])
                if "functionResponse" in part and part["functionResponse"]["name"] not in called:
                    return f"contents[{index}]: functionResponse for a function that was not called"
                if "functionResponse" in part and not isinstance(part["functionResponse"].get("response"), dict):
                    return f"contents[{index}]: functionResponse.response must be an object"
        return None

    def understand(self, body: dict) -> Seen:
        config = body.get("generationConfig") or {}
        instruction = body.get("systemInstruction") or {}
        system = " ".join(p.get("text", "") for p in instruction.get("parts") or [])
        seen = Seen(system=system or None, max_tokens=config.get("maxOutputTokens"))
        for content in body.get("contents") or []:
            texts = []
            for part in content.get("parts") or []:
                if "text" in part:
                    texts.append(part["text"])
                elif "inlineData" in part:
                    seen.images.append(f"data:{part['inlineData']['mimeType']};base64,{part['inlineData']['data']}")
                elif "functionCall" in part:
                    seen.tool_calls.append((part["functionCall"]["name"], part["functionCall"].get("args", {})))
                elif "functionResponse" in part:
                    response = part["functionResponse"]
                    result = response["response"]
                    seen.tool_results.append((response["name"], result))
                    seen.turns.append(("tool", orjson.dumps(result).decode()))
            if texts:
                seen.turns.append(("assistant" if content["role"] == "model" else "user", " ".join(texts)))
        seen.tools = [d["name"] for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []]
        if config.get("responseMimeType") == "application/json":
            seen.json_schema = config.get("responseSchema") or {"type": "object"}
        return seen

    def _usage(self, prompt: int, completion: int, step) -> dict:
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion + (step.reasoning_tokens or 0)}
        if step.reasoning_tokens:
            usage["thoughtsTokenCount"] = step.reasoning_tokens
        if step.cached_tokens:
            usage["cachedContentTokenCount"] = step.cached_tokens
        return usage

    def _parts(self, body: dict, step) -> tuple[list[dict], str]:
        text = reply_text(self.understand(body), step)
        if step.tool_call:
            return [{"functionCall": {"name": step.tool_call["name"], "args": step.tool_call.get("arguments", {})}}], text
        return [{"text": text}], text

    @staticmethod
    def _logprobs(body: dict, text: str) -> dict | None:
        """What Gemini adds when ``responseLogprobs`` is on: each word of ``text`` (with the space
        before it) is one step, with ``generationConfig.logprobs`` ranked alternatives, the chosen
        one first. The steps' tokens join back into ``text``."""
        config = body.get("generationConfig") or {}
        if config.get("responseLogprobs") is not True:
            return None
        ranked = config.get("logprobs") or 0
        chosen = [{"token": word, "tokenId": n, "logProbability": -0.1 * (n + 1)} for n, word in enumerate(re.findall(r"\s*\S+|\s+", text))]
        tops = [{"candidates": [c, *({"token": f"alt{k}", "tokenId": 10_000 + k, "logProbability": -5.0 - k} for k in range(1, ranked))][:ranked]} for c in chosen]
        return {"topCandidates": tops, "chosenCandidates": chosen, "logProbabilitySum": sum(c["logProbability"] for c in chosen)}

    def completion(self, body: dict, step, ids) -> dict:
        parts, text = self._parts(body, step)
        out = {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": step.stop_reason or "STOP", "index": 0}],
            "modelVersion": "gemini-fake-001",
            "responseId": f"resp-fake{next(ids)}",
        }
        if not step.no_usage:
            out["usageMetadata"] = self._usage(*token_counts(body, text, step), step)
        logprobs = self._logprobs(body, text)
        if logprobs and not step.tool_call:
            out["candidates"][0]["logprobsResult"] = logprobs
        return out

    def stream(self, body: dict, step, ids) -> list[bytes]:
        parts, text = self._parts(body, step)
        prompt, completion = token_counts(body, text, step)
        response_id = f"resp-fake{next(ids)}"
        pieces = [[part] for part in parts] if step.tool_call else [[{"text": p}] for p in split(text, max(1, step.chunks))]
        chunks = []
        for number, piece in enumerate(pieces, 1):
            chunks.append({"candidates": [{"content": {"role": "model", "parts": piece}, "index": 0}],
                           "usageMetadata": self._usage(prompt, max(1, completion * number // len(pieces)), step),
                           "modelVersion": "gemini-fake-001", "responseId": response_id})
            logprobs = self._logprobs(body, piece[0].get("text", "")) if not step.tool_call else None
            if logprobs:
                chunks[-1]["candidates"][0]["logprobsResult"] = logprobs
        chunks.append({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": step.stop_reason or "STOP", "index": 0}],
                       "usageMetadata": self._usage(prompt, completion, step), "modelVersion": "gemini-fake-001", "responseId": response_id})
        if step.no_usage:
            for chunk in chunks:
                del chunk["usageMetadata"]
        frames = [b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks]
        if step.stream_error_after is not None:
            error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
            frames.insert(step.stream_error_after, b"data: " + orjson.dumps(error) + b"\r\n\r\n")
        return frames

    def error(self, status: int, step) -> dict:
        error: dict[str, Any] = {"code": status, "message": f"fake upstream says {status}", "status": GOOGLE_STATUSES.get(status, "INTERNAL")}
        if status == 429 and step.retry_delay:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": step.retry_delay}]
        return {"error": error}

    def embeddings(self, body: dict, step) -> dict:
        return {"embeddings": [{"values": [0.1 * (i + 1), 0.2, 0.3]} for i, _ in enumerate(body["requests"])]}


# ------------------------------------------------------------------ routing


OPENAI, ANTHROPIC, GEMINI = OpenAIWire(), AnthropicWire(), GeminiWire()


def route(path: str, body: Any):
    """``(wire, operation)`` for a request path, operation in chat | stream | embeddings; or None."""
    streaming = isinstance(body, dict) and bool(body.get("stream"))
    if path.endswith("/chat/completions"):
        return OPENAI, "stream" if streaming else "chat"
    if path.endswith("/embeddings"):
        return OPENAI, "embeddings"
    if path.endswith("/v1/messages"):
        return ANTHROPIC, "stream" if streaming else "chat"
    if path.endswith(":generateContent"):
        return GEMINI, "chat"
    if path.endswith(":streamGenerateContent"):
        return GEMINI, "stream"
    if path.endswith(":batchEmbedContents"):
        return GEMINI, "embeddings"
    return None


def understand(path: str, body: Any) -> Seen:
    """What the upstream at ``path`` understood from ``body`` (see ``Seen``)."""
    found = route(path, body)
    if found is None:
        raise ValueError(f"no wire format for {path}")
    return found[0].understand(body)


ids = itertools.count(1)
