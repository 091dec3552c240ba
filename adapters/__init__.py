"""Pure translators between OpenAI shapes and each provider's wire format (see ``adapters.base``)."""

from __future__ import annotations

from adapters.anthropic import AnthropicAdapter
from adapters.base import Adapter, AdapterError, ChatResult, SSEEvent, UpstreamError, UpstreamRequest, Usage
from adapters.gemini import GeminiAdapter
from adapters.openai import OpenAIAdapter

_ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter("openai"),
    "custom": OpenAIAdapter("custom"),
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
}


def adapter_for(kind: str) -> Adapter:
    """The adapter for a provider type (``claude`` already folded into ``anthropic``)."""
    try:
        return _ADAPTERS[kind]
    except KeyError:
        raise NotImplementedError(f"provider type {kind!r} has no adapter in this build") from None


__all__ = [
    "Adapter",
    "AdapterError",
    "ChatResult",
    "SSEEvent",
    "UpstreamError",
    "UpstreamRequest",
    "Usage",
    "adapter_for",
]
