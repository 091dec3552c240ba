"""What a (provider, model) costs: config prices first, then the genai-prices package, else unknown.

Contract:

- ``Price`` holds USD per token (input, cache read, cache write, output, reasoning) and, when the
  provider bills long prompts at another rate, the higher tiers. ``Price.cost(usage)`` prices one
  answer with the usage details the upstream reported (see its docstring).
- ``PriceBook(settings).quote(provider_id, model) -> PriceQuote(price, source)`` answers, in this
  order of precedence:

  1. ``llm_providers[i].pricing.models.<model>`` when that entry sets any field;
  2. ``llm_providers[i].pricing`` when it sets any field (provider-wide);
  3. genai-prices: ``openai`` looks in its ``openai`` provider, ``anthropic`` in ``anthropic``,
     ``gemini`` in ``google`` (the Gemini API), without the package's cross-provider fallbacks;
     ``custom`` searches every provider of the package by model name and takes the price only
     when every provider that lists a per-token price for that name gives the same one (a
     self-hosted server is often free: a config price is how its operator says what it costs);
  4. unknown: ``price is None``.

  A config level that sets some fields counts as a whole price: an unset ``input_token_cost`` or
  ``output_token_cost`` is 0, an unset ``cached_input_token_cost`` bills cache reads at the input
  rate. Config values are USD per 1K tokens; ``Price`` is per token.
- Quotes are resolved once per (provider id, model) and kept (at most ``MAX_REMEMBERED`` pairs,
  oldest forgotten first, so clients sending made-up ``provider:model`` names cannot grow memory).
- ``PriceBook.unpriced_once(provider_id, model)`` is True the first time it is asked about a pair
  whose price is unknown, so the app can log once and count a metric.

genai-prices never reaches the network from here. The package fetches newer prices only when an
``UpdatePrices`` is started (by code, or its CLI's ``--update-prices``), and its ``calc_price`` then
reads the fetched snapshot. This module starts none and never calls ``calc_price``: it reads the
price data bundled with the installed package (``genai_prices.data.providers``) directly, so even
an ``UpdatePrices`` started by other code in the process cannot change or fetch our prices. The
package is imported on the first genai-prices lookup (about 0.3 s and 10 MB per process).

What genai-prices knows but is not used: per-modality token prices (audio, image; our ``Usage``
does not split tokens by modality, so those tokens bill at the text rate), one-hour cache writes,
per-request and per-search fees, service-tier and batch variants (standard prices only). Prices
that change on a date are read as of when the pair is first quoted. Models priced only in other
units (characters, audio hours) are unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.base import Usage

MAX_REMEMBERED = 4096
UNKNOWN = "unknown"

# coo-llm provider type -> genai-prices provider id (``custom`` has none: it searches them all).
GENAI_PROVIDER_IDS = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}

# genai-prices price keys (USD per million tokens) -> ``Price`` fields.
_GENAI_KEYS = {
    "input_mtok": "input",
    "cache_read_mtok": "cached_input",
    "cache_write_mtok": "cache_write",
    "output_mtok": "output",
    "output_reasoning_mtok": "reasoning",
}
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token. ``None`` for a detail means it bills at the base rate: cache reads and cache
    writes at ``input``, reasoning at ``output``.

    ``tiers`` are ``(start, price)`` pairs, ascending: a request whose prompt has more than
    ``start`` tokens pays that tier's price for all its tokens (the tier prices have no tiers).
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    tiers: tuple[tuple[int, "Price"], ...] = ()

    def for_prompt(self, prompt_tokens: int) -> "Price":
        """The price a request with ``prompt_tokens`` prompt tokens pays (its tier, else this)."""
        for start, tier in reversed(self.tiers):
            if prompt_tokens > start:
                return tier
        return self

    def cost(self, usage: "Usage") -> float:
        """USD for one answer.

        ``usage.prompt_tokens`` counts every input token, cache reads (``cached_tokens``) and cache
        writes (``cache_write_tokens``) included; ``completion_tokens`` counts reasoning tokens
        (``reasoning_tokens``) included, as OpenAI reports them. A detail larger than its total is
        capped at the total. The tier is chosen by ``prompt_tokens``.
        """
        return self.tokens_cost(
            usage.prompt_tokens,
            usage.completion_tokens,
            cached=usage.cached_tokens,
            cache_written=usage.cache_write_tokens,
            reasoning=usage.reasoning_tokens,
        )

    def tokens_cost(self, prompt: int, completion: int, *, cached: int = 0, cache_written: int = 0, reasoning: int = 0) -> float:
        """``cost`` from plain counts (same meaning as the ``Usage`` fields)."""
        price = self.for_prompt(prompt) if self.tiers else self
        if not (cached or cache_written or reasoning):  # the common case, on every request
            return prompt * price.input + completion * price.output
        cached = cached if cached < prompt else prompt  # conditionals, not min(): this runs per request
        left = prompt - cached
        cache_written = cache_written if cache_written < left else left
        reasoning = reasoning if reasoning < completion else completion
        read_rate = price.input if price.cached_input is None else price.cached_input
        write_rate = price.input if price.cache_write is None else price.cache_write
        reasoning_rate = price.output if price.reasoning is None else price.reasoning
        return (
            (prompt - cached - cache_written) * price.input
            + cached * read_rate
            + cache_written * write_rate
            + (completion - reasoning) * price.output
            + reasoning * reasoning_rate
        )


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """A price and where it came from, e.g. ``config: llm_providers[0].pricing``,
    ``genai-prices (provider openai, model gpt-4o)`` or ``unknown``."""

    price: Price | None
    source: str


def config_pricing_to_price(fields: Any) -> Price | None:
    """A ``Price`` from config fields in USD per 1K tokens, or None when no field is set."""
    values = (fields.input_token_cost, fields.cached_input_token_cost, fields.output_token_cost)
    if all(value is None for value in values):
        return None
    return Price(
        input=(fields.input_token_cost or 0.0) / 1000.0,
        output=(fields.output_token_cost or 0.0) / 1000.0,
        cached_input=None if fields.cached_input_token_cost is None else fields.cached_input_token_cost / 1000.0,
    )


def genai_model_price_to_price(model_price: Any) -> Price | None:
    """A ``Price`` from a genai-prices ``ModelPrice``; None when it is priced in no token unit we
    count. A model listed with no price at all is free (genai-prices prices it at 0 too)."""
    from genai_prices.types import TieredPrices

    listed = {key: value for key, value in vars(model_price).items() if value is not None and not key.startswith("_")}
    ours = {_GENAI_KEYS[key]: value for key, value in listed.items() if key in _GENAI_KEYS}
    if not ours and listed:
        return None
    starts = sorted({tier.start for value in ours.values() if isinstance(value, TieredPrices) for tier in value.tiers})

    def rates(above: int | None) -> dict[str, float]:
        """Per-token rates for a prompt of more than ``above`` tokens (None: the base rates)."""
        out = {}
        for name, value in ours.items():
            if isinstance(value, TieredPrices):
                chosen = value.base
                for tier in value.tiers:  # ascending: the last one started at or below ``above`` wins
                    if above is not None and tier.start <= above:
                        chosen = tier.price
                value = chosen
            out[name] = float(value / _MILLION)
        return out

    def price(found: dict[str, float], tiers: tuple = ()) -> Price:
        return Price(
            input=found.get("input", 0.0),
            output=found.get("output", 0.0),
            cached_input=found.get("cached_input"),
            cache_write=found.get("cache_write"),
            reasoning=found.get("reasoning"),
            tiers=tiers,
        )

    return price(rates(None), tuple((start, price(rates(start))) for start in starts))


@lru_cache(maxsize=1)
def _genai_providers() -> dict[str, Any]:
    """genai-prices' bundled providers by id (the data shipped in the package, never a fetched one)."""
    from genai_prices.data import providers

    return {provider.id: provider for provider in providers}


