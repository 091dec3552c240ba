"""What tracing costs a request: the real ``Service.answer`` path in one process, tracing off
against on, in the same run.

    python -m bench.telemetry_overhead [--requests 1500] [--rounds 5]

One event loop holds a small aiohttp upstream on 127.0.0.1 (one fixed chat completion); an
OTLP/HTTP receiver in another process counts what it is sent; each request is what the app does around the
service: a ``RequestRecord`` (with its span when on: ``Tracer.request``), the typed body
(``chat_call``), ``Service.answer`` (one upstream attempt over loopback), ``finish``. Modes, run
interleaved for ``--rounds`` rounds so drift hits them alike:

- ``off``: ``open_tracer`` returned None (the default);
- ``off-again``: the same, a second time: the spread between the two is the noise;
- ``on``: the SDK with its batch processor and the real OTLP/HTTP exporter (every trace sampled),
  the final flush inside the timing;
- ``on+content``: ``capture_content`` as well;
- ``on 10%``: ``sample_ratio: 0.1`` (the spans of the other 90% are made but not recorded).

Each cell is the median over rounds of the mean time per request; the table gives ratios to
``off``; logging is off in every mode, so the ratios are the upper bound of what tracing adds
to a request. ``hooks`` times the off-path checks alone (the four ``record.trace is None`` tests a
request passes), as a share of an ``off`` request.

    python -m bench.telemetry_overhead --loopback [--requests 1000] [--rounds 5]

The whole gateway instead: two ``coo-llm serve`` processes (telemetry off, and on with every
trace sampled) in front of the same upstream process, the OTLP receiver in a third; one client
sends ``--requests`` sequential chat requests on a kept-alive connection to each in turn per
round. Reported per mode: the gateway's CPU time per request (its whole process tree, read from
``/proc``, the exporter's thread included) and the client's wall time per request, as medians
over rounds, with their ratios to ``off``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
import timeit

import orjson
from aiohttp import web
from loguru import logger

from app.accounting import RequestRecord, finish
from app.auth import Principal
from app.config import settings_from_data
from app.routes.chat import chat_call
from app.service import Service
from app.telemetry import open_tracer
from app.upstream import UpstreamClient
from storage import open_store

ANSWER = orjson.dumps({
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "a short answer of a few words"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
})
BODY = orjson.dumps({"model": "gpt-bench", "messages": [{"role": "user", "content": "say something short"}], "max_tokens": 32, "temperature": 0.2})
PRINCIPAL = Principal("ck-bench000")
HEADERS: dict[str, str] = {}  # a client that sends no traceparent: the sampler decides


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


class Mode:
    def __init__(self, name: str, service: Service, tracer) -> None:
        self.name, self.service, self.tracer = name, service, tracer
        self.times: list[float] = []

    async def run(self, requests: int) -> None:
        service, tracer = self.service, self.tracer
        started = time.perf_counter()
        for number in range(requests):
            record = RequestRecord(f"req_{number}", route="/v1/chat/completions")
            if tracer is not None:
                record.trace = tracer.request(HEADERS, record, method="POST", route="/v1/chat/completions")
            await service.answer(chat_call(BODY, PRINCIPAL), record)
            record.status = 200
            finish(record)
        if tracer is not None:
            await asyncio.to_thread(tracer.provider.force_flush)
        self.times.append((time.perf_counter() - started) / requests)


def hooks_seconds() -> float:
    """The off path's added work per request: four ``is None`` tests of ``record.trace``."""
    record = RequestRecord("req_hooks")
    loops = 1_000_000
    test = timeit.timeit("record.trace is None; record.trace is None; record.trace is None; record.trace is None", globals={"record": record}, number=loops)
    empty = timeit.timeit("pass", number=loops)
    return max(0.0, test - empty) / loops


def receive_traces(port_out, totals) -> None:
    """The OTLP/HTTP receiver, in its own process (it must not run on the measured loop)."""

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        with totals.get_lock():
            totals[0] += 1
            totals[1] += len(body)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def run() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", traces)
        _, port = await serve(app)
        port_out.put(port)
        await asyncio.Event().wait()

    asyncio.run(run())


