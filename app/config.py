"""Configuration: the YAML schema as frozen pydantic models, env expansion and readable errors.

Contract:

- ``load_settings(path)`` / ``parse_settings(text)`` return a frozen ``Settings`` or raise
  ``ConfigError`` whose ``problems`` are lines like
  ``llm_providers[1].limits.req_per_min: must be > 0``.
- ``${VAR}`` and ``${VAR:-default}`` expand in every string value before validation. An unset
  variable without a default expands to the empty string; empty provider keys are then dropped
  (the provider simply has no keys), while an empty client key is an error, because silently
  dropping it would open the gateway.
- Unknown keys are rejected everywhere, with the closest known key of that level suggested
  (``policy.retyr: unknown key (did you mean 'retry'?)``).
- Durations (``Duration``) are seconds, or strings such as ``500ms``, ``30s``, ``2m``, ``1h``;
  never negative, never infinite.
- A document is bounded before it is trusted: at most ``MAX_CONFIG_BYTES``, nested at most
  ``MAX_DEPTH`` levels, at most ``MAX_VALUES`` values once YAML aliases are expanded. Beyond that it
  is a ``ConfigError`` like any other fault, never a ``RecursionError`` or a minute of work.
- ``warnings``, when a list is given, collects what is valid but probably not meant: each provider
  key whose ``${VAR}`` is unset (the key is dropped), so ``coo-llm check`` can name the variable.

Imported by web and worker processes alike, so nothing here touches Sanic or the network.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

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

# Bounds on a document (a file or a POST to /admin/v1/config/validate). Real configs are a few KB
# and a few levels deep; libyaml parses this many bytes in about half a second.
MAX_CONFIG_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_VALUES = 100_000
# libyaml when PyYAML was built with it (several times faster), else the pure-Python loader.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
    """Seconds from ``30``, ``"30s"``, ``"500ms"``, ``"2m"`` or ``"1h"``: finite and not negative."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s or 500ms")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION_PATTERN.match(str(value))
        if not match:
            raise ValueError("must be a duration such as 30s or 500ms")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError("must be a finite number")
    if seconds < 0:
        raise ValueError("must be >= 0")
    return seconds


# A duration field: seconds as a float, written as a number or "500ms" / "30s" / "2m" / "1h".
Duration = Annotated[float, BeforeValidator(parse_duration)]


def _cron_period(value: Any) -> float:
    """A period a cron schedule can express: divides a minute, or is whole minutes dividing an hour."""
    seconds = parse_duration(value)
    whole = int(seconds)
    if seconds != whole or whole <= 0 or not ((whole < 60 and 60 % whole == 0) or (whole % 60 == 0 and 3600 % whole == 0)):
        raise ValueError("must divide a minute (1s..30s) or an hour (1m..60m), e.g. 10s, 1m, 5m")
    return float(whole)


# A job period: a Duration that divides a minute or an hour.
CronPeriod = Annotated[float, BeforeValidator(_cron_period)]


class _Frozen(BaseModel):
    # allow_inf_nan: YAML's .inf and .nan are floats too, and no number here may be either.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ServerConfig(_Frozen):
    listen: str = "127.0.0.1:2906"
    """``host:port``; ``:port`` (no host) means every interface. IPv6 hosts in brackets: ``[::1]:2906``."""
    admin_api_key: str | None = None
    max_body_mb: float = Field(default=10.0, gt=0, le=1024)
    allow_open_access: bool = False
    """Without ``api_keys`` anyone who reaches the gateway may use it. That is refused on an
    address other than loopback (``serve`` exits, ``check`` reports it) unless this is true."""
    header_timeout: Duration = Field(default=10.0, gt=0)
    """A request's headers must arrive within this, from its first byte (a dribbling client is dropped)."""
    body_timeout: Duration = Field(default=30.0, gt=0)
    """A request's body must arrive within this, from the end of its headers."""
    keep_alive_timeout: Duration = Field(default=75.0, gt=0)
    """An idle client connection is closed after this."""
    max_upstream_response_mb: float = Field(default=32.0, gt=0, le=1024)
    """An upstream answer (or stream) larger than this fails the attempt: the client gets a 502 saying so."""
    shutdown_grace: Duration = Field(default=25.0, ge=0)
    """On SIGTERM: how long requests and streams in flight may take to finish before they are cut."""
    drain_delay: Duration = Field(default=0.0, ge=0)
    """On SIGTERM: how long to keep serving with ``/health/ready`` answering 503 (so a load balancer
    stops sending) before the listener closes and in-flight requests get ``shutdown_grace``."""

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
        """The bind address: ``0.0.0.0`` for ``:port``, an IPv6 address without its brackets."""
        host = self.listen.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") and host.endswith("]") else host or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_upstream_response_bytes(self) -> int:
        return int(self.max_upstream_response_mb * 1024 * 1024)


