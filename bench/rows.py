"""The rows of the benchmark table: what each measures, and the gateway config it runs with.

Every gateway row runs as the issue asks: auth on (a client key), metrics on, one JSON request
log line per request, balancing (the default ``hybrid`` policy) over 2 keys of one provider,
limits far above the load so no request is refused. Rows differ only in storage, workers,
streaming, provider type, the API the client speaks (chat, Responses, Messages) and whether the
row runs on the pinned CPU split (``Row.pinned``).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import orjson

from bench import mock

CLIENT_KEY = "bench-client-key"
PROVIDER_KEYS = ["sk-bench-key-one", "sk-bench-key-two"]
CHAT_PATH = "/v1/chat/completions"
# The path each client API is requested at, on the gateway.
API_PATHS = {"chat": CHAT_PATH, "responses": "/v1/responses", "messages": "/v1/messages"}
ANTHROPIC_VERSION = "2023-06-01"

SYSTEM_PROMPT = "You are a concise assistant. Answer in one short paragraph."
USER_PROMPT = "Summarise the benefits of connection pooling for an HTTP proxy in two sentences."

# TensorZero: an HTTP gateway the bench can compare against, if one is running (see README).
TENSORZERO_URL_ENV = "TENSORZERO_URL"
TENSORZERO_MODEL_ENV = "TENSORZERO_MODEL"
TENSORZERO_PATH = "/openai/v1/chat/completions"  # its OpenAI-compatible endpoint
TENSORZERO_MISSING = (
    "not available on this machine: no TensorZero HTTP gateway here (only PyPI, Debian and npm are reachable, and "
    f"PyPI's tensorzero embeds the gateway in-process, with no HTTP server); {TENSORZERO_URL_ENV} names one to measure (README)"
)


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    kind: str  # "direct" (the mock), "bare-proxy", "gateway" or "external" (a gateway at a URL from the environment)
    upstream: str = mock.OPENAI  # the mock's path prefix serving this row
    stream: bool = False
    provider_type: str = "openai"
    storage: str = "memory"
    workers: int = 1
    baseline: str = "direct"  # the row whose latency is subtracted for "added" figures
    api: str = "chat"  # what the client speaks: "chat", "responses" or "messages" (API_PATHS)
    # True: the process under test on CPU 0, the load on CPU 1. False: nothing pinned, every
    # process (gateway, mock, wrk, Redis) may run on every CPU, as a 2-core server would run it.
    pinned: bool = True
    url_env: str = ""  # external rows: the environment variable holding the gateway's URL

    @property
    def model(self) -> str:
        if self.kind == "external":
            return os.environ.get(TENSORZERO_MODEL_ENV) or "tensorzero::model_name::gpt-bench"
        return "claude-bench" if self.provider_type == "anthropic" else "gpt-bench"

    @property
    def path(self) -> str:
        """The path the load generator requests."""
        if self.kind == "direct":
            return self.upstream + CHAT_PATH
        if self.kind == "external":
            return TENSORZERO_PATH
        return API_PATHS[self.api]

    def body(self) -> bytes:
        if self.api == "responses":
            return responses_body(self.model)
        if self.api == "messages":
            return messages_body(self.model)
        return chat_body(self.model, stream=self.stream)

    def headers(self) -> dict[str, str]:
        """The request headers: the client key as each API's SDK sends it."""
        if self.api == "messages":
            return {"Content-Type": "application/json", "x-api-key": CLIENT_KEY, "anthropic-version": ANTHROPIC_VERSION}
        return request_headers()

    def check_answer(self, status: int, body: bytes) -> str | None:
        """What is wrong with one answer to this row's request, or None if it is a proper one:
        the API's own shape, carrying the mock's text (or, for streams, its deltas and usage)."""
        if not 200 <= status < 300:
            return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
        if self.stream:
            return _stream_problem(body)
        try:
            data = orjson.loads(body)
            text, shape = _ANSWER_TEXT[self.api](data)
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, StopIteration):
            return f"not {_ANSWER_NAME[self.api]}: {body[:200].decode('utf-8', 'replace')}"
        if shape:
            return shape
        if text != mock.TEXT:
            return f"the {_ANSWER_NAME[self.api]} does not carry the upstream's text: {str(text)[:80]!r}"
        return None


def _stream_problem(body: bytes) -> str | None:
    if not body.rstrip().endswith(b"data: [DONE]"):
        return "the stream does not end with data: [DONE]"
    if b'"delta"' not in body:
        return "the stream has no chat.completion.chunk deltas"
    if b'"usage"' not in body:
        return "the stream has no usage chunk although include_usage was asked"
    return None


def _chat_text(data: dict) -> tuple[str, str | None]:
    return data["choices"][0]["message"]["content"], None if data.get("object") == "chat.completion" else "object is not chat.completion"


def _response_text(data: dict) -> tuple[str, str | None]:
    if data.get("object") != "response" or data.get("status") != "completed":
        return "", f"object {data.get('object')!r} with status {data.get('status')!r}, not a completed response"
    message = next(item for item in data["output"] if item["type"] == "message")
    return "".join(part["text"] for part in message["content"] if part["type"] == "output_text"), None


