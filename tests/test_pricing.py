"""Prices: config precedence and units, genai-prices lookups per provider type, cost arithmetic
(cache reads and writes, reasoning, tiers), unknown prices, no network, and ``coo-llm prices``.

genai-prices values are never written here: each expectation is read through the package's own
``calc_price``, so a package update changes both sides, while our mapping and units stay checked.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices.data_snapshot import DataSnapshot, set_custom_snapshot

from adapters.base import Usage
from app.config import ConfigError, settings_from_data
from balancer.catalog import Catalog
from balancer.pricing import Price, PriceBook, genai_quote

ROOT = Path(__file__).resolve().parent.parent


def settings_with(*providers: dict, **top):
    return settings_from_data({"llm_providers": list(providers), **top})


def openai_provider(**extra) -> dict:
    return {"id": "oa", "type": "openai", "api_keys": ["k"], "models": ["gpt-4o", "gpt-4o-mini"], **extra}


def package_cost(model: str, provider_id: str, *, prompt: int, completion: int, cached: int = 0) -> float:
    """What genai-prices itself charges for this usage (its public ``calc_price``)."""
    usage = GenaiUsage(input_tokens=prompt, cache_read_tokens=cached, output_tokens=completion)
    return float(genai_prices.calc_price(usage, model, provider_id=provider_id).total_price)


def package_model_id(model: str, provider_id: str) -> str:
    return genai_prices.calc_price(GenaiUsage(input_tokens=1), model, provider_id=provider_id).model.id


# --- config ---------------------------------------------------------------------------------------


def test_per_model_config_then_provider_config_then_genai_prices():
    settings = settings_with(
        {"id": "free", "type": "custom", "base_url": "http://127.0.0.1:9", "models": ["llama"]},
        openai_provider(
            pricing={
                "input_token_cost": 0.001,
                "output_token_cost": 0.002,
                "models": {"gpt-4o": {"input_token_cost": 0.004, "cached_input_token_cost": 0.001, "output_token_cost": 0.016}},
            }
        ),
        {"id": "plain", "type": "openai", "api_keys": ["k"], "models": ["gpt-4o"]},
    )
    book = PriceBook(settings)
    per_model = book.quote("oa", "gpt-4o")
    assert per_model.source == "config: llm_providers[1].pricing.models.gpt-4o"
    assert (per_model.price.input, per_model.price.cached_input, per_model.price.output) == pytest.approx((4e-6, 1e-6, 16e-6))
    provider_wide = book.quote("oa", "gpt-4o-mini")
    assert provider_wide.source == "config: llm_providers[1].pricing"
    assert (provider_wide.price.input, provider_wide.price.output) == pytest.approx((1e-6, 2e-6))
    from_package = book.quote("plain", "gpt-4o")
    assert from_package.source == f"genai-prices (provider openai, model {package_model_id('gpt-4o', 'openai')})"
    assert book.quote("free", "llama").price is None and book.quote("free", "llama").source == "unknown"
    assert book.quote("no-such-provider", "gpt-4o").price is None


def test_per_1k_config_and_per_token_price_agree():
    settings = settings_with(openai_provider(pricing={"input_token_cost": 0.0025, "cached_input_token_cost": 0.00125, "output_token_cost": 0.01}))
    price = PriceBook(settings).quote("oa", "gpt-4o").price
    # 1,000 prompt tokens (400 of them cache reads) and 1,000 completion tokens, at the per-1K prices:
    expected = 0.6 * 0.0025 + 0.4 * 0.00125 + 1.0 * 0.01
    assert price.cost(Usage(1000, 1000, 400)) == pytest.approx(expected)
    target = Catalog(settings).resolve("gpt-4o", lambda _: True)[0]
    assert target.price == price and target.cost(Usage(1000, 1000, 400)) == pytest.approx(expected)


def test_a_partly_set_config_level_is_a_whole_price():
    """Only the input set: output costs 0 and cache reads bill at the input rate (not genai-prices')."""
    settings = settings_with(openai_provider(pricing={"models": {"gpt-4o": {"input_token_cost": 0.002}}}))
    quote = PriceBook(settings).quote("oa", "gpt-4o")
    assert quote.source.startswith("config:")
    assert quote.price.cost(Usage(1000, 500, 1000)) == pytest.approx(0.002)


def test_an_empty_per_model_entry_falls_through_to_the_next_level():
    settings = settings_with(openai_provider(pricing={"output_token_cost": 0.01, "models": {"gpt-4o": {}}}))
    assert PriceBook(settings).quote("oa", "gpt-4o").source == "config: llm_providers[0].pricing"


def test_a_zero_config_price_is_known_and_free():
    settings = settings_with({"id": "local", "type": "custom", "base_url": "http://127.0.0.1:9", "models": ["gpt-4o"], "pricing": {"input_token_cost": 0}})
    target = Catalog(settings).resolve("gpt-4o", lambda _: True)[0]
    assert target.cost(Usage(1000, 1000)) == 0.0


@pytest.mark.parametrize(
    "pricing, problem",
    [
        ({"models": {"gpt-4o": {"input_token_cost": -1}}}, "llm_providers[0].pricing.models.gpt-4o.input_token_cost: must be >= 0"),
        ({"models": {"gpt-4o": {"input_cost": 1}}}, "llm_providers[0].pricing.models.gpt-4o.input_cost: unknown key"),
        ({"cached_input_token_cost": -0.5}, "llm_providers[0].pricing.cached_input_token_cost: must be >= 0"),
        ({"models": {"gpt-4o": {"models": {}}}}, "llm_providers[0].pricing.models.gpt-4o.models: unknown key"),
    ],
)
def test_pricing_errors_have_readable_paths(pricing, problem):
    with pytest.raises(ConfigError) as caught:
        settings_with(openai_provider(pricing=pricing))
    assert problem in caught.value.problems


def test_policy_unpriced_defaults_to_allow_and_takes_only_allow_or_deny():
    assert settings_with(openai_provider()).policy.unpriced == "allow"
    assert settings_with(openai_provider(), policy={"unpriced": "deny"}).policy.unpriced == "deny"
    with pytest.raises(ConfigError) as caught:
        settings_with(openai_provider(), policy={"unpriced": "free"})
    assert caught.value.problems == ["policy.unpriced: must be one of 'allow' or 'deny'"]


# --- genai-prices ---------------------------------------------------------------------------------

WELL_KNOWN = [
    ("openai", "openai", "gpt-4o"),
    ("openai", "openai", "gpt-4o-mini"),
    ("anthropic", "anthropic", "claude-sonnet-4-5"),
    ("claude", "anthropic", "claude-3-5-haiku-latest"),
    ("gemini", "google", "gemini-2.5-flash"),
    ("gemini", "google", "gemini-2.5-pro"),
]
USAGES = [(1000, 200, 0), (120_000, 3000, 100_000), (250_000, 4000, 50_000), (0, 0, 0)]


@pytest.mark.parametrize("our_type, package_provider, model", WELL_KNOWN)
def test_genai_prices_lookups_match_the_package(our_type, package_provider, model):
    settings = settings_with({"id": "p", "type": our_type, "api_keys": ["k"], "models": [model]})
    quote = PriceBook(settings).quote("p", model)
    assert quote.source == f"genai-prices (provider {package_provider}, model {package_model_id(model, package_provider)})"
    for prompt, completion, cached in USAGES:
        ours = quote.price.cost(Usage(prompt, completion, cached))
        assert ours == pytest.approx(package_cost(model, package_provider, prompt=prompt, completion=completion, cached=cached), rel=1e-9, abs=1e-12)


def test_a_tiered_price_charges_the_tier_the_prompt_falls_in():
    """gemini-2.5-pro has a long-prompt tier in genai-prices; both sides of it price as the package does."""
    price = PriceBook(settings_with({"id": "g", "type": "gemini", "api_keys": ["k"], "models": ["gemini-2.5-pro"]})).quote("g", "gemini-2.5-pro").price
    assert price.tiers, "genai-prices no longer lists a prompt tier for gemini-2.5-pro: pick another tiered model"
    start = price.tiers[0][0]
    below, above = price.cost(Usage(start, 1000)), price.cost(Usage(start + 1, 1000))
    assert below == pytest.approx(package_cost("gemini-2.5-pro", "google", prompt=start, completion=1000))
    assert above == pytest.approx(package_cost("gemini-2.5-pro", "google", prompt=start + 1, completion=1000))
    assert above > below * 1.2  # every token, not just the extra one, moved to the dearer tier


def test_custom_takes_a_price_only_when_the_package_agrees_on_one():
    local = {"id": "local", "type": "custom", "base_url": "http://127.0.0.1:9", "models": ["gpt-4o", "meta-llama/Llama-3.1-8B-Instruct", "my-own-model"]}
    book = PriceBook(settings_with(local))
    gpt = book.quote("local", "gpt-4o")
    assert gpt.source.startswith("genai-prices (provider openai, model")
    assert gpt.price.cost(Usage(5000, 700, 1000)) == pytest.approx(package_cost("gpt-4o", "openai", prompt=5000, completion=700, cached=1000))
    # Llama 3.1 8B is sold by many hosts at different prices: which one a self-hosted copy "costs" is unknowable.
    usage = GenaiUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    hosts = {genai_prices.calc_price(usage, "meta-llama/Llama-3.1-8B-Instruct", provider_id=host).total_price for host in ("huggingface_nebius", "huggingface_novita")}
    assert len(hosts) == 2
    llama = book.quote("local", "meta-llama/Llama-3.1-8B-Instruct")
    assert llama.price is None and llama.source.startswith("unknown (genai-prices has")
    assert book.quote("local", "my-own-model") == book.quote("local", "my-own-model") and book.quote("local", "my-own-model").price is None


def test_a_model_the_package_does_not_know_is_unknown_on_its_provider():
    settings = settings_with({"id": "a", "type": "anthropic", "api_keys": ["k"], "models": ["gpt-4o", "claude-next-unreleased"]})
    book = PriceBook(settings)
    assert book.quote("a", "gpt-4o").price is None  # OpenAI's model is not an Anthropic price
    assert book.quote("a", "claude-next-unreleased").price is None


def test_our_prices_never_come_from_a_fetched_snapshot_nor_the_network(monkeypatch):
    """Even if other code installs a fetched snapshot, we read the package's bundled data, and
    pricing opens no connection and starts no updater thread."""

    def no_network(*args, **kwargs):
        raise AssertionError("pricing tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    genai_quote.cache_clear()
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    try:
        with pytest.raises(LookupError):
            genai_prices.calc_price(GenaiUsage(input_tokens=1), "gpt-4o", provider_id="openai")  # the package now sees nothing
        quote = PriceBook(settings_with(openai_provider())).quote("oa", "gpt-4o")
    finally:
        set_custom_snapshot(None)
    assert quote.price == PriceBook(settings_with(openai_provider())).quote("oa", "gpt-4o").price
    assert quote.price.cost(Usage(1000, 1000)) == pytest.approx(package_cost("gpt-4o", "openai", prompt=1000, completion=1000))
    assert not [t for t in threading.enumerate() if t.name.startswith("genai_prices")]


# --- arithmetic -----------------------------------------------------------------------------------

DETAILED = Price(input=1e-6, output=4e-6, cached_input=0.25e-6, cache_write=1.25e-6, reasoning=8e-6)


def test_cache_reads_writes_and_reasoning_bill_at_their_rates():
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400, reasoning_tokens=200, cache_write_tokens=100)
    # input: 500 uncached * 1 + 400 read * 0.25 + 100 written * 1.25 = 725 micro-USD
    # output: 300 plain * 4 + 200 reasoning * 8 = 2800 micro-USD
    assert DETAILED.cost(usage) == pytest.approx(3525e-6)


def test_details_without_their_own_rate_bill_at_the_base_rate():
    plain = Price(input=1e-6, output=4e-6)
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400, reasoning_tokens=200, cache_write_tokens=100)
    assert plain.cost(usage) == pytest.approx(1000 * 1e-6 + 500 * 4e-6)