class LoggingConfig(_Frozen):
    level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_: bool = Field(default=True, alias="json")
    file: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

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
    timeout: Duration | None = Field(default=None, gt=0)
    default_max_tokens: int | None = Field(default=None, gt=0)
    """``max_tokens`` sent when the client gives none, to providers that require one (anthropic:
    unset means ``limits.max_tokens``, else 4096). When set, the balancer also reserves this many
    completion tokens for such requests, for every provider type; only anthropic sends it."""
    responses_api: Literal["translate", "native"] = "translate"
    """``/v1/responses`` requests to this provider: through the chat hub (every type), or sent as
    they are to its own ``/responses`` (type openai only)."""

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

    @model_validator(mode="after")
    def _model_and_url(self) -> "ProviderConfig":
        if self.model is None and not self.models:
            raise ValueError("needs `model` or `models`")
        if self.type == "custom" and self.base_url is None:
            raise ValueError("type custom needs a base_url")
        if self.responses_api == "native" and self.type != "openai":
            raise ValueError("responses_api: native needs type openai (other types are translated)")
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
    timeout: Duration = Field(default=60.0, gt=0)
    interval: Duration = 0.0
    queue: bool = False


class CachePolicy(_Frozen):
    """The exact-match response cache (``app.cache``) and its warming job (``workers.warming``).

    Warming spends upstream calls, so it is off unless ``warm: true``: then entries with at least
    ``warm_min_hits`` hits are refreshed when they have less than ``warm_before`` left to live.
    """

    enabled: bool = False
    ttl_seconds: int = Field(default=300, gt=0)
    warm: bool = False
    warm_min_hits: int = Field(default=3, ge=1)
    warm_before: Duration = 60.0


class CooldownPolicy(_Frozen):
    """How long a key rests after failures (durations)."""

    rate_limited: Duration = 10.0
    error_base: Duration = 1.0
    error_max: Duration = 60.0
    auth: Duration = 300.0


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
    timeout: Duration = Field(default=0.25, gt=0)

    @field_validator("url", "addr", "password", "path")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _fields_for_type(self) -> "RuntimeStorage":
        if self.type == "redis" and not (self.url or self.addr):
            raise ValueError("type redis needs `url` or `addr`")
        # redis-py refuses any other scheme when the store opens, which would stop `serve`.
        if self.type == "redis" and self.url and not re.match(r"^(rediss?|unix)://", self.url):
            raise ValueError("type redis needs a redis://, rediss:// or unix:// url")
        if self.type == "http" and not self.url:
            raise ValueError("type http needs `url` (a webdis endpoint)")
        if self.type == "http" and not re.match(r"^https?://", self.url):
            raise ValueError("type http needs an http:// or https:// url (a webdis endpoint)")
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


class WorkersConfig(_Frozen):
    """Background jobs (arq in ``coo-llm worker`` with Redis; in-process otherwise)."""

    rollup_every: CronPeriod = 60.0
    compact_every: CronPeriod = 60.0
    warm_every: CronPeriod = 60.0
    history: Duration = 3 * 3600.0  # per-minute key history kept by compaction
    max_jobs: int = Field(default=50, gt=0)


