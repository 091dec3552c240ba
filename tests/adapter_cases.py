"""Helpers for the adapter unit tests: targets, written fixtures, request bodies."""

from __future__ import annotations

from pathlib import Path

import orjson

from balancer.catalog import Target

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def target(kind: str, *, model: str = "up-model", base_url: str = "http://upstream.test", **extra) -> Target:
    return Target(provider_id=f"{kind}-p", kind=kind, model=model, base_url=base_url, **extra)


def written(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sent(request) -> dict:
    """The JSON body of an ``UpstreamRequest``."""
    return orjson.loads(request.body)


def chat(*messages: dict, **params) -> dict:
    return {"model": "client-model", "messages": list(messages), **params}


def user(content) -> dict:
    return {"role": "user", "content": content}