def test_a_detail_larger_than_its_total_is_capped():
    usage = Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=150, reasoning_tokens=30, cache_write_tokens=50)
    # all 100 prompt tokens are cache reads (none left to be writes), all 10 completion tokens reasoning
    assert DETAILED.cost(usage) == pytest.approx(100 * 0.25e-6 + 10 * 8e-6)


def test_tiers_switch_every_token_once_the_prompt_passes_the_start():
    tiered = Price(input=1e-6, output=2e-6, tiers=((1000, Price(input=3e-6, output=5e-6, cached_input=1e-6)), (5000, Price(input=10e-6, output=20e-6))))
    assert tiered.cost(Usage(1000, 10)) == pytest.approx(1000 * 1e-6 + 10 * 2e-6)
    assert tiered.cost(Usage(1001, 10, 1)) == pytest.approx(1000 * 3e-6 + 1 * 1e-6 + 10 * 5e-6)
    assert tiered.cost(Usage(5001, 10)) == pytest.approx(5001 * 10e-6 + 10 * 20e-6)


def test_an_unknown_price_costs_none():
    settings = settings_with({"id": "local", "type": "custom", "base_url": "http://127.0.0.1:9", "models": ["my-own-model"]})
    target = Catalog(settings).resolve("my-own-model", lambda _: True)[0]
    assert target.price is None
    assert target.cost(Usage(1000, 1000)) is None