class FilesConfig(_Frozen):
    """Uploaded files (the Batch API's input, output and error files, ``app.files``). Their metadata
    lives in the runtime store; their bytes in ``path`` (``directory``: one machine) or in the
    runtime store itself (``store``: every machine sees them; at most ``app.files.STORE_MAX_MB`` per
    file). ``auto`` is ``store`` when the runtime store is shared (redis, http), else ``directory``."""

    storage: Literal["auto", "directory", "store"] = "auto"
    path: str = "./data/files"
    max_mb: float = Field(default=100.0, gt=0, le=1024)
    expire_after: Duration = Field(default=30 * 86400.0, gt=0)  # uploads without expires_after (OpenAI: 30 days)


class BatchesConfig(_Frozen):
    """The Batch API (``app.batches``, run by ``workers.batch_pump``)."""

    headroom: float = Field(default=0.2, ge=0, lt=1)
    """Fraction of every key window a batch line leaves free for live requests."""
    max_lines: int = Field(default=50_000, gt=0, le=1_000_000)
    concurrency: int = Field(default=32, gt=0, le=10_000)  # batch lines in flight per worker process
    keep: Duration = Field(default=30 * 86400.0, gt=0)  # how long a finished batch stays retrievable


class ResponsesConfig(_Frozen):
    """``/v1/responses``: how long stored responses (``store``, the default) are kept."""

    store_ttl: Duration = Field(default=30 * 86400.0, gt=0)


class TelemetryConfig(_Frozen):
    """OpenTelemetry traces (``app.telemetry``): off unless ``otlp_endpoint`` (or the standard
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set."""

    otlp_endpoint: str | None = None
    """OTLP/HTTP collector: a base URL (``/v1/traces`` is appended) or the full traces URL."""
    service_name: str = "coo-llm"
    capture_content: bool = False
    """Also record prompts and answers (``gen_ai.input.messages`` / ``gen_ai.output.messages``)."""
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of new traces recorded; a client's ``traceparent`` decision is followed."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return None  # an unset ${VAR} leaves telemetry off
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:4318")
        return value


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
    files: FilesConfig = FilesConfig()
    batches: BatchesConfig = BatchesConfig()
    responses: ResponsesConfig = ResponsesConfig()
    telemetry: TelemetryConfig = TelemetryConfig()

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


def _unknown_key(error: dict) -> str:
    """``unknown key``, with the closest key the model at that level knows, if one is close."""
    known = _known_keys(error["loc"][:-1])
    close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1, cutoff=0.6)
    return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"


def _known_keys(loc: tuple) -> list[str]:
    """The keys (aliases where a field has one) of the model at ``loc`` in ``Settings``, or []."""
    annotation: Any = Settings
    for part in loc:
        model = _model_in(annotation)
        if isinstance(part, int):  # an item of a tuple/list field
            args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
            annotation = args[0] if args else None
        elif model is not None and part in model.model_fields:
            annotation = model.model_fields[part].annotation
        elif model is not None:
            by_alias = [f for f in model.model_fields.values() if f.alias == part]
            annotation = by_alias[0].annotation if by_alias else None
        elif str(part).startswith(("function-", "union[", "tagged-union[")):
            continue  # pydantic's internal step names
        else:
            return []
    model = _model_in(annotation)
    return [field.alias or name for name, field in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class ``annotation`` is, or holds as ``X | None``; None for anything else."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        models = [m for m in map(_model_in, typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


_REASONS = {
    "extra_forbidden": _unknown_key,
    "missing": lambda e: "required",
    "greater_than": lambda e: f"must be > {_num(e['ctx']['gt'])}",
    "greater_than_equal": lambda e: f"must be >= {_num(e['ctx']['ge'])}",
    "less_than_equal": lambda e: f"must be <= {_num(e['ctx']['le'])}",
    "finite_number": lambda e: "must be a finite number",
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


def _check_shape(data: Any) -> None:
    """Raise ``ConfigError`` when ``data`` is nested deeper than ``MAX_DEPTH`` or holds more than
    ``MAX_VALUES`` values. Iterative, and it counts a value reached through two YAML aliases
    twice (as expansion and validation will), so alias bombs and cycles stop here too."""
    pending: list[tuple[Any, int]] = [(data, 0)]
    seen = 0
    while pending:
        node, depth = pending.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError([f"(root): more than {MAX_VALUES} values (YAML aliases counted as often as they are used)"])
        if isinstance(node, (dict, list)):
            if depth >= MAX_DEPTH:
                raise ConfigError([f"(root): nested deeper than {MAX_DEPTH} levels"])
            pending.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))