def _message_text(data: dict) -> tuple[str, str | None]:
    if data.get("type") != "message" or not (data.get("usage") or {}).get("output_tokens"):
        return "", f"type {data.get('type')!r} without output_tokens, not an Anthropic message"
    return "".join(block["text"] for block in data["content"] if block["type"] == "text"), None


_ANSWER_TEXT = {"chat": _chat_text, "responses": _response_text, "messages": _message_text}
_ANSWER_NAME = {"chat": "a chat.completion", "responses": "a response", "messages": "a message"}


ROWS: tuple[Row, ...] = (
    Row("direct", "direct (nginx mock)", "direct"),
    Row("direct-stream", "direct, stream", "direct", upstream=mock.OPENAI_STREAM, stream=True, baseline="direct-stream"),
    Row("bare-proxy", "bare-proxy (Sanic + aiohttp)", "bare-proxy"),
    Row(
        "bare-proxy-stream", "bare-proxy, stream (relayed per read)", "bare-proxy",
        upstream=mock.OPENAI_STREAM, stream=True, baseline="direct-stream",
    ),
    Row("tensorzero", "TensorZero gateway", "external", url_env=TENSORZERO_URL_ENV),
    Row("memory-1w", "coo-llm memory, 1 worker", "gateway"),
    Row("redis-1w", "coo-llm Redis, 1 worker", "gateway", storage="redis"),
    Row("redis-1w-unpinned", "coo-llm Redis, 1 worker, unpinned", "gateway", storage="redis", pinned=False),
    Row("redis-2w", "coo-llm Redis, 2 workers, unpinned", "gateway", storage="redis", workers=2, pinned=False),
    Row("stream", "coo-llm streaming", "gateway", upstream=mock.OPENAI_STREAM, stream=True, baseline="direct-stream"),
    Row("responses", "coo-llm /v1/responses → OpenAI (chat hub)", "gateway", api="responses"),
    Row("anthropic", "coo-llm → Anthropic", "gateway", upstream=mock.ANTHROPIC, provider_type="anthropic"),
    Row("messages", "coo-llm /v1/messages → Anthropic (native)", "gateway", api="messages", upstream=mock.ANTHROPIC, provider_type="anthropic"),
    Row(
        "anthropic-stream", "coo-llm → Anthropic, stream", "gateway",
        upstream=mock.ANTHROPIC_STREAM, stream=True, provider_type="anthropic", baseline="direct-stream",
    ),
)
BY_ID = {row.id: row for row in ROWS}


def chat_body(model: str, *, stream: bool) -> bytes:
    """A realistic small chat request: a system prompt, one user turn, a token cap."""
    body = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_PROMPT}],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def responses_body(model: str) -> bytes:
    """The same request as ``chat_body`` in the Responses API. ``store: false``: the chat row keeps
    nothing either, so the two rows differ only in the translation (a stored response is one more
    runtime-store write, and a memory store would grow by every response of the run)."""
    return orjson.dumps(
        {"model": model, "instructions": SYSTEM_PROMPT, "input": USER_PROMPT, "max_output_tokens": 64, "temperature": 0.2, "store": False}
    )


def messages_body(model: str) -> bytes:
    """The same request as ``chat_body`` in the Anthropic Messages API."""
    return orjson.dumps(
        {"model": model, "system": SYSTEM_PROMPT, "messages": [{"role": "user", "content": USER_PROMPT}], "max_tokens": 64, "temperature": 0.2}
    )


def request_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {CLIENT_KEY}"}


def gateway_config(row: Row, *, mock_url: str, redis_url: str | None) -> dict:
    runtime = {"type": "redis", "url": redis_url} if row.storage == "redis" else {"type": "memory"}
    return {
        "version": "1.0",
        "server": {"listen": ":2906", "admin_api_key": "bench-admin-key", "max_body_mb": 10},
        "logging": {"level": "INFO", "json": True},
        "llm_providers": [
            {
                "id": "mock",
                "type": row.provider_type,
                "api_keys": list(PROVIDER_KEYS),
                "base_url": mock_url + row.upstream,
                "models": [row.model],
                "pricing": {"input_token_cost": 0.00015, "output_token_cost": 0.0006},
                "limits": {"req_per_min": 100_000_000, "tokens_per_min": 100_000_000_000},
            }
        ],
        "api_keys": [{"key": CLIENT_KEY, "allowed_providers": ["*"], "description": "benchmark client"}],
        "policy": {"algorithm": "hybrid", "priority": "balanced", "retry": {"max_attempts": 3, "timeout": "30s"}},
        "storage": {"runtime": runtime},
    }


def missing_feature(config: dict) -> str | None:
    """Why this build cannot serve ``config`` (a provider type or storage backend it lacks), or None.

    Asks the same factories the gateway uses at start-up, which raise ``NotImplementedError`` for
    what is not built yet, so a row starts working as soon as its feature lands.
    """
    from adapters import adapter_for
    from app.config import settings_from_data
    from storage import open_store

    settings = settings_from_data(config)
    for provider in settings.llm_providers:
        try:
            adapter_for(provider.kind)
        except NotImplementedError as error:
            return str(error)

    async def probe_store() -> None:
        store = open_store(settings.storage.runtime)
        await store.close()

    try:
        asyncio.run(probe_store())
    except NotImplementedError as error:
        return str(error)
    return None
