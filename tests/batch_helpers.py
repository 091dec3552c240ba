"""Writing batch input files and reading batch results, for the batch tests."""

from __future__ import annotations

import time
from collections import Counter

import orjson


def chat_line(custom_id: str, model: str, *, text: str | None = None, **body) -> dict:
    """One chat request line; its prompt names its custom_id, so the fake upstream's log says which line it was."""
    content = text if text is not None else f"line {custom_id}"
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": {"model": model, "messages": [{"role": "user", "content": content}], **body}}


def jsonl(lines: list) -> bytes:
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)


def read_jsonl(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def wait_for_batch(client, batch_id: str, statuses: tuple[str, ...], timeout: float):
    """Poll until the batch reaches one of ``statuses``; the batch object then."""
    deadline = time.time() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        if time.time() > deadline:
            raise AssertionError(f"batch still {batch.status} after {timeout}s: {batch.request_counts}")
        time.sleep(0.25)


def file_lines(client, file_id: str | None) -> list[dict]:
    return [] if file_id is None else read_jsonl(client.files.content(file_id).content)


def upstream_calls_per_line(upstream, prefix: str = "line ") -> Counter:
    """How many times the fake upstream received each line's prompt (``chat_line``'s text)."""
    seen: Counter = Counter()
    for call in list(upstream.requests):
        body = call.body if isinstance(call.body, dict) else {}
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, str) and content.startswith(prefix):
                seen[content[len(prefix):]] += 1
    return seen