def _unset_key_variables(data: dict, settings: Settings, environ: dict[str, str] | None) -> list[str]:
    """One warning per provider key whose ``${VAR}`` (no default) is unset or empty: the key is dropped."""
    env = os.environ if environ is None else environ
    warnings: list[str] = []
    for index, (raw, provider) in enumerate(zip(data.get("llm_providers") or (), settings.llm_providers)):
        keys = raw.get("api_keys") if isinstance(raw, dict) else None
        keys = [keys] if isinstance(keys, str) else keys if isinstance(keys, list) else []
        for position, key in enumerate(keys):
            for match in _ENV_PATTERN.finditer(key if isinstance(key, str) else ""):
                if match.group(2) is None and not env.get(match.group(1)):
                    if expand_env(key, env).strip():
                        effect = "sends this key incomplete"
                    elif provider.api_keys:
                        effect = "has one key fewer"
                    else:
                        effect = "has no API keys (its requests fail with 503)"
                    warnings.append(f"llm_providers[{index}].api_keys[{position}]: ${{{match.group(1)}}} is not set, so provider {provider.id} {effect}")
    return warnings


def settings_from_data(data: Any, environ: dict[str, str] | None = None, *, warnings: list[str] | None = None) -> Settings:
    """Validate already-parsed YAML/JSON data (env not yet expanded). ``warnings``, when given,
    receives what is valid but probably unintended (see the module docstring)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["(root): must be a mapping of top-level keys"])
    _check_shape(data)
    used: dict[str, str] = {}
    try:
        settings = Settings.model_validate(expand_env(data, environ, used))
    except ValidationError as error:
        raise ConfigError(_hide_env_values(_readable(error), used)) from None
    problems = _cross_check(settings)
    if problems:
        raise ConfigError(_hide_env_values(problems, used))
    if warnings is not None:
        warnings.extend(_unset_key_variables(data, settings, environ))
    return settings


def _where(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(root)"


def parse_yaml(text: str | bytes) -> Any:
    """The data of one YAML (or JSON) document, bounded by ``MAX_CONFIG_BYTES`` and ``MAX_DEPTH``
    before it is built (building it recurses once per level). Raises ``ConfigError``."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_CONFIG_BYTES:
        raise ConfigError([f"(root): the document has {size} bytes, more than the {MAX_CONFIG_BYTES} a config may have"])
    try:
        depth = 0
        for event in yaml.parse(text, Loader=_YAML_LOADER):  # events: a flat stream, no recursion
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError([f"{_where(event.start_mark)}: nested deeper than {MAX_DEPTH} levels"])
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        where = _where(getattr(error, "problem_mark", None))
        raise ConfigError([f"{where}: not valid YAML ({getattr(error, 'problem', None) or error})"]) from None
    except ValueError as error:  # a scalar Python refuses to build: an int of over 4300 digits, a 13th month
        raise ConfigError([f"(root): not valid YAML (a value cannot be read: {str(error).split(':')[0]})"]) from None


def parse_settings(text: str | bytes, environ: dict[str, str] | None = None, *, warnings: list[str] | None = None) -> Settings:
    """Parse YAML (JSON is YAML too) and validate it."""
    return settings_from_data(parse_yaml(text), environ, warnings=warnings)


def load_settings(path: str | os.PathLike, environ: dict[str, str] | None = None, *, warnings: list[str] | None = None) -> Settings:
    try:
        text = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError([f"{path}: cannot read ({error.strerror})"]) from None
    return parse_settings(text, environ, warnings=warnings)


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
        if field in ("url", "otlp_endpoint") and isinstance(node, str):
            return re.sub(r"//([^@/]*)@", "//****@", node)  # redis://:password@host
        return node

    return walk(data)