def genai_prices_version() -> str:
    from importlib.metadata import version

    return version("genai-prices")


@lru_cache(maxsize=MAX_REMEMBERED)
def genai_quote(kind: str, model: str) -> PriceQuote:
    """What genai-prices says ``model`` costs on a provider of type ``kind`` (see the module docstring)."""
    providers = _genai_providers()
    now = datetime.now(timezone.utc)
    genai_id = GENAI_PROVIDER_IDS.get(kind)
    if genai_id is not None:
        provider = providers.get(genai_id)
        info = provider.find_model(model) if provider is not None else None
        if info is None:
            return PriceQuote(None, UNKNOWN)
        price = genai_model_price_to_price(info.get_prices(now))
        if price is None:
            return PriceQuote(None, f"{UNKNOWN} (genai-prices prices {genai_id} {info.id} in units other than tokens)")
        return PriceQuote(price, f"genai-prices (provider {genai_id}, model {info.id})")
    if kind != "custom":
        return PriceQuote(None, UNKNOWN)
    found: dict[Price, list[tuple[str, str]]] = {}
    for provider in providers.values():
        info = provider.find_model(model)
        if info is None:
            continue
        model_price = info.get_prices(now)
        if not any(getattr(model_price, key, None) is not None for key in _GENAI_KEYS):
            continue  # free or not per token here (a subscription, a per-request fee): says nothing of a self-hosted copy
        price = genai_model_price_to_price(model_price)
        found.setdefault(price, []).append((provider.id, info.id))
    if len(found) == 1:
        (price, where), = found.items()
        source = f"genai-prices (provider {where[0][0]}, model {where[0][1]}"
        if len(where) > 1:
            source += "; same price at " + ", ".join(provider_id for provider_id, _ in where[1:])
        return PriceQuote(price, source + ")")
    if found:
        at = sorted(provider_id for where in found.values() for provider_id, _ in where)
        shown = ", ".join(at[:3]) + (", ..." if len(at) > 3 else "")
        return PriceQuote(None, f"{UNKNOWN} (genai-prices has {len(found)} different prices for this name: {shown})")
    return PriceQuote(None, UNKNOWN)


