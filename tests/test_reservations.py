"""Completion tokens the balancer reserves: the request's cap, the provider's default, none for embeddings."""

from __future__ import annotations

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
