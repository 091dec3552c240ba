"""Configuration: env expansion, readable error paths, `coo-llm check`, the README example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from adapters.openai import api_base
from app.config import ConfigError, expand_env, masked_dump, parse_duration, parse_settings, settings_from_data

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = {"llm_providers": [{"id": "oa", "type": "openai", "api_keys": ["sk-one"], "model": "gpt-4o"}]}


def problems_of(data: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from_data(data, env or {})
    return caught.value.problems


def with_provider(**changes) -> dict:
    return {"llm_providers": [MINIMAL["llm_providers"][0], {"id": "two", "type": "openai", "model": "m", **changes}]}


def test_env_expands_in_every_string_value():
    text = """
server: {listen: "${HOST:-127.0.0.1}:${PORT}", admin_api_key: "${ADMIN}"}
logging: {level: "${LEVEL:-debug}"}
llm_providers:
  - id: "${PID:-oa}"
    type: openai
    api_keys: ["${KEY_A}", "${KEY_B}", "${KEY_C:-sk-default}"]
    base_url: "${URL:-http://127.0.0.1:9/v1}"
    model: "${MODEL}"
    headers: {x-team: "${TEAM:-core}"}
    limits: {req_per_min: "${RPM:-120}"}
    pricing: {input_token_cost: "${COST_IN:-0.5}"}