def test_a_provider_wide_config_price_is_per_1k_tokens():
    target = Catalog(settings_with(openai_provider(pricing={"input_token_cost": 1.0, "output_token_cost": 2.0}))).resolve("gpt-4o", lambda _: True)[0]
    assert target.cost(Usage(100, 50)) == pytest.approx(0.2)


def test_unpriced_once_is_true_once_per_unpriced_pair():
    settings = settings_with(openai_provider(), {"id": "local", "type": "custom", "base_url": "http://127.0.0.1:9", "models": ["mine"]})
    book = PriceBook(settings)
    assert [book.unpriced_once("local", "mine"), book.unpriced_once("local", "mine")] == [True, False]
    assert book.unpriced_once("local", "other") is True
    assert book.unpriced_once("oa", "gpt-4o") is False  # priced: nothing to warn about


def test_unlisted_provider_model_targets_are_priced_too():
    catalog = Catalog(settings_with(openai_provider()))
    target = catalog.resolve("oa:o3", lambda _: True)[0]
    assert target.listed is False
    assert target.cost(Usage(2000, 300)) == pytest.approx(package_cost("o3", "openai", prompt=2000, completion=300))


# --- coo-llm prices -------------------------------------------------------------------------------


def run_prices(tmp_path: Path, config: str, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(config)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "prices", *args, "--config", str(path)], cwd=ROOT, capture_output=True, text=True, env=dict(os.environ), timeout=60
    )


