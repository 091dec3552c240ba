"""What the issue 11 tests share: one gateway config with a provider of every type, and the
check that an error body is the envelope its route promises.

The providers all point at the fake upstream, each with its own random-looking key secret
(``test_conformance.K``: the gateway redacts every 8-character run of a secret from its logs).
"""

from __future__ import annotations

from typing import Any

from gateway import config, provider
from test_conformance import K

KINDS = ("openai", "custom", "anthropic", "gemini")
EMBEDDING_KINDS = ("openai", "custom", "gemini")  # Anthropic has no embeddings: a 400
CLIENT_KEY = "client-key"
ADMIN_KEY = "admin-secret-key"
CHAT_MODELS = {kind: f"chat-{kind}" for kind in KINDS}
EMBEDDING_MODELS = {kind: f"emb-{kind}" for kind in KINDS}
MODELS = (*CHAT_MODELS.values(), *EMBEDDING_MODELS.values())


def fleet_providers(url: str) -> list[dict]:
    """One provider per type, serving ``chat-<type>`` and ``emb-<type>``."""
    return [
        provider(kind, url + "/v1" if kind == "custom" else url, [K(f"fuzz-{kind}")], type=kind, models=[CHAT_MODELS[kind], EMBEDDING_MODELS[kind]])
        for kind in KINDS
    ]


def fleet_config(url: str, **extra) -> dict:
    return config(fleet_providers(url), **extra)


def assert_error_envelope(body: Any, *, anthropic: bool) -> None:
    """OpenAI's ``{"error": {"message", "type", "param", "code"}}``, or on ``/v1/messages``
    Anthropic's ``{"type": "error", "error": {"type", "message"}}``; messages never empty."""
    assert isinstance(body, dict), body
    error = body.get("error")
    assert isinstance(error, dict), body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert isinstance(error.get("type"), str) and error["type"], body
    if anthropic:
        assert body.get("type") == "error", body
    else:
        assert {"param", "code"} <= error.keys(), body
        assert error["param"] is None or isinstance(error["param"], str), body
        assert error["code"] is None or isinstance(error["code"], str), body