model_aliases: {fast: "${PID:-oa}:${MODEL}"}
"""
    settings = parse_settings(text, {"PORT": "9999", "KEY_A": "sk-a", "MODEL": "gpt-x", "ADMIN": ""})
    assert settings.server.listen == "127.0.0.1:9999" and settings.server.port == 9999
    assert settings.server.admin_api_key is None  # empty: admin API off
    assert settings.logging.level == "DEBUG"
    provider = settings.llm_providers[0]
    assert provider.id == "oa" and provider.model == "gpt-x"
    assert provider.api_keys == ("sk-a", "sk-default")  # the unset KEY_B is simply absent
    assert provider.base_url == "http://127.0.0.1:9/v1"
    assert provider.headers == {"x-team": "core"}
    assert provider.limits.req_per_min == 120 and provider.pricing.input_token_cost == 0.5
    assert settings.model_aliases == {"fast": ("oa:gpt-x",)}


def test_expand_env_leaves_other_types_and_text_alone():
    assert expand_env({"a": [1, True, None, "x${Y}z"]}, {"Y": "-"}) == {"a": [1, True, None, "x-z"]}
    assert expand_env("$NOT_BRACED ${}", {}) == "$NOT_BRACED ${}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (with_provider(limits={"req_per_min": 0}), "llm_providers[1].limits.req_per_min: must be > 0"),
        (with_provider(limits={"tokens_per_min": -5}), "llm_providers[1].limits.tokens_per_min: must be > 0"),
        (with_provider(pricing={"input_token_cost": -1}), "llm_providers[1].pricing.input_token_cost: must be >= 0"),
        (with_provider(type="bard"), "llm_providers[1].type: must be one of 'openai', 'anthropic', 'claude', 'gemini' or 'custom'"),
        (with_provider(modle="x"), "llm_providers[1].modle: unknown key (did you mean 'model'?)"),
        (with_provider(type="custom"), "llm_providers[1]: type custom needs a base_url"),
        (with_provider(base_url="ftp://x"), "llm_providers[1].base_url: must be an http:// or https:// URL"),
        ({"llm_providers": [{"id": "x", "type": "openai"}]}, "llm_providers[0]: needs `model` or `models`"),
        ({"llm_providers": [{"type": "openai", "model": "m"}]}, "llm_providers[0].id: required"),
        ({**MINIMAL, "server": {"lisen": ":1"}}, "server.lisen: unknown key (did you mean 'listen'?)"),
        ({**MINIMAL, "server": {"listen": "nowhere"}}, "server.listen: must be host:port or :port, e.g. :2906"),
        ({**MINIMAL, "server": {"max_body_mb": 0}}, "server.max_body_mb: must be > 0"),
        ({**MINIMAL, "policy": {"algorithm": "random"}}, "policy.algorithm: must be one of 'round_robin', 'least_loaded' or 'hybrid'"),
        ({**MINIMAL, "policy": {"priority": "speed"}}, "policy.priority: must be one of 'balanced', 'cost', 'req' or 'token'"),
        ({**MINIMAL, "policy": {"retry": {"max_attempts": 0}}}, "policy.retry.max_attempts: must be >= 1"),
        ({**MINIMAL, "policy": {"retry": {"timeout": "soon"}}}, "policy.retry.timeout: must be a duration such as 30s or 500ms"),
        ({**MINIMAL, "policy": {"cache": {"ttl_seconds": 0}}}, "policy.cache.ttl_seconds: must be > 0"),
        ({**MINIMAL, "storage": {"runtime": {"type": "redis"}}}, "storage.runtime: type redis needs `url` or `addr`"),
        ({**MINIMAL, "api_keys": [{"key": ""}]}, "api_keys[0].key: is empty (is its environment variable set?)"),
        ({**MINIMAL, "api_keys": [{"key": "a", "allowed_providers": ["ghost"]}]}, "api_keys[0].allowed_providers: unknown provider 'ghost'"),
        ({**MINIMAL, "model_aliases": {"x": "ghost:m"}}, "model_aliases.x: unknown provider 'ghost'"),
        ({**MINIMAL, "model_aliases": {"x": ["oa:m", "ghost:m"]}}, "model_aliases.x[1]: unknown provider 'ghost'"),
        ({**MINIMAL, "model_aliases": {"x": "no-colon"}}, "model_aliases.x: 'no-colon' is not provider_id:model"),
        ({"llm_providers": MINIMAL["llm_providers"] * 2}, "llm_providers[1].id: duplicate provider id 'oa'"),
        ({**MINIMAL, "surprise": 1}, "surprise: unknown key"),
    ],
)
def test_errors_name_the_path_and_the_reason(data, expected):
    assert expected in problems_of(data)


def test_all_problems_are_reported_at_once():
    data = {"llm_providers": [{"id": "a", "type": "openai", "model": "m", "limits": {"req_per_min": 0}}], "server": {"x": 1}}
    assert len(problems_of(data)) == 2


def test_bad_yaml_names_the_line():
    with pytest.raises(ConfigError) as caught:
        parse_settings("llm_providers:\n  - id: [unclosed\n")
    assert caught.value.problems[0].startswith("line ")


def test_durations():
    assert [parse_duration(v) for v in ("30s", "500ms", "2m", "1h", 5, "1.5")] == [30, 0.5, 120, 3600, 5, 1.5]


def test_claude_is_an_alias_of_anthropic_and_base_urls_default():
    settings = settings_from_data(
        {"llm_providers": [{"id": "c", "type": "claude", "model": "claude-x"}, {"id": "g", "type": "Gemini", "model": "gemini-x"}]}, {}
    )
    assert settings.llm_providers[0].kind == "anthropic"
    assert settings.llm_providers[0].effective_base_url == "https://api.anthropic.com"
    assert settings.llm_providers[1].kind == "gemini"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
        ("https://host.example/openai/v1", "https://host.example/openai/v1"),
        ("https://host.example/api/v1beta/openai", "https://host.example/api/v1beta/openai"),
    ],
)
def test_base_url_with_or_without_v1(given, expected):
    assert api_base(given) == expected


def test_masked_dump_hides_every_secret():
    settings = settings_from_data(
        {
            "server": {"admin_api_key": "admin-very-secret-0001"},
            "llm_providers": [{"id": "a", "type": "custom", "base_url": "http://x", "model": "m", "api_keys": ["sk-provider-secret-0002"], "headers": {"x-token": "tok-secret-0003"}}],
            "api_keys": [{"key": "client-secret-key-0004", "description": "team a"}],
            "storage": {"runtime": {"type": "redis", "url": "redis://:redispass0005@127.0.0.1:6379/0", "password": "redispass0006"}},
        },
        {},
    )
    text = repr(masked_dump(settings))
    for secret in ("admin-very-secret", "sk-provider-secret", "tok-secret", "client-secret-key", "redispass"):
        assert secret not in text
    assert "team a" in text and "****0002" in text


def run_check(path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "check", "--config", str(path)], cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env}
    )


def test_check_command_exit_codes(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(MINIMAL))
    result = run_check(good)
    assert result.returncode == 0, result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_provider(limits={"req_per_min": 0})))
    result = run_check(bad)
    assert result.returncode == 1
    assert "llm_providers[1].limits.req_per_min: must be > 0" in result.stderr
    assert run_check(tmp_path / "missing.yaml").returncode == 1


def test_shipped_configs_are_valid():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        if path.name.startswith(("prometheus", "grafana")):
            continue
        assert run_check(path, COO_CLIENT_KEY="client").returncode == 0, path


def test_scale_out_config_refuses_to_start_open():
    result = run_check(ROOT / "configs" / "redis.yaml", COO_CLIENT_KEY="")
    assert result.returncode == 1
    assert "api_keys[0].key: is empty (is its environment variable set?)" in result.stderr


def readme_yaml_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.S)


def test_readme_full_example_config_is_valid():
    blocks = [b for b in readme_yaml_blocks() if "llm_providers:" in b and "policy:" in b]
    assert blocks, "README has no full example config"
    env = {"OPENAI_API_KEY": "sk-a", "OPENAI_API_KEY_2": "sk-b", "ANTHROPIC_API_KEY": "sk-ant", "GEMINI_API_KEY": "AIza-x",
           "ADMIN_API_KEY": "admin", "TEAM_A_KEY": "team-a", "BATCH_KEY": "batch", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    for block in blocks:
        settings = parse_settings(block, env)
        assert settings.llm_providers


def test_errors_never_show_what_an_environment_variable_holds():
    env = {"OPENAI_API_KEY": "sk-very-secret-value-123", "SHORT": "abc"}
    data = {
        **MINIMAL,
        "api_keys": [{"key": "client", "allowed_providers": ["${OPENAI_API_KEY}"]}],
        "model_aliases": {"x": "${OPENAI_API_KEY}:m"},
    }
    problems = problems_of(data, env)
    assert "api_keys[0].allowed_providers: unknown provider '${OPENAI_API_KEY}'" in problems
    assert not any("sk-very-secret" in problem for problem in problems)


# ---------------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({**MINIMAL, "policy": {"retyr": {}}}, "policy.retyr: unknown key (did you mean 'retry'?)"),
        ({**MINIMAL, "polcy": {}}, "polcy: unknown key (did you mean 'policy'?)"),
        ({**MINIMAL, "logging": {"jsn": True}}, "logging.jsn: unknown key (did you mean 'json'?)"),  # the alias, as written in YAML
        (with_provider(limits={"req_per_mni": 3}), "llm_providers[1].limits.req_per_mni: unknown key (did you mean 'req_per_min'?)"),
        ({**MINIMAL, "policy": {"hybrid_weights": {"tokn": 1}}}, "policy.hybrid_weights.tokn: unknown key (did you mean 'token'?)"),
        ({**MINIMAL, "storage": {"runtime": {"typ": "memory"}}}, "storage.runtime.typ: unknown key (did you mean 'type'?)"),
        ({**MINIMAL, "server": {"allow_open_acess": True}}, "server.allow_open_acess: unknown key (did you mean 'allow_open_access'?)"),
        ({**MINIMAL, "policy": {"cache": {"zzzz": 1}}}, "policy.cache.zzzz: unknown key"),  # nothing close: no guess
    ],
)
def test_unknown_keys_suggest_the_closest_key_of_their_level(data, expected):
    assert expected in problems_of(data)


# ---------------------------------------------------------------------------------- durations


DURATION_FIELDS = [
    ("llm_providers", 0, "timeout"),
    ("policy", "retry", "timeout"),
    ("policy", "retry", "interval"),
    ("policy", "cache", "warm_before"),
    ("policy", "cooldown", "rate_limited"),
    ("policy", "cooldown", "error_base"),
    ("policy", "cooldown", "error_max"),
    ("policy", "cooldown", "auth"),
    ("storage", "runtime", "timeout"),
    ("workers", "history"),
]


def _with_value(path: tuple, value) -> dict:
    data = {"llm_providers": [dict(MINIMAL["llm_providers"][0])]}
    node = data
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[path[-1]] = value
    return data


def _read(settings, path: tuple):
    node = settings
    for part in path:
        node = node[part] if isinstance(part, int) else getattr(node, part)
    return node


def _dotted(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else ("." if i else "") + p for i, p in enumerate(path))


@pytest.mark.parametrize("path", DURATION_FIELDS, ids=_dotted)
def test_every_duration_field_reads_units_and_refuses_negative_or_infinite(path):
    assert _read(settings_from_data(_with_value(path, "2m")), path) == 120.0
    assert _read(settings_from_data(_with_value(path, "250ms")), path) == 0.25
    assert f"{_dotted(path)}: must be a duration such as 30s or 500ms" in problems_of(_with_value(path, "soon"))
    assert f"{_dotted(path)}: must be >= 0" in problems_of(_with_value(path, -1))
    assert f"{_dotted(path)}: must be a finite number" in problems_of(_with_value(path, float("inf")))


def test_timeouts_must_be_more_than_zero():
    for path in (("llm_providers", 0, "timeout"), ("policy", "retry", "timeout"), ("storage", "runtime", "timeout")):
        assert f"{_dotted(path)}: must be > 0" in problems_of(_with_value(path, "0s"))
    assert settings_from_data(_with_value(("policy", "retry", "interval"), 0)).policy.retry.interval == 0


def test_job_periods_must_fit_a_cron_schedule():
    assert settings_from_data({**MINIMAL, "workers": {"rollup_every": "5m"}}).workers.rollup_every == 300
    assert "workers.compact_every: must divide a minute (1s..30s) or an hour (1m..60m), e.g. 10s, 1m, 5m" in problems_of({**MINIMAL, "workers": {"compact_every": "7s"}})


# ---------------------------------------------------------------------------------- listen address


def test_listen_defaults_to_loopback_and_colon_port_is_every_interface():
    default = settings_from_data(MINIMAL).server
    assert (default.listen, default.host, default.port, default.allow_open_access) == ("127.0.0.1:2906", "127.0.0.1", 2906, False)
    assert settings_from_data({**MINIMAL, "server": {"listen": ":8080"}}).server.host == "0.0.0.0"
    assert settings_from_data({**MINIMAL, "server": {"listen": "[::1]:8080"}}).server.host == "::1"


def test_numbers_that_would_stop_serve_are_refused():
    assert "server.max_body_mb: must be a finite number" in problems_of({**MINIMAL, "server": {"max_body_mb": float("inf")}})
    assert "server.max_body_mb: must be <= 1024" in problems_of({**MINIMAL, "server": {"max_body_mb": 1e300}})
    redis_http = {**MINIMAL, "storage": {"runtime": {"type": "redis", "url": "http://127.0.0.1:6379"}}}
    assert "storage.runtime: type redis needs a redis://, rediss:// or unix:// url" in problems_of(redis_http)
    webdis_redis = {**MINIMAL, "storage": {"runtime": {"type": "http", "url": "redis://127.0.0.1:6379"}}}
    assert "storage.runtime: type http needs an http:// or https:// url (a webdis endpoint)" in problems_of(webdis_redis)


# ---------------------------------------------------------------------------------- bounded documents


def _problems_of_text(text: str | bytes) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, {})
    return caught.value.problems


ALIAS_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 10) if previous else ', '.join(['x'] * 10)}]\n"
    for previous, name in zip([None, "a", "b", "c", "d", "e", "f", "g"], "abcdefgh")
)  # 10**8 values once expanded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: " + "[" * 500 + "]" * 500, "nested deeper than 32 levels"),
        ("a: " + "[" * 5000, "not valid YAML"),  # libyaml's own limit (1000 levels) may speak first
        ("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 60)) + "  " * 60 + "v: 1\n", "nested deeper than 32 levels"),
        ("x: " + "{a: " * 3000 + "1" + "}" * 3000, "nested deeper than 32 levels"),
        ("a: &a [*a]\n", "(root): nested deeper than 32 levels"),  # a cycle: aliases do not recurse for ever
        (ALIAS_BOMB, "(root): more than 100000 values"),
        ("# padding\n" * 30_000, "more than the 262144 a config may have"),
        ("version: " + "1" * 5000, "(root): not valid YAML (a value cannot be read"),
        (b"\xff\xfe\x00", "not valid YAML"),
    ],
    ids=["flow-nesting", "flow-nesting-5000", "block-nesting", "mapping-nesting", "alias-cycle", "alias-bomb", "too-large", "huge-int", "bad-bytes"],
)
def test_hostile_documents_are_config_errors_and_quick(text, expected):
    started = time.monotonic()
    problems = _problems_of_text(text)
    assert any(expected in problem for problem in problems), problems
    assert time.monotonic() - started < 2.0


def test_a_config_as_large_as_allowed_still_parses():
    providers = "".join(f"  - {{id: p{i}, type: openai, api_keys: [sk-{i}], models: [m]}}\n" for i in range(2000))
    assert len(parse_settings("llm_providers:\n" + providers, {}).llm_providers) == 2000


# ---------------------------------------------------------------------------------- warnings


def test_warnings_name_unset_provider_key_variables_and_never_a_value():
    data = {"llm_providers": [{"id": "oa", "type": "openai", "api_keys": ["${SET_ONE}", "${UNSET_ONE}", "${SET_ONE}${UNSET_TWO}", "${EMPTY_OK:-}"], "model": "m"}]}
    warnings: list[str] = []
    settings = settings_from_data(data, {"SET_ONE": "sk-a-value-never-shown"}, warnings=warnings)
    assert len(settings.llm_providers[0].api_keys) == 2
    assert warnings == [
        "llm_providers[0].api_keys[1]: ${UNSET_ONE} is not set, so provider oa has one key fewer",
        "llm_providers[0].api_keys[2]: ${UNSET_TWO} is not set, so provider oa sends this key incomplete",
    ]
    quiet: list[str] = []
    settings_from_data(data, {"SET_ONE": "a", "UNSET_ONE": "b", "UNSET_TWO": "c"}, warnings=quiet)
    assert quiet == []
