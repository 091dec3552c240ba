"""OpenAI request parameters as data: one table per provider, one engine applying every table.

A table maps each OpenAI chat parameter to a ``Param`` saying what happens to it:

- ``mapped``: the value goes to ``to`` (a dotted path in the upstream body), through ``transform``.
  A ``Param`` without ``to`` is mapped (or emulated) by the adapter's own code (messages, tools...).
- ``emulated``: the provider has no such field; the gateway gets the same effect another way.
- ``rejected``: the provider cannot honour it, so the client gets a 400 naming the parameter,
  unless the value is one of ``accepts`` (values that mean the OpenAI default, e.g. ``n: 1``).
- ``ignored``: accepted and not sent, because it cannot change the answer (a caching hint).

``apply_params`` walks the client's request (after the adapter removed the provider's
``drop_params``): explicit ``null`` means "the default" and is skipped, and a parameter missing
from the table is rejected, never dropped silently. ``docs/provider-parameters.md`` is written
from these tables (a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Mapping

from adapters.base import AdapterError


class Handling(str, Enum):
    MAPPED = "mapped"
    EMULATED = "emulated"
    REJECTED = "rejected"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Param:
    """What one OpenAI parameter becomes for one provider (see the module docstring)."""

    to: str | None = None
    transform: Callable[[Any], Any] | None = None
    handling: Handling = Handling.MAPPED
    note: str = ""
    accepts: tuple = ()


def by_code(note: str, handling: Handling = Handling.MAPPED) -> Param:
    """Translated by the adapter's code rather than the table engine."""
    return Param(None, None, handling, note)


def reject(note: str, *accepts: Any) -> Param:
    return Param(None, None, Handling.REJECTED, note, accepts)


def ignore(note: str) -> Param:
    return Param(None, None, Handling.IGNORED, note)


def as_list(value: Any) -> list:
    """``stop: "x"`` and ``stop: ["x"]`` both become a list."""
    return [value] if isinstance(value, str) else list(value)


def set_path(body: dict, path: str, value: Any) -> None:
    """``set_path(b, "generationConfig.topP", 1)`` -> ``b["generationConfig"]["topP"] = 1``."""
    *parents, leaf = path.split(".")
    node = body
    for name in parents:
        node = node.setdefault(name, {})
    node[leaf] = value


def apply_params(chat: Mapping[str, Any], table: Mapping[str, Param], *, provider: str) -> dict:
    """The upstream body fields the table maps from ``chat``; raises ``AdapterError`` for the rest."""
    body: dict = {}
    for name, value in chat.items():
        if value is None:
            continue
        rule = table.get(name)
        if rule is None:
            raise AdapterError(
                f"'{name}' is not a parameter the {provider} provider supports "
                "(the operator can list it in the provider's drop_params to have it dropped).",
                param=name,
            )
        if rule.handling is Handling.REJECTED:
            if any(value == ok and type(value) is type(ok) for ok in rule.accepts):
                continue
            raise AdapterError(f"The {provider} provider cannot honour '{name}': {rule.note}.", param=name)
        if rule.to is None or rule.handling is Handling.IGNORED:
            continue
        set_path(body, rule.to, rule.transform(value) if rule.transform else value)
    return body


# OpenAI features no other provider has. Tables start from this and override what they can do.
OPENAI_ONLY: dict[str, Param] = {
    "logprobs": reject("it returns no token log probabilities", False),
    "top_logprobs": reject("it returns no token log probabilities", 0),
    "logit_bias": reject("it has no token biasing", {}),
    "audio": reject("it has no audio output"),
    "modalities": reject("it answers with text only", ["text"]),
    "prediction": reject("it has no predicted outputs"),
    "web_search_options": reject("web search is an OpenAI tool"),
    "verbosity": reject("it has no verbosity setting"),
    "moderation": reject("it has no moderation option"),
    "functions": reject("the deprecated 'functions' is not translated; send 'tools'"),
    "function_call": reject("the deprecated 'function_call' is not translated; send 'tool_choice'"),
    "store": reject("it does not store completions", False),
    "metadata": reject("it keeps no stored-completion metadata", {}),
    "service_tier": reject("OpenAI service tiers do not apply", "auto", "default"),
    "prompt_cache_key": ignore("a caching hint; it cannot change the answer"),
    "prompt_cache_retention": ignore("a caching hint; it cannot change the answer"),
    "prompt_cache_options": ignore("a caching hint; it cannot change the answer"),
    "model": by_code("the target's upstream model"),
    "stream": by_code("streaming endpoint or flag"),
    "stream_options": by_code("include_usage: the gateway sends the usage chunk itself", Handling.EMULATED),
}
