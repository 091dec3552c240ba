"""The rows of the benchmark table: what each measures, and the gateway config it runs with.

Every gateway row runs as the issue asks: auth on (a client key), metrics on, one JSON request
log line per request, balancing (the default ``hybrid`` policy) over 2 keys of one provider,
limits far above the load so no request is refused. Rows differ only in storage, workers,
streaming and provider type.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson

from bench import mock

CLIENT_KEY = "bench-client-key"
PROVIDER_KEYS = ["sk-bench-key-one", "sk-bench-key-two"]
CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    kind: str  # "direct" (the mock), "bare-proxy" or "gateway"
    upstream: str = mock.OPENAI  # the mock's path prefix serving this row
    stream: bool = False
    provider_type: str = "openai"
    storage: str = "memory"
    workers: int = 1
    baseline: str = "direct"  # the row whose latency is subtracted for "added" figures

    @property
    def model(self) -> str:
        return "claude-bench" if self.provider_type == "anthropic" else "gpt-bench"

    @property
    def path(self) -> str:
        """The path the load generator requests."""
        return self.upstream + CHAT_PATH if self.kind == "direct" else CHAT_PATH

    def body(self) -> bytes:
        return chat_body(self.model, stream=self.stream)

    def check_answer(self, status: int, body: bytes) -> str | None:
        """What is wrong with one answer to this row's request, or None if it is a proper one."""
        if not 200 <= status < 300:
            return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
        if self.stream:
            if not body.rstrip().endswith(b"data: [DONE]"):
                return "the stream does not end with data: [DONE]"
            if b'"delta"' not in body:
                return "the stream has no chat.completion.chunk deltas"
            if b'"usage"' not in body:
                return "the stream has no usage chunk although include_usage was asked"
            return None
        try:
            data = orjson.loads(body)
            content = data["choices"][0]["message"]["content"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return f"not a chat.completion: {body[:200].decode('utf-8', 'replace')}"
        return None if isinstance(content, str) and content else "the completion has no content"


ROWS: tuple[Row, ...] = (
    Row("direct", "direct (nginx mock)", "direct"),
    Row("direct-stream", "direct, stream", "direct", upstream=mock.OPENAI_STREAM, stream=True, baseline="direct-stream"),
    Row("bare-proxy", "bare-proxy (Sanic + aiohttp)", "bare-proxy"),
    Row("memory-1w", "coo-llm memory, 1 worker", "gateway"),
    Row("redis-1w", "coo-llm Redis, 1 worker", "gateway", storage="redis"),
    Row("redis-2w", "coo-llm Redis, 2 workers", "gateway", storage="redis", workers=2),
    Row("stream", "coo-llm streaming", "gateway", upstream=mock.OPENAI_STREAM, stream=True, baseline="direct-stream"),
    Row("anthropic", "coo-llm → Anthropic", "gateway", upstream=mock.ANTHROPIC, provider_type="anthropic"),
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
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one short paragraph."},
            {"role": "user", "content": "Summarise the benefits of connection pooling for an HTTP proxy in two sentences."},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


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
