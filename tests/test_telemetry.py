"""OpenTelemetry traces (``app.telemetry``).

In-process: the real ``Service`` against the fake upstream, its spans caught by the SDK's
in-memory exporter. Out of process: a real ``coo-llm serve`` exporting over OTLP/HTTP to a small
aiohttp receiver in this test (protobuf decoded with ``opentelemetry-proto``), driven by the
official ``openai`` SDK.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import orjson
import pytest
from aiohttp import web

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from app.accounting import RequestRecord, finish  # noqa: E402
from app.auth import Principal  # noqa: E402
from app.config import ConfigError, settings_from_data  # noqa: E402
from app.routes.chat import chat_call  # noqa: E402
from app.routes.embeddings import embeddings_call  # noqa: E402
from app.routes.messages import messages_call  # noqa: E402
from app.service import Service  # noqa: E402
from app.telemetry import endpoint_from, open_tracer  # noqa: E402
from app.upstream import UpstreamClient  # noqa: E402
from fakeupstream import Step  # noqa: E402
from gateway import ROOT, config, provider  # noqa: E402
from storage import open_store  # noqa: E402

PROVIDER_KEYS = ["sk-tele-one-0123456789abcdef", "sk-tele-two-0123456789abcdef"]
CLIENT_KEY = "ck-secret-client-key-0123456789"
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"


def gateway_config(upstream_url: str, **extra) -> dict:
    return config(
        [
            provider("tele", upstream_url, PROVIDER_KEYS, models=["gpt-tele", "emb-tele"], pricing={"input_token_cost": 0.001, "output_token_cost": 0.002}),
            provider("claude", upstream_url, ["sk-ant-tele-0123456789abcdef"], type="anthropic", models=["claude-tele"]),
        ],
        client_keys=[{"key": CLIENT_KEY}],
        **extra,
    )


def header(call, name: str) -> str | None:
    """A header the fake upstream received, whatever its case."""
    return next((value for key, value in call.headers.items() if key.lower() == name), None)


def traceparent_parts(value: str) -> tuple[str, str, str]:
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16
    return trace_id, span_id, flags


# --------------------------------------------------------------------------- in process


class InProcess:
    """The real service path with an in-memory span exporter: ``run`` drives one request the
    way the app does (span at the start, the call, ``finish`` at the end)."""

    def __init__(self, upstream_url: str, *, capture_content: bool = False, cache: bool = False, sample_ratio: float = 1.0) -> None:
        policy = {"cache": {"enabled": True}} if cache else None
        telemetry = {"capture_content": capture_content, "sample_ratio": sample_ratio}
        self.settings = settings_from_data(gateway_config(upstream_url, policy=policy, telemetry=telemetry))
        self.exporter = InMemorySpanExporter()

    async def __aenter__(self) -> "InProcess":
        self.store = open_store(self.settings.storage.runtime)
        self.upstream = UpstreamClient()
        await self.upstream.start()
        self.service = Service(self.settings, self.store, self.upstream)
        self.tracer = open_tracer(self.settings, redactor=self.service.redactor, exporter=self.exporter)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.service.close()
        await self.upstream.close()
        await self.store.close()
        self.tracer.close()

    def record(self, route: str, headers: dict | None = None) -> RequestRecord:
        record = RequestRecord("req_test", route=route)
        record.client = "ck-0000abcd"
        record.trace = self.tracer.request(headers or {}, record, method="POST", route=route)
        return record

    async def unary(self, call, headers: dict | None = None):
        record = self.record("/v1/chat/completions", headers)
        try:
            result = await self.service.answer(call, record)
            record.status = 200
            return result
        except Exception:
            record.status = 500
            raise
        finally:
            finish(record)

    def spans(self):
        return list(self.exporter.get_finished_spans())


PRINCIPAL = Principal("ck-0000abcd")


def chat_body(text: str, **extra) -> bytes:
    return orjson.dumps({"model": "gpt-tele", "messages": [{"role": "user", "content": text}], **extra})


def test_a_unary_chat_is_a_server_span_with_one_client_span_per_attempt(fake):
    fake.script(PROVIDER_KEYS[0], Step(prompt_tokens=11, completion_tokens=7))

    async def scenario():
        async with InProcess(fake.url) as gw:
            call = chat_call(chat_body("hi", max_tokens=50, temperature=0.25, top_p=0.5), PRINCIPAL)
            await gw.unary(call, headers={"traceparent": CLIENT_TRACEPARENT, "tracestate": "vendor=abc"})
            return gw.spans()

    spans = asyncio.run(scenario())
    [attempt] = [s for s in spans if s.kind is SpanKind.CLIENT]
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.name == "chat gpt-tele" and attempt.name == "chat gpt-tele"
    assert format(request.context.trace_id, "032x") == CLIENT_TRACE_ID
    assert format(request.parent.span_id, "016x") == CLIENT_SPAN_ID and request.parent.is_remote
    assert attempt.parent.span_id == request.context.span_id and attempt.context.trace_id == request.context.trace_id
    a = attempt.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-tele" and a["gen_ai.response.model"] == "gpt-tele"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (11, 7)
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.temperature"], a["gen_ai.request.top_p"]) == (50, 0.25, 0.5)
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["gen_ai.response.id"].startswith("chatcmpl-")
    assert (a["server.address"], a["server.port"]) == ("127.0.0.1", fake.port)
    assert (a["coo_llm.key"], a["coo_llm.attempt"], a["coo_llm.provider.id"]) == ("tele#1", 1, "tele")
    r = request.attributes
    assert "gen_ai.usage.input_tokens" not in r  # usage is counted once per trace: on the attempts
    assert r["gen_ai.provider.name"] == "openai" and r["coo_llm.attempts"] == 1 and r["http.response.status_code"] == 200
    assert r["coo_llm.cost_usd"] == pytest.approx((11 * 0.001 + 7 * 0.002) / 1000) and r["coo_llm.request_id"] == "req_test"
    assert "gen_ai.input.messages" not in r and "gen_ai.output.messages" not in r  # content is opt-in
    # The upstream got the attempt span's context, and the client's tracestate.
    [sent] = fake.requests
    trace_id, span_id, flags = traceparent_parts(header(sent, "traceparent"))
    assert (trace_id, span_id, flags) == (CLIENT_TRACE_ID, format(attempt.context.span_id, "016x"), "01")
    assert header(sent, "tracestate") == "vendor=abc"
    assert header(sent, "authorization") == f"Bearer {PROVIDER_KEYS[0]}"  # the key's own headers are intact


def test_a_failover_has_the_failed_attempt_with_its_error_type(fake):
    fake.script(PROVIDER_KEYS[0], Step(status=500))

    async def scenario():
        async with InProcess(fake.url) as gw:
            await gw.unary(chat_call(chat_body("fail over"), PRINCIPAL))
            return gw.spans()

    spans = asyncio.run(scenario())
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.attributes["coo_llm.attempt"])
    assert [s.attributes["coo_llm.key"] for s in attempts] == ["tele#1", "tele#2"]
    failed, served = attempts
    assert failed.attributes["error.type"] == "server_error" and failed.attributes["http.response.status_code"] == 500
    assert failed.status.status_code is StatusCode.ERROR
    assert "error.type" not in served.attributes and served.status.status_code is StatusCode.UNSET
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.parent is None  # no client traceparent: a new trace
    assert request.attributes["coo_llm.attempts"] == 2 and "error.type" not in request.attributes
    sent = [header(r, "traceparent") for r in fake.requests]
    assert [traceparent_parts(t)[1] for t in sent] == [format(s.context.span_id, "016x") for s in attempts]


def test_a_stream_attempt_span_ends_when_the_relay_closes(fake):
    fake.script(PROVIDER_KEYS[0], Step(chunks=3, prompt_tokens=5, completion_tokens=3))

    async def scenario():
        async with InProcess(fake.url, capture_content=True) as gw:
            call = chat_call(chat_body("stream it", stream=True, stream_options={"include_usage": True}), PRINCIPAL)
            record = gw.record("/v1/chat/completions")
            relay = await gw.service.open_stream(call, record)
            open_before = [s.name for s in gw.spans()]
            async with relay:
                pieces = [piece async for piece in relay]
            return open_before, pieces, gw.spans()

    open_before, pieces, spans = asyncio.run(scenario())
    assert open_before == []  # the stream's first frame exists, its attempt is still running
    assert pieces and pieces[-1].endswith(b"data: [DONE]\n\n")
    [attempt] = [s for s in spans if s.kind is SpanKind.CLIENT]
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert attempt.end_time <= request.end_time
    assert (attempt.attributes["gen_ai.usage.input_tokens"], attempt.attributes["gen_ai.usage.output_tokens"]) == (5, 3)
    assert request.attributes["coo_llm.stream"] is True
    output = json.loads(request.attributes["gen_ai.output.messages"])
    assert output == [{"role": "assistant", "parts": [{"type": "text", "content": "echo: stream it"}], "finish_reason": "stop"}]
    assert json.loads(request.attributes["gen_ai.input.messages"]) == [{"role": "user", "parts": [{"type": "text", "content": "stream it"}]}]


def test_a_stream_that_breaks_after_its_first_frame_is_an_error_on_both_spans(fake):
    fake.script(PROVIDER_KEYS[0], Step(chunks=6, drop_after=3))

    async def scenario():
        async with InProcess(fake.url) as gw:
            record = gw.record("/v1/chat/completions")
            relay = await gw.service.open_stream(chat_call(chat_body("break", stream=True), PRINCIPAL), record)
            async with relay:
                pieces = [piece async for piece in relay]
            return pieces, gw.spans()

    pieces, spans = asyncio.run(scenario())
    assert b"stream_interrupted" in pieces[-1]  # the client got the error frame
    [attempt] = [s for s in spans if s.kind is SpanKind.CLIENT]
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert attempt.attributes["error.type"] == request.attributes["error.type"] == "connect"
    assert attempt.status.status_code is request.status.status_code is StatusCode.ERROR


def test_content_capture_records_messages_in_the_conventions_schema_without_secrets(fake):
    async def scenario():
        async with InProcess(fake.url, capture_content=True) as gw:
            body = {
                "model": "gpt-tele",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": f"my key is {PROVIDER_KEYS[1]}"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "found"},
                ],
            }
            await gw.unary(chat_call(orjson.dumps(body), PRINCIPAL))
            return gw.spans()

    [request] = [s for s in asyncio.run(scenario()) if s.kind is SpanKind.SERVER]
    messages = json.loads(request.attributes["gen_ai.input.messages"])
    assert messages[0] == {"role": "system", "parts": [{"type": "text", "content": "be brief"}]}
    assert messages[1]["parts"][1] == {"type": "image_url"}  # by type only
    assert "[redacted]" in messages[1]["parts"][0]["content"] and PROVIDER_KEYS[1] not in request.attributes["gen_ai.input.messages"]
    assert messages[2] == {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": {"q": 1}}]}
    assert messages[3] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "found"}]}
    [output] = json.loads(request.attributes["gen_ai.output.messages"])
    assert output["role"] == "assistant" and output["finish_reason"] == "stop" and output["parts"][0]["type"] == "text"


def test_anthropic_messages_and_embeddings_get_their_operations(fake):
    async def scenario():
        async with InProcess(fake.url) as gw:
            body = {"model": "claude-tele", "max_tokens": 64, "top_k": 3, "messages": [{"role": "user", "content": "hello"}]}
            await gw.unary(messages_call(body, PRINCIPAL, {}))
            await gw.unary(embeddings_call(orjson.dumps({"model": "emb-tele", "input": ["a", "b"], "encoding_format": "float"}), PRINCIPAL))
            return gw.spans()

    spans = asyncio.run(scenario())
    by_name = {(s.name, s.kind): s for s in spans}
    message = by_name[("chat claude-tele", SpanKind.CLIENT)].attributes
    assert message["gen_ai.provider.name"] == "anthropic" and message["gen_ai.request.max_tokens"] == 64 and message["gen_ai.request.top_k"] == 3
    assert tuple(message["gen_ai.response.finish_reasons"]) == ("end_turn",)
    assert message["gen_ai.usage.output_tokens"] > 0
    embeddings = by_name[("embeddings emb-tele", SpanKind.CLIENT)].attributes
    assert embeddings["gen_ai.operation.name"] == "embeddings" and tuple(embeddings["gen_ai.request.encoding_formats"]) == ("float",)
    assert "gen_ai.usage.output_tokens" not in embeddings and embeddings["gen_ai.usage.input_tokens"] > 0
    assert by_name[("embeddings emb-tele", SpanKind.SERVER)].attributes["gen_ai.operation.name"] == "embeddings"


def test_the_responses_api_is_a_chat_operation_with_its_output_read(fake):
    from app.responses_store import ResponseStore
    from app.routes.responses import responses_call

    async def scenario():
        async with InProcess(fake.url, capture_content=True) as gw:
            body = {"model": "gpt-tele", "instructions": "be kind", "input": "hello there", "max_output_tokens": 40, "store": False}
            await gw.unary(await responses_call(body, PRINCIPAL, ResponseStore.of(gw.service)))
            return gw.spans()

    spans = asyncio.run(scenario())
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    [attempt] = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert request.name == "chat gpt-tele" and request.attributes["gen_ai.operation.name"] == "chat"
    assert attempt.attributes["gen_ai.request.max_tokens"] == 40 and attempt.attributes["gen_ai.response.id"].startswith("resp_")
    assert tuple(attempt.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert json.loads(request.attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be kind"}]},
        {"role": "user", "parts": [{"type": "text", "content": "hello there"}]},
    ]
    [output] = json.loads(request.attributes["gen_ai.output.messages"])
    assert output == {"role": "assistant", "parts": [{"type": "text", "content": "echo: hello there"}], "finish_reason": "stop"}


def test_a_request_that_fails_carries_the_gateway_error_code(fake):
    async def scenario():
        async with InProcess(fake.url) as gw:
            record = gw.record("/v1/chat/completions")
            with pytest.raises(Exception):
                await gw.service.answer(chat_call(orjson.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}), PRINCIPAL), record)
            record.status, record.error = 404, "model_not_found"  # what render_error sets
            finish(record)
            return gw.spans()

    [request] = asyncio.run(scenario())
    assert request.name == "chat nope" and request.attributes["error.type"] == "model_not_found"
    assert request.status.status_code is StatusCode.UNSET  # a client's mistake is not the server's error


def test_a_cache_hit_says_so_and_makes_no_attempt_span(fake):
    async def scenario():
        async with InProcess(fake.url, cache=True) as gw:
            await gw.unary(chat_call(chat_body("cache me"), PRINCIPAL))
            await gw.unary(chat_call(chat_body("cache me"), PRINCIPAL))
            return gw.spans()

    spans = asyncio.run(scenario())
    requests = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.attributes["coo_llm.cache"] for s in requests] == ["miss", "hit"]
    assert requests[1].attributes["coo_llm.cache_hit"] is True and requests[1].attributes["coo_llm.attempts"] == 0
    assert len([s for s in spans if s.kind is SpanKind.CLIENT]) == 1


def test_a_sampled_out_request_records_nothing_but_still_passes_its_context_on(fake):
    async def scenario():
        async with InProcess(fake.url, sample_ratio=0.0) as gw:
            await gw.unary(chat_call(chat_body("not sampled"), PRINCIPAL))
            await gw.unary(chat_call(chat_body("sampled by its client"), PRINCIPAL), headers={"traceparent": CLIENT_TRACEPARENT})
            return gw.spans()

    spans = asyncio.run(scenario())
    assert sorted(s.kind.name for s in spans) == ["CLIENT", "SERVER"]  # only the client's sampled trace
    assert all(format(s.context.trace_id, "032x") == CLIENT_TRACE_ID for s in spans)
    unsampled, sampled = (header(r, "traceparent") for r in fake.requests)
    sampled_bit = lambda value: int(traceparent_parts(value)[2], 16) & 1  # noqa: E731 - bit 1 may say "random"
    assert (sampled_bit(unsampled), sampled_bit(sampled)) == (0, 1)
    assert traceparent_parts(unsampled)[0] != CLIENT_TRACE_ID


# --------------------------------------------------------------------------- off, and config


def test_telemetry_is_off_unless_an_endpoint_is_given(fake):
    settings = settings_from_data(gateway_config(fake.url))
    assert endpoint_from(settings, {}) is None and open_tracer(settings, environ={}) is None
    assert endpoint_from(settings, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) == ""  # the exporter reads it
    assert endpoint_from(settings, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "true"}) is None
    on = settings_from_data(gateway_config(fake.url, telemetry={"otlp_endpoint": "http://collector:4318"}))
    assert endpoint_from(on, {}) == "http://collector:4318/v1/traces"
    full = settings_from_data(gateway_config(fake.url, telemetry={"otlp_endpoint": "https://c.example/otlp/v1/traces"}))
    assert endpoint_from(full, {}) == "https://c.example/otlp/v1/traces"
    with pytest.raises(ConfigError) as caught:
        settings_from_data(gateway_config(fake.url, telemetry={"otlp_endpoint": "collector:4318"}))
    assert "telemetry.otlp_endpoint" in str(caught.value.problems)


def test_credentials_in_the_collector_url_are_masked_in_the_config_dump(fake):
    from app.config import masked_dump

    settings = settings_from_data(gateway_config(fake.url, telemetry={"otlp_endpoint": "https://team:s3cr3t-token@collector.example:4318"}))
    assert masked_dump(settings)["telemetry"]["otlp_endpoint"] == "https://****@collector.example:4318"


def test_telemetry_off_imports_nothing_from_opentelemetry(tmp_path):
    code = (
        "import sys, asyncio\n"
        "from app.config import settings_from_data\n"
        "from app.server import create_app\n"
        "from app.service import Service\n"
        "from app.telemetry import open_tracer\n"
        "settings = settings_from_data({'llm_providers': [{'id': 'p', 'type': 'openai', 'api_keys': ['k'], 'models': ['m']}]})\n"
        "create_app(settings)\n"
        "assert open_tracer(settings, environ={}) is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path.parent), env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------- a real OTLP/HTTP receiver


class OTLPReceiver:
    """``POST /v1/traces`` on 127.0.0.1 in a thread: keeps each body's raw bytes and its spans."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.spans: list = []  # (resource attributes, span) protobuf pairs
        self._lock = threading.Lock()
        self.port = 0

    def start(self) -> "OTLPReceiver":
        ready = threading.Event()

        async def receive(request: web.Request) -> web.Response:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

            assert request.headers.get("content-type") == "application/x-protobuf"
            body = await request.read()
            export = ExportTraceServiceRequest()
            export.ParseFromString(body)
            with self._lock:
                self.bodies.append(body)
                for resource_spans in export.resource_spans:
                    resource = {kv.key: any_value(kv.value) for kv in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        self.spans.extend((resource, span) for span in scope_spans.spans)
            return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf")

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/v1/traces", receive)
            self.runner = web.AppRunner(app, access_log=None)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="otlp-receiver", daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def wait_for(self, predicate, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                spans = [span for _, span in self.spans]
            if predicate(spans):
                return spans
            time.sleep(0.05)
        raise AssertionError(f"spans not received in time; got {[s.name for s in spans]}")


def any_value(value):
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


def attrs(span) -> dict:
    return {kv.key: any_value(kv.value) for kv in span.attributes}


@pytest.fixture(scope="module")
def receiver():
    server = OTLPReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traced_gateway(start_gateway, upstream, receiver):
    cfg = gateway_config(upstream.url, telemetry={"otlp_endpoint": f"http://127.0.0.1:{receiver.port}", "service_name": "coo-llm-test"})
    cfg["policy"]["algorithm"] = "round_robin"
    return start_gateway(cfg, env={"OTEL_BSP_SCHEDULE_DELAY": "50"})


def test_a_real_gateway_exports_genai_spans_over_otlp_http(traced_gateway, fake, receiver):
    import openai

    client = openai.OpenAI(base_url=traced_gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20)
    fake.script(PROVIDER_KEYS[0], Step(prompt_tokens=9, completion_tokens=4))  # round robin starts at key #1
    plain = client.chat.completions.create(model="gpt-tele", messages=[{"role": "user", "content": "plain"}], max_tokens=20)
    fake.script(PROVIDER_KEYS[1], Step(prompt_tokens=6, completion_tokens=3))
    chunks = list(client.chat.completions.create(model="gpt-tele", messages=[{"role": "user", "content": "streamed"}], stream=True, stream_options={"include_usage": True}))
    fake.script(PROVIDER_KEYS[0], Step(status=500))  # the third request fails over from #1 to #2
    failover = client.chat.completions.with_raw_response.create(model="gpt-tele", messages=[{"role": "user", "content": "fail over"}])
    traced = client.chat.completions.create(
        model="gpt-tele", messages=[{"role": "user", "content": "traced"}], extra_headers={"traceparent": CLIENT_TRACEPARENT}
    )
    assert plain.choices[0].message.content == "echo: plain" and traced.choices[0].message.content == "echo: traced"
    assert chunks[-1].usage.completion_tokens == 3 and failover.headers["x-coo-llm-attempts"] == "2"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])

    spans = receiver.wait_for(lambda spans: sum(s.kind == s.SPAN_KIND_SERVER for s in spans) >= 5 and sum(s.kind == s.SPAN_KIND_CLIENT for s in spans) >= 5)
    servers = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    clients = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT]
    by_id = {s.span_id: s for s in spans}
    [resource] = {tuple(sorted(r.items())) for r, _ in receiver.spans}
    assert dict(resource)["service.name"] == "coo-llm-test"
    assert sorted(s.name for s in servers) == ["chat gpt-tele"] * 4 + ["chat no-such-model"]
    assert all(s.name == "chat gpt-tele" for s in clients) and len(clients) == 5
    for attempt in clients:  # every attempt is the child of its request's span, in its trace
        parent = by_id[attempt.parent_span_id]
        assert parent.kind == parent.SPAN_KIND_SERVER and parent.trace_id == attempt.trace_id

    def request_with(text: str):
        [request] = [s for s in servers if any(r.body and r.body["messages"][0]["content"] == text for r in sent_for(s))]
        return request, [c for c in clients if c.parent_span_id == request.span_id]

    def sent_for(request):
        """The upstream calls made within ``request``'s trace (their traceparent's trace id)."""
        return [r for r in fake.requests if traceparent_parts(header(r, "traceparent"))[0] == request.trace_id.hex()]

    plain_request, [plain_attempt] = request_with("plain")
    a = attrs(plain_attempt)
    assert a["gen_ai.provider.name"] == "openai" and a["gen_ai.request.max_tokens"] == 20
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (9, 4)
    assert (a["server.address"], a["server.port"], a["coo_llm.key"]) == ("127.0.0.1", fake.port, "tele#1")
    r = attrs(plain_request)
    assert r["coo_llm.client"].startswith("ck-") and r["http.response.status_code"] == 200
    assert r["gen_ai.operation.name"] == "chat" and r["gen_ai.provider.name"] == "openai" and r["gen_ai.request.model"] == "gpt-tele"

    stream_request, [stream_attempt] = request_with("streamed")
    assert attrs(stream_request)["coo_llm.stream"] is True and attrs(stream_attempt)["gen_ai.usage.output_tokens"] == 3
    assert stream_attempt.end_time_unix_nano <= stream_request.end_time_unix_nano

    failover_request, failover_attempts = request_with("fail over")
    failed, served = sorted(failover_attempts, key=lambda s: attrs(s)["coo_llm.attempt"])
    assert attrs(failed)["error.type"] == "server_error" and attrs(failed)["http.response.status_code"] == 500
    assert failed.status.code == failed.status.STATUS_CODE_ERROR and "error.type" not in attrs(served)
    assert (attrs(failed)["coo_llm.key"], attrs(served)["coo_llm.key"]) == ("tele#1", "tele#2")
    assert [traceparent_parts(header(r, "traceparent"))[1] for r in sent_for(failover_request)] == [failed.span_id.hex(), served.span_id.hex()]

    traced_request, [traced_attempt] = request_with("traced")
    assert traced_request.trace_id.hex() == CLIENT_TRACE_ID and traced_request.parent_span_id.hex() == CLIENT_SPAN_ID
    [upstream_call] = sent_for(traced_request)
    assert traceparent_parts(header(upstream_call, "traceparent")) == (CLIENT_TRACE_ID, traced_attempt.span_id.hex(), "01")

    [missing] = [s for s in servers if s.name == "chat no-such-model"]
    assert attrs(missing)["error.type"] == "model_not_found" and attrs(missing)["http.response.status_code"] == 404

    exported = b"".join(receiver.bodies)
    for secret in [*PROVIDER_KEYS, CLIENT_KEY, "sk-ant-tele-0123456789abcdef"]:
        assert secret.encode() not in exported
        assert secret[-12:].encode() not in exported  # not even a part of one
    assert b"plain" not in exported  # no content without capture_content
