"""Configuration: the YAML schema as frozen pydantic models, env expansion and readable errors.

Contract:

- ``load_settings(path)`` / ``parse_settings(text)`` return a frozen ``Settings`` or raise
  ``ConfigError`` whose ``problems`` are lines like
  ``llm_providers[1].limits.req_per_min: must be > 0``.
- ``${VAR}`` and ``${VAR:-default}`` expand in every string value before validation. An unset
  variable without a default expands to the empty string; empty provider keys are then dropped
  (the provider simply has no keys), while an empty client key is an error, because silently
  dropping it would open the gateway.
- Unknown keys are rejected everywhere.

Imported by web and worker processes alike, so nothing here touches Sanic or the network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

PROVIDER_TYPES = ("openai", "anthropic", "claude", "gemini", "custom")
TYPE_ALIASES = {"claude": "anthropic"}
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
}
# Provider types whose API requires max_tokens, and what is sent when neither the request, the
# provider's default_max_tokens nor its limits.max_tokens says.
REQUIRED_MAX_TOKENS = {"anthropic": 4096}
PROVIDER_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
}

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ConfigError(Exception):
    """The configuration is invalid. ``problems`` holds one ``path: reason`` line per fault."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def expand_env(value: Any, environ: dict[str, str] | None = None, used: dict[str, str] | None = None) -> Any:
    """Return ``value`` with ``${VAR}`` / ``${VAR:-default}`` expanded in every string, recursively.

    ``used``, when given, collects each variable taken from the environment and its value.
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match) -> str:
        found = env.get(match.group(1))
        if found and used is not None:
            used[match.group(1)] = found
        return found or (match.group(2) or "")

    if isinstance(value, str):
        return _ENV_PATTERN.sub(substitute, value)
    if isinstance(value, list):
        return [expand_env(item, env, used) for item in value]
    if isinstance(value, dict):
        return {key: expand_env(item, env, used) for key, item in value.items()}
    return value


def _hide_env_values(problems: list[str], used: dict[str, str]) -> list[str]:
    """Error text never shows what a variable held (it may be a key): ``${NAME}`` stands for it."""
    for name, value in sorted(used.items(), key=lambda item: -len(item[1])):
        if len(value) >= 4:
            problems = [problem.replace(value, "${" + name + "}") for problem in problems]
    return problems


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"30s"``, ``"500ms"``, ``"2m"`` or ``"1h"``."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s or 500ms")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION_PATTERN.match(str(value))
    if not match:
        raise ValueError("must be a duration such as 30s or 500ms")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Frozen):
    listen: str = ":2906"
    admin_api_key: str | None = None
    max_body_mb: float = Field(default=10.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port or :port, e.g. :2906")
        return value

    @field_validator("admin_api_key")
    @classmethod
    def _empty_admin_key_is_off(cls, value: str | None) -> str | None:
        return value or None

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0] or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


class LoggingConfig(_Frozen):
    level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_: bool = Field(default=True, alias="json")
    file: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("file")
    @classmethod
    def _empty_file_is_none(cls, value: str | None) -> str | None:
        return value or None


class ModelPricing(_Frozen):
    """USD per 1K tokens; ``None`` means not set. A level that sets any field is a whole price (see
    ``balancer.pricing``): unset input/output cost 0, unset cached input bills at the input rate."""

    input_token_cost: float | None = Field(default=None, ge=0)
    cached_input_token_cost: float | None = Field(default=None, ge=0)
    output_token_cost: float | None = Field(default=None, ge=0)


class Pricing(ModelPricing):
    """Provider-wide prices, and ``models`` overriding them per upstream model name. Precedence:
    ``models.<name>``, then these fields, then the genai-prices package, then unknown (cost null)."""

    models: dict[str, ModelPricing] = {}


class Limits(_Frozen):
    """Per-key limits. ``None`` means unlimited."""

    req_per_min: int | None = Field(default=None, gt=0)
    tokens_per_min: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)


class ProviderConfig(_Frozen):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    type: Literal["openai", "anthropic", "claude", "gemini", "custom"]
    api_keys: tuple[str, ...] = ()
    base_url: str | None = None
    model: str | None = None
    models: tuple[str, ...] = ()
    pricing: Pricing = Pricing()
    limits: Limits = Limits()
    headers: dict[str, str] = {}
    drop_params: tuple[str, ...] = ()
    timeout: float | None = None
    default_max_tokens: int | None = Field(default=None, gt=0)
    """``max_tokens`` sent when the client gives none, to providers that require one (anthropic:
    unset means ``limits.max_tokens``, else 4096). When set, the balancer also reserves this many
    completion tokens for such requests, for every provider type; only anthropic sends it."""

    @field_validator("type", mode="before")
    @classmethod
    def _lower_type(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            # An unset ${VAR} leaves an empty string: the provider just lacks that key.
            return [k.strip() if isinstance(k, str) else k for k in value if not (isinstance(k, str) and not k.strip())]
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _model_and_url(self) -> "ProviderConfig":
        if self.model is None and not self.models:
            raise ValueError("needs `model` or `models`")
        if self.type == "custom" and self.base_url is None:
            raise ValueError("type custom needs a base_url")
        return self

    @property
    def kind(self) -> str:
        """The provider type with aliases folded (``claude`` -> ``anthropic``)."""
        return TYPE_ALIASES.get(self.type, self.type)

    @property
    def all_models(self) -> tuple[str, ...]:
        names = ((self.model,) if self.model else ()) + self.models
        return tuple(dict.fromkeys(names))

    @property
    def effective_base_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URLS[self.kind]

    @property
    def effective_default_max_tokens(self) -> int | None:
        """What a request without ``max_tokens`` is sent with (and reserves) on this provider."""
        if self.default_max_tokens or self.kind not in REQUIRED_MAX_TOKENS:
            return self.default_max_tokens
        return self.limits.max_tokens or REQUIRED_MAX_TOKENS[self.kind]


class ClientLimits(_Frozen):
    """A client's own sliding 60 s windows (``app.governance``); ``None`` is unlimited."""

    req_per_min: int | None = Field(default=None, gt=0)
    tokens_per_min: int | None = Field(default=None, gt=0)