def per_million(model: str, provider_id: str, **tokens: int) -> str:
    value = genai_prices.calc_price(GenaiUsage(**tokens), model, provider_id=provider_id).total_price
    return f"{float(value):.6g}"


CLI_CONFIG = """
llm_providers:
  - {id: oa, type: openai, api_keys: [k], models: [gpt-4o, my-ft], pricing: {models: {my-ft: {input_token_cost: 0.003, output_token_cost: 0.012}}}}
  - {id: local, type: custom, base_url: "http://127.0.0.1:9", models: [llama3, gpt-4o]}
"""


def test_prices_command_shows_each_serving_provider_and_the_source(tmp_path):
    done = run_prices(tmp_path, CLI_CONFIG, "gpt-4o")
    assert done.returncode == 0, done.stderr
    model_id = package_model_id("gpt-4o", "openai")
    rates = (
        f"input {per_million('gpt-4o', 'openai', input_tokens=1_000_000)}, "
        f"cached input {per_million('gpt-4o', 'openai', input_tokens=1_000_000, cache_read_tokens=1_000_000)}, "
        f"output {per_million('gpt-4o', 'openai', output_tokens=1_000_000)}"
    )
    assert done.stdout.splitlines() == [
        "oa (openai) gpt-4o",
        f"  USD per 1M tokens: {rates}",
        f"  source: genai-prices (provider openai, model {model_id})",
        "local (custom) gpt-4o",
        f"  USD per 1M tokens: {rates}",
        f"  source: genai-prices (provider openai, model {model_id})",
        f"genai-prices {genai_prices.__version__}: the data bundled with the installed package (never fetched)",
    ]


def test_prices_command_config_price_and_provider_filter(tmp_path):
    done = run_prices(tmp_path, CLI_CONFIG, "my-ft", "--provider", "oa")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "oa (openai) my-ft",
        "  USD per 1M tokens: input 3, output 12",
        "  source: config: llm_providers[0].pricing.models.my-ft",
    ]
    assert run_prices(tmp_path, CLI_CONFIG, "my-ft", "--provider", "nope").returncode == 2


def test_prices_command_exits_1_when_no_price_is_known(tmp_path):
    done = run_prices(tmp_path, CLI_CONFIG, "llama3")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "local (custom) llama3",
        "  price unknown: its cost is recorded as null (set llm_providers[1].pricing to price it)",
        "  source: unknown",
    ]


def test_prices_command_prices_an_unlisted_model_on_every_provider(tmp_path):
    done = run_prices(tmp_path, CLI_CONFIG, "gpt-4o-mini")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "gpt-4o-mini is listed by no provider or alias; each provider's price for provider_id:gpt-4o-mini:"
    assert "oa (openai) gpt-4o-mini" in lines and "local (custom) gpt-4o-mini" in lines
    assert f"  USD per 1M tokens: input {per_million('gpt-4o-mini', 'openai', input_tokens=1_000_000)}" in [line.split(",")[0] for line in lines]