async def main(requests: int, rounds: int) -> None:
    logger.remove()  # no log sink: the access line would cost every mode alike and blur the ratios

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json")

    upstream_app = web.Application()
    upstream_app.router.add_post("/v1/chat/completions", chat)
    upstream_runner, upstream_port = await serve(upstream_app)
    ports, totals = multiprocessing.Queue(), multiprocessing.Array("d", 2)
    receiver = multiprocessing.Process(target=receive_traces, args=(ports, totals), daemon=True)
    receiver.start()
    otlp_port = ports.get(timeout=20)

    def settings(**telemetry):
        return settings_from_data({
            "llm_providers": [{"id": "bench", "type": "openai", "api_keys": ["sk-bench-0123456789abcdef"], "base_url": f"http://127.0.0.1:{upstream_port}", "models": ["gpt-bench"]}],
            "policy": {"algorithm": "round_robin"},
            "telemetry": {"otlp_endpoint": f"http://127.0.0.1:{otlp_port}", **telemetry},
        })

    store = open_store(settings().storage.runtime)
    client = UpstreamClient()
    await client.start()
    service = Service(settings(), store, client)
    environ: dict[str, str] = {}
    on = open_tracer(settings(), redactor=service.redactor, environ=environ)
    content = open_tracer(settings(capture_content=True), redactor=service.redactor, environ=environ)
    sampled = open_tracer(settings(sample_ratio=0.1), redactor=service.redactor, environ=environ)
    modes = [
        Mode("off", service, None),
        Mode("off-again", service, None),
        Mode("on", service, on),
        Mode("on+content", service, content),
        Mode("on 10%", service, sampled),
    ]
    for mode in modes:  # warm-up: connections, caches, first-call imports
        await mode.run(min(200, requests))
        mode.times.clear()
    for round_number in range(rounds):
        for mode in modes if round_number % 2 == 0 else reversed(modes):
            await mode.run(requests)
    for tracer in (on, content, sampled):
        await asyncio.to_thread(tracer.close)
    await client.close()
    await store.close()
    await upstream_runner.cleanup()
    receiver.terminate()
    receiver.join(5)

    base = statistics.median(modes[0].times)
    print(f"{requests} requests x {rounds} rounds per mode; median of the per-round mean time per request")
    print(f"{'mode':<12} {'us/request':>11} {'ratio to off':>13}")
    for mode in modes:
        median = statistics.median(mode.times)
        print(f"{mode.name:<12} {median * 1e6:>11.1f} {median / base:>13.3f}")
    hooks = hooks_seconds()
    print(f"hooks (off): {hooks * 1e9:.0f} ns per request = {hooks / base:.5%} of an off request")
    print(f"exported: {int(totals[0])} OTLP requests, {totals[1] / 1e6:.1f} MB")


def serve_answers(port_out) -> None:
    """The upstream for ``--loopback``, in its own process."""

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json")

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        _, port = await serve(app)
        port_out.put(port)
        await asyncio.Event().wait()

    asyncio.run(run())


def loopback(requests: int, rounds: int) -> None:
    import http.client
    import sys
    import tempfile
    from pathlib import Path

    import yaml

    from bench.procs import Service as Process, free_port, http_ok

    ports, totals = multiprocessing.Queue(), multiprocessing.Array("d", 2)
    helpers = [multiprocessing.Process(target=serve_answers, args=(ports,), daemon=True)]
    helpers[0].start()
    upstream_port = ports.get(timeout=20)
    helpers.append(multiprocessing.Process(target=receive_traces, args=(ports, totals), daemon=True))
    helpers[1].start()
    otlp_port = ports.get(timeout=20)
    workdir = Path(tempfile.mkdtemp(prefix="telemetry-bench-"))
    gateways: dict[str, tuple[Process, int]] = {}
    try:
        for name, telemetry in (("off", {}), ("on", {"otlp_endpoint": f"http://127.0.0.1:{otlp_port}"})):
            port = free_port()
            config = {
                "server": {"listen": f"127.0.0.1:{port}"},
                "logging": {"level": "INFO", "json": True},
                "llm_providers": [{"id": "bench", "type": "openai", "api_keys": ["sk-bench-0123456789abcdef"], "base_url": f"http://127.0.0.1:{upstream_port}", "models": ["gpt-bench"]}],
                "api_keys": [{"key": "bench-client-key"}],
                "policy": {"algorithm": "round_robin"},
                "telemetry": telemetry,
            }
            path = workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config))
            command = [sys.executable, "-m", "app.cli", "serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
            process = Process(name, command, cpus=None, log_path=workdir / f"{name}.log", env={"OTEL_BSP_SCHEDULE_DELAY": "200"})
            gateways[name] = (process.start(http_ok(port, "/health/live")), port)
        headers = {"authorization": "Bearer bench-client-key", "content-type": "application/json"}
        cpu: dict[str, list[float]] = {name: [] for name in gateways}
        wall: dict[str, list[float]] = {name: [] for name in gateways}

        def run(name: str, count: int) -> None:
            process, port = gateways[name]
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            before = process.cpu_seconds()
            started = time.perf_counter()
            for _ in range(count):
                connection.request("POST", "/v1/chat/completions", body=BODY, headers=headers)
                response = connection.getresponse()
                response.read()
                assert response.status == 200, response.status
            elapsed = time.perf_counter() - started
            connection.close()
            time.sleep(0.5)  # the last batch of spans leaves (OTEL_BSP_SCHEDULE_DELAY=200ms); both modes wait alike
            cpu[name].append((process.cpu_seconds() - before) / count)
            wall[name].append(elapsed / count)

        for name in gateways:
            run(name, min(300, requests))  # warm-up
            cpu[name].clear()
            wall[name].clear()
        for round_number in range(rounds):
            for name in gateways if round_number % 2 == 0 else reversed(list(gateways)):
                run(name, requests)
    finally:
        for process, _ in gateways.values():
            process.stop()
        for helper in helpers:
            helper.terminate()
            helper.join(5)
    base_cpu, base_wall = statistics.median(cpu["off"]), statistics.median(wall["off"])
    print(f"{requests} sequential requests x {rounds} rounds per gateway; medians over rounds")
    print(f"{'gateway':<8} {'CPU us/req':>11} {'ratio':>7} {'wall us/req':>12} {'ratio':>7}")
    for name in gateways:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(f"{name:<8} {c * 1e6:>11.1f} {c / base_cpu:>7.3f} {w * 1e6:>12.1f} {w / base_wall:>7.3f}")
    print(f"exported: {int(totals[0])} OTLP requests, {totals[1] / 1e6:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loopback", action="store_true", help="two real gateways over loopback instead of the in-process path")
    args = parser.parse_args()
    if args.loopback:
        loopback(args.requests, args.rounds)
    else:
        asyncio.run(main(args.requests, args.rounds))
