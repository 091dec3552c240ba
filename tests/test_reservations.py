"""Completion tokens the balancer reserves: the request's cap, the provider's default, none for embeddings."""

from __future__ import annotations

import orjson

from adapters import adapter_for
from app.config import parse_settings
from balancer.catalog import target_for
from balancer.pool import Balancer
from storage.memory import MemoryStore

CONFIG = """
llm_providers:
  - {id: claude, type: anthropic, api_keys: [k], models: [c], default_max_tokens: 700, limits: {max_tokens: 2000}}
  - {id: plain, type: openai, api_keys: [k2], models: [p]}
policy: {default_max_tokens: 1024}
"""


def test_completion_estimate():
    settings = parse_settings(CONFIG)
    balancer = Balancer(settings, MemoryStore())
    claude, plain = (target_for(p, p.all_models[0]) for p in settings.llm_providers)
    assert claude.default_max_tokens == 700
    assert balancer.completion_estimate(claude, None) == 700
    assert balancer.completion_estimate(claude, 5000) == 2000  # capped by limits.max_tokens
    assert balancer.completion_estimate(plain, None) == 1024
    assert balancer.completion_estimate(plain, 0) == 0  # embeddings produce no completion


def test_anthropic_without_a_default_reserves_what_it_sends():
    """Anthropic needs max_tokens; what the adapter sends by default is what the window reserves."""
    settings = parse_settings("llm_providers:\n  - {id: c, type: claude, api_keys: [k], models: [m]}\n  - {id: d, type: claude, api_keys: [k], models: [m], limits: {max_tokens: 900}}\n")
    balancer = Balancer(settings, MemoryStore())
    for provider in settings.llm_providers:
        target = target_for(provider, "m")
        request = adapter_for("anthropic").build_chat({"model": "m", "messages": [{"role": "user", "content": "x"}]}, target, stream=False)
        assert orjson.loads(request.body)["max_tokens"] == balancer.completion_estimate(target, None)