class ClientBudgets(_Frozen):
    """A client's USD budgets per UTC calendar day and month (``app.governance``); ``None`` is none."""

    usd_per_day: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    usd_per_month: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class ClientKey(_Frozen):
    key: str
    allowed_providers: tuple[str, ...] | Literal["*"] = "*"
    description: str = ""
    cache_namespace: str | None = None  # keys sharing a namespace share cached answers (default: none)
    limits: ClientLimits = ClientLimits()
    budgets: ClientBudgets = ClientBudgets()

    @field_validator("key")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty (is its environment variable set?)")
        return value.strip()

    @field_validator("allowed_providers", mode="before")
    @classmethod
    def _star(cls, value: Any) -> Any:
        if isinstance(value, list) and "*" in value:
            return "*"
        if isinstance(value, str) and value != "*":
            return (value,)
        return value


class RetryPolicy(_Frozen):
    max_attempts: int = Field(default=3, ge=1, le=20)
    timeout: float = 60.0
    interval: float = 0.0
    queue: bool = False

    @field_validator("timeout", "interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be > 0")
        return value

    @field_validator("interval")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must be >= 0")
        return value


class CachePolicy(_Frozen):
    """The exact-match response cache (``app.cache``) and its warming job (``workers.warming``).

    Warming spends upstream calls, so it is off unless ``warm: true``: then entries with at least
    ``warm_min_hits`` hits are refreshed when they have less than ``warm_before`` left to live.
    """

    enabled: bool = False
    ttl_seconds: int = Field(default=300, gt=0)
    warm: bool = False
    warm_min_hits: int = Field(default=3, ge=1)
    warm_before: float = 60.0

    @field_validator("warm_before", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


class CooldownPolicy(_Frozen):
    """How long a key rests after failures (durations)."""

    rate_limited: float = 10.0
    error_base: float = 1.0
    error_max: float = 60.0
    auth: float = 300.0

    @field_validator("*", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


class HybridWeights(_Frozen):
    """Weights of the hybrid score; see ``balancer.strategies.hybrid_score``."""

    req: float = Field(default=0.0, ge=0)
    token: float = Field(default=0.0, ge=0)
    inflight: float = Field(default=0.0, ge=0)
    error: float = Field(default=0.0, ge=0)
    latency: float = Field(default=0.0, ge=0)
    cost: float = Field(default=0.0, ge=0)


class Policy(_Frozen):
    algorithm: Literal["round_robin", "least_loaded", "hybrid"] = "hybrid"
    priority: Literal["balanced", "cost", "req", "token"] = "balanced"
    hybrid_weights: HybridWeights | None = None
    retry: RetryPolicy = RetryPolicy()
    cache: CachePolicy = CachePolicy()
    cooldown: CooldownPolicy = CooldownPolicy()
    default_max_tokens: int = Field(default=1024, gt=0)
    unpriced: Literal["allow", "deny"] = "allow"
    """What a client with a USD budget may do with a model whose price is unknown (its cost is
    null): ``allow`` serves it without charging the budget (a warning is logged), ``deny`` leaves
    such targets out of its plan, and refuses with 403 ``model_unpriced`` when none is left."""


class RuntimeStorage(_Frozen):
    type: Literal["memory", "redis", "file", "http"] = "memory"
    url: str | None = None
    addr: str | None = None
    password: str | None = None
    db: int = Field(default=0, ge=0)
    tls: bool = False
    cluster: bool = False  # redis: url/addr is one node of a Redis Cluster
    path: str | None = None
    timeout: float = 0.25

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("url", "addr", "password", "path")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _fields_for_type(self) -> "RuntimeStorage":
        if self.type == "redis" and not (self.url or self.addr):
            raise ValueError("type redis needs `url` or `addr`")
        if self.type == "http" and not self.url:
            raise ValueError("type http needs `url` (a webdis endpoint)")
        if self.type == "file" and not self.path:
            raise ValueError("type file needs `path`")
        return self


class QueueStorage(_Frozen):
    """Where arq keeps its job queue: by default the runtime Redis. arq needs a single (non-cluster)
    Redis, so with ``runtime.cluster: true`` set ``queue.url`` to one."""

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not re.match(r"^rediss?://", value):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value or None


class StorageConfig(_Frozen):
    runtime: RuntimeStorage = RuntimeStorage()
    queue: QueueStorage = QueueStorage()

    @model_validator(mode="after")
    def _queue_for_cluster(self) -> "StorageConfig":
        if self.runtime.type == "redis" and self.runtime.cluster and not self.queue.url:
            raise ValueError("runtime.cluster needs queue.url: the arq job queue needs a single Redis")
        return self


def _cron_period(value: Any) -> float:
    """A period a cron schedule can express: divides a minute, or is whole minutes dividing an hour."""
    seconds = parse_duration(value)
    whole = int(seconds)
    if seconds != whole or whole <= 0 or not ((whole < 60 and 60 % whole == 0) or (whole % 60 == 0 and 3600 % whole == 0)):
        raise ValueError("must divide a minute (1s..30s) or an hour (1m..60m), e.g. 10s, 1m, 5m")
    return float(whole)


class WorkersConfig(_Frozen):
    """Background jobs (arq in ``coo-llm worker`` with Redis; in-process otherwise)."""

    rollup_every: float = 60.0
    compact_every: float = 60.0
    warm_every: float = 60.0
    history: float = 3 * 3600.0  # per-minute key history kept by compaction
    max_jobs: int = Field(default=50, gt=0)

    @field_validator("rollup_every", "compact_every", "warm_every", mode="before")
    @classmethod
    def _period(cls, value: Any) -> Any:
        return _cron_period(value)

    @field_validator("history", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


AliasTargets = Union[str, list[str]]


class Settings(_Frozen):
    """The whole configuration. Immutable: counters and locks live in ``storage/``."""

    version: str = "1.0"
    server: ServerConfig = ServerConfig()
    logging: LoggingConfig = LoggingConfig()
    llm_providers: tuple[ProviderConfig, ...] = ()
    api_keys: tuple[ClientKey, ...] = ()
    model_aliases: dict[str, tuple[str, ...]] = {}
    policy: Policy = Policy()
    storage: StorageConfig = StorageConfig()
    workers: WorkersConfig = WorkersConfig()

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("model_aliases", mode="before")
    @classmethod
    def _alias_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: [t] if isinstance(t, str) else t for name, t in value.items()}
        return value



def _cross_check(settings: Settings) -> list[str]:
    """Problems pydantic cannot see: duplicate ids and references to providers that do not exist."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, provider in enumerate(settings.llm_providers):
        if provider.id in seen:
            problems.append(f"llm_providers[{index}].id: duplicate provider id {provider.id!r}")
        seen.add(provider.id)
    for index, client in enumerate(settings.api_keys):
        if client.allowed_providers != "*":
            for name in client.allowed_providers:
                if name not in seen:
                    problems.append(f"api_keys[{index}].allowed_providers: unknown provider {name!r}")
    keys = [client.key for client in settings.api_keys]
    if len(set(keys)) != len(keys):
        problems.append("api_keys: the same key is listed twice")
    for alias, targets in settings.model_aliases.items():
        if not targets:
            problems.append(f"model_aliases.{alias}: needs at least one provider_id:model target")
        for position, target in enumerate(targets):
            provider_id, sep, model = target.partition(":")
            where = f"model_aliases.{alias}" + (f"[{position}]" if len(targets) > 1 else "")
            if not sep or not model:
                problems.append(f"{where}: {target!r} is not provider_id:model")
            elif provider_id not in seen:
                problems.append(f"{where}: unknown provider {provider_id!r}")
    return problems


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


_REASONS = {
    "extra_forbidden": lambda e: "unknown key",
    "missing": lambda e: "required",
    "greater_than": lambda e: f"must be > {_num(e['ctx']['gt'])}",
    "greater_than_equal": lambda e: f"must be >= {_num(e['ctx']['ge'])}",
    "less_than_equal": lambda e: f"must be <= {_num(e['ctx']['le'])}",
    "literal_error": lambda e: f"must be one of {e['ctx']['expected']}",
    "string_pattern_mismatch": lambda e: "may use only letters, digits, '_', '-' and '.'",
}


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "union[", "tagged-union[")) or part in ("str", "list[str]", "tuple[str, ...]"):
            continue  # pydantic's internal step names, not config keys
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def described_errors(error: ValidationError) -> list[tuple[str, str]]:
    """Each problem of ``error`` as (path such as ``limits.req_per_min``, short reason)."""
    described = []
    for item in error.errors():
        reason_of = _REASONS.get(item["type"])
        if reason_of:
            reason = reason_of(item)
        else:
            reason = item["msg"]
            reason = reason.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            reason = reason[0].lower() + reason[1:] if reason else reason
        described.append((_path(item["loc"]), reason))
    return described


def _readable(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for path, reason in described_errors(error):
        line = f"{path}: {reason}"
        if line not in problems:
            problems.append(line)
    return problems


def settings_from_data(data: Any, environ: dict[str, str] | None = None) -> Settings:
    """Validate already-parsed YAML/JSON data (env not yet expanded)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["(root): must be a mapping of top-level keys"])
    used: dict[str, str] = {}
    try:
        settings = Settings.model_validate(expand_env(data, environ, used))
    except ValidationError as error:
        raise ConfigError(_hide_env_values(_readable(error), used)) from None
    problems = _cross_check(settings)
    if problems:
        raise ConfigError(_hide_env_values(problems, used))
    return settings


def parse_settings(text: str, environ: dict[str, str] | None = None) -> Settings:
    """Parse YAML (JSON is YAML too) and validate it."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(root)"
        raise ConfigError([f"{where}: not valid YAML ({getattr(error, 'problem', None) or error})"]) from None
    return settings_from_data(data, environ)


def load_settings(path: str | os.PathLike, environ: dict[str, str] | None = None) -> Settings:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([f"{path}: cannot read ({error.strerror})"]) from None
    return parse_settings(text, environ)


SECRET_FIELDS = {"api_keys", "admin_api_key", "password", "key"}


def mask_secret(secret: str) -> str:
    """Show only that a secret exists and its last 4 characters when it is long enough."""
    if not secret:
        return ""
    return "****" + secret[-4:] if len(secret) >= 16 else "****"


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective config as plain data, every secret masked (for ``GET /admin/v1/config``)."""
    data = settings.model_dump(mode="json", by_alias=True)

    def walk(node: Any, field: str | None = None) -> Any:
        if isinstance(node, dict):
            if field == "headers":  # custom headers often carry tokens
                return {k: mask_secret(str(v)) for k, v in node.items()}
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, field) for v in node]
        if field in SECRET_FIELDS and isinstance(node, str):
            return mask_secret(node)
        if field == "url" and isinstance(node, str):
            return re.sub(r"//([^@/]*)@", "//****@", node)  # redis://:password@host
        return node

    return walk(data)

