"""The ``coo-llm`` command: ``serve``, ``check``, ``worker``, ``warm`` and ``prices``.

``--config`` defaults to ``$COO_CONFIG``, then ``configs/config.yaml``.

Exit status: 0 done; 1 the config is invalid, or this machine cannot run it (``app.preflight``:
``serve`` refuses to start rather than fail later); 2 the command does not apply to this config
(``worker`` without Redis, ``warm`` without shared storage or with the cache off). ``check`` runs
the same checks ``serve`` does, on the address ``serve`` would use (``--host``/``--port`` as for
``serve``); its warnings (an unset provider key variable, a port in use) fail it under ``--strict``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from functools import partial

from loguru import logger

from app.config import PROVIDER_KEY_ENV, ConfigError, Settings, load_settings
from app.preflight import address, bind_problem, preflight

DEFAULT_CONFIG = "configs/config.yaml"


def _print_problems(header: str, problems: list[str]) -> None:
    print(header, file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def _load_or_exit(path: str) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as error:
        _print_problems(f"{path}: invalid configuration", error.problems)
        raise SystemExit(1) from None


def _preflight_or_exit(settings: Settings, *, command: str, config: str, listen: tuple[str, int] | None = None) -> None:
    """Exit 1 naming what ``app.preflight`` finds this machine lacks to run ``settings``."""
    errors = preflight(settings, listen=listen, starting=True).errors
    if errors:
        _print_problems(f"coo-llm {command}: cannot start with {config}", errors)
        raise SystemExit(1)


def _listen(args: argparse.Namespace, settings: Settings) -> tuple[str, int]:
    """The address ``serve`` binds: ``--host``/``--port`` over ``server.listen``."""
    return args.host or settings.server.host, args.port or settings.server.port


def build_app(config_path: str):
    """Sanic app factory, run once per web process (it must be importable for spawned workers)."""
    from app.server import create_app
    from app.logging import setup_logging

    settings = load_settings(config_path)
    setup_logging(settings.logging)
    app = create_app(settings)
    app.ctx.config_path = config_path  # what a reload (SIGHUP, POST /admin/v1/config/reload) reads again
    return app


def describe(settings: Settings) -> None:
    """Log what this gateway will serve, and say plainly which providers cannot serve."""
    for provider in settings.llm_providers:
        models = ", ".join(provider.all_models)
        if provider.api_keys:
            logger.info(f"provider {provider.id} ({provider.kind}): {len(provider.api_keys)} key(s), models: {models}")
        else:
            hint = PROVIDER_KEY_ENV.get(provider.kind)
            extra = f" (set {hint})" if hint else ""
            logger.warning(f"provider {provider.id} ({provider.kind}) has NO API keys{extra}; requests for it fail with 503")
    if not settings.llm_providers:
        logger.warning("no llm_providers configured: every chat request will fail with 404")
    if not settings.api_keys:
        logger.warning("OPEN ACCESS: no api_keys configured, any client can use this gateway and its provider keys")
    if settings.server.admin_api_key is None:
        logger.info("admin API disabled (server.admin_api_key not set)")


def cmd_serve(args: argparse.Namespace) -> int:
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from app.logging import setup_logging

    settings = _load_or_exit(args.config)
    host, port = _listen(args, settings)
    _preflight_or_exit(settings, command="serve", config=args.config, listen=(host, port))
    setup_logging(settings.logging)
    workers = max(1, args.workers)
    if workers > 1 and settings.storage.runtime.type == "memory":
        logger.warning(
            f"--workers {workers} with memory storage: every process keeps its own rate windows, "
            f"so each key may receive up to {workers}x its limits. Use storage.runtime.type: redis for exact limits."
        )
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="coo-llm-metrics-")
    describe(settings)
    logger.info(f"coo-llm listening on http://{address(host, port)} with {workers} worker(s), config {args.config}")
    from app.lifecycle import WORKERS_ENV, forward_reloads
    from app.protocol import TimedProtocol

    os.environ[WORKERS_ENV] = str(workers)  # inherited by the worker processes
    # Until each process installs its reload handler, a SIGHUP is ignored rather than fatal
    # (ignored signals stay ignored in the worker processes this one starts).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    loader = AppLoader(factory=partial(build_app, os.path.abspath(args.config)))
    app = loader.load()
    if workers > 1:
        app.main_process_ready(forward_reloads)

    app.prepare(host=host, port=port, workers=workers, single_process=workers == 1, motd=False, access_log=False, protocol=TimedProtocol)
    if workers == 1:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the config and what ``serve`` needs to run it; exit 0 valid, 1 invalid."""
    warnings: list[str] = []
    try:
        settings = load_settings(args.config, warnings=warnings)
    except ConfigError as error:
        _print_problems(f"{args.config}: invalid", error.problems)
        return 1
    found = preflight(settings, listen=_listen(args, settings), starting=False)
    warnings += found.warnings
    if found.errors or (args.strict and warnings):
        header = f"{args.config}: invalid" + (" (--strict: warnings count as errors)" if args.strict and warnings else "")
        _print_problems(header, found.errors + [f"warning: {w}" for w in warnings])
        return 1
    for warning in warnings:
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    keys = sum(len(p.api_keys) for p in settings.llm_providers)
    print(f"{args.config}: valid ({len(settings.llm_providers)} provider(s), {keys} provider key(s), {len(settings.api_keys)} client key(s))")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the arq worker: queue-backed retries and the roll-up, compaction and warming crons."""
    import asyncio

    from app.logging import setup_logging

    settings = _load_or_exit(args.config)
    _preflight_or_exit(settings, command="worker", config=args.config)
    setup_logging(settings.logging)
    if settings.storage.runtime.type != "redis":
        print(
            f"coo-llm worker: storage.runtime.type is {settings.storage.runtime.type!r}; workers share jobs through Redis. "
            "Without Redis the jobs run inside each `coo-llm serve` process, so no worker is needed.",
            file=sys.stderr,
        )
        return 2
    from workers.settings import run_worker

    port = args.metrics_port if args.metrics_port is not None else int(os.environ.get("COO_WORKER_METRICS_PORT") or 0)
    problem = bind_problem(args.metrics_host, port, where="--metrics-host/--metrics-port")[0] if port else None
    if problem:  # now, as a clear message, rather than as a traceback from the metrics server
        print(f"coo-llm worker: cannot start: {problem}", file=sys.stderr)
        return 1
    logger.info(f"coo-llm worker starting (config {args.config}" + (f", metrics on http://{address(args.metrics_host, port)}/metrics" if port else "") + ")")
    asyncio.run(run_worker(settings, metrics_port=port or None, metrics_host=args.metrics_host))
    logger.info("coo-llm worker stopped")
    return 0


def namespace_principal(settings: Settings, namespace: str):
    """Whom ``coo-llm warm`` answers as: the first client key with that cache namespace (so the
    warmed entries cover exactly the providers that key may use), or anyone on an open gateway."""
    from app.auth import ANONYMOUS, client_key_id, principal_for

    for client in settings.api_keys:
        if namespace in (client.cache_namespace, client_key_id(client.key)):
            return principal_for(client)
    return ANONYMOUS if not settings.api_keys and namespace == ANONYMOUS.id else None


def warm_storage_note(runtime) -> tuple[bool, str]:
    """Whether ``coo-llm warm`` can reach a gateway's cache through ``runtime`` (a
    ``RuntimeStorage``), and what to tell the user about it.

    memory: no. The entries would live in the warm command's own memory and die with it.
    file: yes. The cache lives in the SQLite file, and a gateway reads it there on every lookup
    (``storage.file``), so a gateway on the same file serves the entries whether it runs now or
    starts later. Rate windows live in each process's memory, though: the warm command's upstream
    calls are not counted in a running gateway's windows.
    redis, http: yes, the cache is shared.
    """
    if runtime.type == "memory":
        return False, (
            "storage.runtime.type is memory: the warmed entries would live in this command's own memory and vanish when it "
            "exits; a running gateway (another process) would never see them. Warming needs a cache the gateway shares: "
            "storage.runtime.type redis or http, or file (the gateway reads its cache from the same SQLite file)."
        )
    if runtime.type == "file":
        return True, (
            f"writing into {os.path.abspath(runtime.path)}: a gateway using this SQLite file reads its cache from it, so it "
            "serves these entries, running or not (mind relative paths: they resolve from each process's folder). This "
            "command's upstream calls count in its own rate windows, not in a running gateway's."
        )
    return True, ""


def cmd_warm(args: argparse.Namespace) -> int:
    """Pre-warm the response cache from a JSONL file of chat requests (one OpenAI request body a line)."""
    import asyncio

    from app.errors import GatewayError
    from app.logging import setup_logging

    settings = _load_or_exit(args.config)
    if not settings.policy.cache.enabled:
        print("coo-llm warm: policy.cache.enabled is false; nothing would ever read the warmed entries.", file=sys.stderr)
        return 2
    shared, note = warm_storage_note(settings.storage.runtime)
    if not shared:
        print(f"coo-llm warm: {note}", file=sys.stderr)
        return 2
    if not os.path.isfile(args.file):
        print(f"coo-llm warm: {args.file} is not a readable file", file=sys.stderr)
        return 2
    _preflight_or_exit(settings, command="warm", config=args.config)
    setup_logging(settings.logging)
    if note:
        print(f"coo-llm warm: {note}", file=sys.stderr)
    from app.routes.chat import chat_call

    principal = namespace_principal(settings, args.namespace)
    if principal is None:
        print(f"coo-llm warm: no client key has the cache namespace {args.namespace!r} (a cache_namespace or a ck-... id)", file=sys.stderr)
        return 2
    calls, bad = [], 0
    with open(args.file, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                call = chat_call(line, principal)
            except GatewayError as error:
                print(f"{args.file}:{number}: skipped ({error.message})", file=sys.stderr)
                bad += 1
                continue
            if call.stream:
                call.body = {k: v for k, v in call.body.items() if k not in ("stream", "stream_options")}
                call.stream = call.include_usage = False
            calls.append(call)

    async def run() -> dict:
        from workers.context import open_context
        from workers.warming import prewarm

        job = await open_context(settings)
        try:
            return await prewarm(job, calls, ttl=args.ttl)
        finally:
            await job.close()

    result = asyncio.run(run())
    print(f"warmed {result['warmed']}, failed {result['failed']}, skipped {bad} (namespace {args.namespace})")
    return 0 if not result["failed"] and not bad else 1


PRICE_FIELDS = (("input", "input"), ("cached_input", "cached input"), ("cache_write", "cache write"), ("output", "output"), ("reasoning", "reasoning"))


def per_million_line(price) -> str:
    """``input 2.5, cached input 1.25, output 10``: a ``Price``'s set rates in USD per 1M tokens."""
    parts = [f"{label} {getattr(price, name) * 1e6:.6g}" for name, label in PRICE_FIELDS if getattr(price, name) is not None]
    return ", ".join(parts)