class PriceBook:
    """Built once from ``Settings``; ``quote`` is a dictionary hit after a pair's first lookup."""

    def __init__(self, settings: Any) -> None:
        self._providers = {provider.id: (index, provider) for index, provider in enumerate(settings.llm_providers)}
        self._quotes: dict[tuple[str, str], PriceQuote] = {}
        self._unpriced_seen: set[tuple[str, str]] = set()

    def quote(self, provider: str, model: str) -> PriceQuote:
        """The price of ``model`` on the provider with id ``provider`` (see the module docstring)."""
        key = (provider, model)
        found = self._quotes.get(key)
        if found is None:
            found = self._resolve(provider, model)
            if len(self._quotes) >= MAX_REMEMBERED:
                self._quotes.pop(next(iter(self._quotes)))
            self._quotes[key] = found
        return found

    def unpriced_once(self, provider: str, model: str) -> bool:
        """True the first time this is asked about a pair with no known price, else False. At most
        ``MAX_REMEMBERED`` pairs are remembered; past that it answers False (no flood of warnings)."""
        key = (provider, model)
        if key in self._unpriced_seen or len(self._unpriced_seen) >= MAX_REMEMBERED:
            return False
        if self.quote(provider, model).price is not None:
            return False
        self._unpriced_seen.add(key)
        return True

    def _resolve(self, provider_id: str, model: str) -> PriceQuote:
        entry = self._providers.get(provider_id)
        if entry is None:
            return PriceQuote(None, UNKNOWN)
        index, provider = entry
        per_model = provider.pricing.models.get(model)
        if per_model is not None and (price := config_pricing_to_price(per_model)) is not None:
            return PriceQuote(price, f"config: llm_providers[{index}].pricing.models.{model}")
        if (price := config_pricing_to_price(provider.pricing)) is not None:
            return PriceQuote(price, f"config: llm_providers[{index}].pricing")
        return genai_quote(provider.kind, model)
