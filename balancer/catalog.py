"""The model catalog: which upstream targets can serve a requested model name.

``resolve(model, allows)`` returns targets in preference order:

1. An alias (``model_aliases``) gives its target, or its ordered fallback group; ``Target.rank``
   is the position in the group, and a later rank is used only when earlier ones cannot serve.
2. ``provider_id:model`` gives that provider with that upstream model (listed or not).
3. A bare model name gives every provider that lists it, all at rank 0, so the strategy orders
   them.

Then targets whose provider the caller may not use are removed. Unknown model:
``UnknownModel``; known but every provider forbidden: ``ForbiddenModel``.

Each target carries its ``price`` (``balancer.pricing``), resolved when the target is built;
``Target.cost(usage)`` is None when that price is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from balancer.pricing import Price, PriceBook

if TYPE_CHECKING:
    from adapters.base import Usage


class UnknownModel(LookupError):
    pass


class ForbiddenModel(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    """One (provider, upstream model) pair a request can be sent to."""

    provider_id: str
    kind: str  # openai | anthropic | gemini | custom
    model: str
    base_url: str
    price: Price | None = None  # None: unknown
    req_per_min: int | None = None
    tokens_per_min: int | None = None
    max_tokens: int | None = None
    drop_params: tuple[str, ...] = ()
    timeout: float | None = None
    rank: int = 0
    listed: bool = True  # False for a ``provider:model`` the config does not list (any name a client sends)
    default_max_tokens: int | None = None  # sent when the client gives none (providers that need one)
    native_responses: bool = False  # speaks /responses itself (``responses_api: native``)

    def cost(self, usage: "Usage") -> float | None:
        """USD for ``usage`` at this target's price (``Price.cost``); None when the price is unknown."""
        return None if self.price is None else self.price.cost(usage)


def target_for(provider, model: str, rank: int = 0, *, listed: bool = True, price: Price | None = None) -> Target:
    """Build a ``Target`` from a ``ProviderConfig`` (``price`` from ``PriceBook.quote``)."""
    return Target(
        provider_id=provider.id,
        kind=provider.kind,
        model=model,
        base_url=provider.effective_base_url,
        price=price,
        req_per_min=provider.limits.req_per_min,
        tokens_per_min=provider.limits.tokens_per_min,
        max_tokens=provider.limits.max_tokens,
        drop_params=tuple(provider.drop_params),
        timeout=provider.timeout,
        rank=rank,
        listed=listed,
        default_max_tokens=provider.effective_default_max_tokens,
        native_responses=provider.responses_api == "native",
    )


class Catalog:
    """Built once from ``Settings``; lookups are dictionary hits."""

    def __init__(self, settings, *, prices: PriceBook | None = None) -> None:
        self.prices = prices or PriceBook(settings)
        self._providers = {p.id: p for p in settings.llm_providers}
        self._aliases: dict[str, tuple[Target, ...]] = {}
        for alias, specs in settings.model_aliases.items():
            targets = []
            for rank, spec in enumerate(specs):
                provider_id, _, model = spec.partition(":")
                targets.append(self._target(self._providers[provider_id], model, rank))
            self._aliases[alias] = tuple(targets)
        self._listed: dict[str, tuple[Target, ...]] = {}
        for provider in settings.llm_providers:
            for model in provider.all_models:
                self._listed[model] = self._listed.get(model, ()) + (self._target(provider, model),)
        self._qualified: dict[str, Target] = {}

    def resolve(self, model: str, allows: Callable[[str], bool]) -> list[Target]:
        targets = self._aliases.get(model) or self._listed.get(model)
        if targets is None:
            targets = self._qualified_target(model)
        if not targets:
            raise UnknownModel(model)
        allowed = [t for t in targets if allows(t.provider_id)]
        if not allowed:
            raise ForbiddenModel(model)
        return allowed

    def _target(self, provider, model: str, rank: int = 0, *, listed: bool = True) -> Target:
        return target_for(provider, model, rank, listed=listed, price=self.prices.quote(provider.id, model).price)

    def _qualified_target(self, model: str) -> tuple[Target, ...]:
        cached = self._qualified.get(model)
        if cached is not None:
            return (cached,)
        provider_id, sep, upstream_model = model.partition(":")
        provider = self._providers.get(provider_id) if sep and upstream_model else None
        if provider is None:
            return ()
        target = self._target(provider, upstream_model, listed=upstream_model in provider.all_models)
        if upstream_model in provider.all_models:  # only listed models are worth remembering
            self._qualified[model] = target
        return (target,)

    def model_ids(self, allows: Callable[[str], bool]) -> list[tuple[str, str]]:
        """``(id, owned_by)`` for ``/v1/models``: aliases, listed models, then ``provider:model`` ids."""
        out: dict[str, str] = {}
        for alias, targets in self._aliases.items():
            if any(allows(t.provider_id) for t in targets):
                out[alias] = "coo-llm"
        for model, targets in self._listed.items():
            owners = [t.provider_id for t in targets if allows(t.provider_id)]
            if owners and model not in out:
                out[model] = owners[0]
        for provider in self._providers.values():
            if allows(provider.id):
                for model in provider.all_models:
                    out.setdefault(f"{provider.id}:{model}", provider.id)
        return list(out.items())

    def providers(self):
        return list(self._providers.values())