def cmd_prices(args: argparse.Namespace) -> int:
    """Print the prices the gateway would charge for MODEL on each provider serving it, and their source."""
    from balancer.catalog import Catalog, ForbiddenModel, UnknownModel
    from balancer.pricing import genai_prices_version

    settings = _load_or_exit(args.config)
    catalog = Catalog(settings)
    providers = {provider.id: provider for provider in settings.llm_providers}
    if args.provider is not None:
        if args.provider not in providers:
            print(f"coo-llm prices: no provider {args.provider!r} in {args.config}", file=sys.stderr)
            return 2
        pairs = [(args.provider, args.model)]
    else:
        try:
            pairs = list(dict.fromkeys((t.provider_id, t.model) for t in catalog.resolve(args.model, lambda _: True)))
        except (UnknownModel, ForbiddenModel):  # listed nowhere: what each configured provider would charge
            pairs = [(provider_id, args.model) for provider_id in providers]
            if pairs:
                print(f"{args.model} is listed by no provider or alias; each provider's price for provider_id:{args.model}:")
    if not pairs:
        print(f"coo-llm prices: {args.config} configures no llm_providers", file=sys.stderr)
        return 1
    known = 0
    genai_used = False
    for provider_id, model in pairs:
        quote = catalog.prices.quote(provider_id, model)
        print(f"{provider_id} ({providers[provider_id].kind}) {model}")
        if quote.price is None:
            index = list(providers).index(provider_id)
            print(f"  price unknown: its cost is recorded as null (set llm_providers[{index}].pricing to price it)")
        else:
            known += 1
            print(f"  USD per 1M tokens: {per_million_line(quote.price)}")
            for start, tier in quote.price.tiers:
                print(f"  prompts over {start} tokens: {per_million_line(tier)}")
        print(f"  source: {quote.source}")
        genai_used = genai_used or quote.source.startswith("genai-prices")
    if genai_used:
        print(f"genai-prices {genai_prices_version()}: the data bundled with the installed package (never fetched)")
    return 0 if known else 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="coo-llm", description="OpenAI-compatible LLM API gateway")
    commands = root.add_subparsers(dest="command", required=True)
    default_config = os.environ.get("COO_CONFIG") or DEFAULT_CONFIG

    serve = commands.add_parser("serve", help="run the gateway's web process(es)")
    serve.add_argument("--config", default=default_config, help=f"YAML config (default: $COO_CONFIG or {DEFAULT_CONFIG})")
    serve.add_argument("--host", default=None, help="bind address (default: from server.listen)")
    serve.add_argument("--port", type=int, default=None, help="port (default: from server.listen)")
    serve.add_argument("--workers", type=int, default=1, help="web processes (default 1)")
    serve.set_defaults(run=cmd_serve)

    check = commands.add_parser("check", help="validate a config and what serve needs to run it; exit 0 if valid, 1 if not")
    check.add_argument("--config", default=default_config)
    check.add_argument("--host", default=None, help="check the bind address serve would get with this --host")
    check.add_argument("--port", type=int, default=None, help="check the port serve would get with this --port")
    check.add_argument("--strict", action="store_true", help="warnings (e.g. an unset provider key variable) are errors: exit 1")
    check.set_defaults(run=cmd_check)

    worker = commands.add_parser("worker", help="run background jobs (arq; needs storage.runtime.type: redis)")
    worker.add_argument("--config", default=default_config)
    worker.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port (default: $COO_WORKER_METRICS_PORT, else off)")
    worker.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics server (default 127.0.0.1; 0.0.0.0 for every interface)")
    worker.set_defaults(run=cmd_worker)

    warm = commands.add_parser("warm", help="pre-warm the response cache from a JSONL file of chat requests")
    warm.add_argument("file", help="one OpenAI chat request body per line")
    warm.add_argument("--config", default=default_config)
    warm.add_argument("--namespace", default="anonymous", help="cache namespace to warm: a client key's cache_namespace or its id (ck-...); default anonymous (open access)")
    warm.add_argument("--ttl", type=float, default=None, help="seconds the entries live (default policy.cache.ttl_seconds)")
    warm.set_defaults(run=cmd_warm)

    prices = commands.add_parser("prices", help="show what MODEL costs on each provider serving it and where the price comes from; exit 1 if no price is known")
    prices.add_argument("model", help="a model name, alias or provider_id:model; one listed nowhere is priced on every configured provider")
    prices.add_argument("--provider", default=None, help="only this provider id (MODEL is then its upstream model name)")
    prices.add_argument("--config", default=default_config)
    prices.set_defaults(run=cmd_prices)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
