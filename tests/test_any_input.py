"""No 500 for any input (issue 11): generated requests against a real gateway process.

One ``coo-llm serve`` process, its providers the fake upstream (one of each type), gets
hypothesis-generated bodies around the real shapes (``body_strategies``, ``inbound_strategies``:
valid ones, and ones mutated at every level) on chat (one model per provider type), embeddings,
Responses, Anthropic Messages, the admin config validation and the admin clients; and requests
with arbitrary methods, paths, query strings and header bytes. Every answer must be below 500, a
4xx must carry its route's error envelope, and a stream that started must not end in an error
(the fake upstream is healthy: any 5xx or broken stream here is the gateway's own). After each
test the gateway's log must hold no unhandled error and no answer it blamed on an upstream.

Then the malformed HTTP itself, each with its status: a body over ``server.max_body_mb`` (413),
an unknown path (404), a wrong method (405), a bad or doubled ``Content-Length``, broken chunked
framing, a garbled request line, invalid JSON, bytes that are not UTF-8, an empty body (400).
"""

from __future__ import annotations

import os
import re
import time

import httpx
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.openapi import DOCUMENT
from body_strategies import (
    CLIENT_SEEDS,
    EMBEDDING_MODEL,
    MODEL,
    batch_line_seeds,
    chat_seeds,
    embeddings_seeds,
    messages_seeds,
    mutated,
    responses_seeds,
    to_bytes,
)
from fuzz_gateway import (
    ADMIN_KEY,
    CHAT_MODELS,
    CLIENT_KEY,
    EMBEDDING_MODELS,
    KINDS,
    assert_error_envelope,
    GOVERNED_KEY,
    governed_fleet_config,
    http_request,
    raw_request,
)
from inbound_strategies import DEEP, DEPTHS, JUNK, MALFORMED, TRANSLATABLE

MAX_BODY_MB = 1
# Examples per test and provider type, the same ones every run; COO_FUZZ_EXAMPLES=500 COO_FUZZ_RANDOM=1
# for a longer hunt on new ones.
EXAMPLES = int(os.environ.get("COO_FUZZ_EXAMPLES", "40"))
DERANDOMIZE = not os.environ.get("COO_FUZZ_RANDOM")
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=DERANDOMIZE)
# What a healthy upstream never causes: the gateway's own failures, or a stream it broke.
BROKEN_STREAM = (b'"upstream_error"', b'"server_error"', b'"api_error"', b"stream_interrupted", b"response.failed")


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    return start_gateway(governed_fleet_config(upstream.url, server={"listen": ":2906", "admin_api_key": ADMIN_KEY, "max_body_mb": MAX_BODY_MB}))


@pytest.fixture(scope="module")
def http(gw):
    with httpx.Client(base_url=gw.url, timeout=20) as client:
        yield client


@pytest.fixture(autouse=True)
def no_gateway_failures_logged(gw):
    """Whatever a test sent, the gateway logged no unhandled error and blamed no upstream."""
    start = len(gw.logs())
    yield
    logged = gw.logs()[start:]
    for sign in ('"unhandled error"', '"unreadable upstream answer"', "Traceback"):
        assert sign not in logged, logged[logged.index(sign) - 300 : logged.index(sign) + 2000]


def check(response: httpx.Response, *, anthropic: bool = False) -> None:
    assert response.status_code < 500, f"{response.status_code} {response.text[:1000]}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.headers
        assert_error_envelope(response.json(), anthropic=anthropic)
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        for sign in BROKEN_STREAM:
            assert sign not in response.content, response.text[-2000:]


def post(http: httpx.Client, path: str, raw: bytes, *, key: str = CLIENT_KEY, header: str = "authorization") -> httpx.Response:
    value = key if header == "x-api-key" else f"Bearer {key}"
    return http.post(path, content=raw, headers={header: value, "content-type": "application/json"})


KEYS_AND_CACHE = st.tuples(st.sampled_from([CLIENT_KEY, GOVERNED_KEY]), st.sampled_from([None, "no-cache", "no-store", "max-age=5"]))


def fuzz_post(http: httpx.Client, path: str, raw: bytes, key_and_cache: tuple, *, header: str = "authorization") -> httpx.Response:
    """``post`` as one of the two clients (one governed), with or without a Cache-Control."""
    key, cache_control = key_and_cache
    headers = {header: key if header == "x-api-key" else f"Bearer {key}", "content-type": "application/json"}
    if cache_control:
        headers["cache-control"] = cache_control
    return http.post(path, content=raw, headers=headers)


def models_of(kind: str) -> dict[str, str]:
    """The strategies' placeholder model names -> the ones provider type ``kind`` serves."""
    return {MODEL: CHAT_MODELS[kind], EMBEDDING_MODEL: EMBEDDING_MODELS[kind], "gpt-test": CHAT_MODELS[kind], "embed-test": EMBEDDING_MODELS[kind]}


# ---------------------------------------------------------------------------------- bodies, per provider type


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(body=st.one_of(mutated(chat_seeds()), MALFORMED.chat, TRANSLATABLE.chat), depth=DEPTHS, who=KEYS_AND_CACHE)
def test_chat_bodies(http, kind, body, depth, who):
    check(fuzz_post(http, "/v1/chat/completions", to_bytes(body, depth, models_of(kind)), who))


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(body=st.one_of(mutated(embeddings_seeds()), MALFORMED.embeddings), depth=DEPTHS, who=KEYS_AND_CACHE)
def test_embeddings_bodies(http, kind, body, depth, who):
    check(fuzz_post(http, "/v1/embeddings", to_bytes(body, depth, models_of(kind)), who))


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(body=mutated(responses_seeds()), depth=DEPTHS, who=KEYS_AND_CACHE)
def test_responses_bodies(http, kind, body, depth, who):
    check(fuzz_post(http, "/v1/responses", to_bytes(body, depth, models_of(kind)), who))


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(body=mutated(messages_seeds()), depth=DEPTHS, path=st.sampled_from(["/v1/messages", "/v1/messages/count_tokens"]), header=st.sampled_from(["x-api-key", "authorization"]), who=KEYS_AND_CACHE)
def test_messages_bodies(http, kind, body, depth, path, header, who):
    check(fuzz_post(http, path, to_bytes(body, depth, models_of(kind)), who, header=header), anthropic=True)


# ---------------------------------------------------------------------------------- batch input files

FUZZED_BATCHES: list[str] = []  # every batch the fuzz below created; the test after it waits for them all


@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"])
@settings(max_examples=max(5, EXAMPLES // 2), deadline=None, suppress_health_check=list(HealthCheck), derandomize=DERANDOMIZE)
@given(
    kind=st.sampled_from(KINDS),
    data=st.data(),
    depth=DEPTHS,
)
def test_batch_input_files(http, endpoint, kind, data, depth):
    lines = data.draw(st.lists(st.one_of(mutated(batch_line_seeds(endpoint)), st.binary(max_size=40)), min_size=1, max_size=4))
    content = b"\n".join(line if isinstance(line, bytes) else to_bytes(line, depth, models_of(kind)) for line in lines) + b"\n"
    form = {"purpose": "batch", **data.draw(st.fixed_dictionaries({}, optional={"expires_after[anchor]": st.sampled_from(["created_at", "x", ""]), "expires_after[seconds]": st.sampled_from(["3600", "1e9", "-1", "x"])}))}
    uploaded = http.post("/v1/files", files={"file": ("in.jsonl", content)}, data=form, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    check(uploaded)
    if uploaded.status_code != 200:
        return
    body = {"input_file_id": uploaded.json()["id"], "endpoint": endpoint, "completion_window": data.draw(st.sampled_from(["24h", "1h", "0s", "25h", "x"]))}
    created = post(http, "/v1/batches", orjson.dumps(body))
    check(created)
    if created.status_code == 200:
        FUZZED_BATCHES.append(created.json()["id"])


def test_every_fuzzed_batch_ends_without_a_gateway_failure(http):
    assert FUZZED_BATCHES, "the fuzz above created no batch"
    deadline = time.time() + 60
    for batch_id in FUZZED_BATCHES:
        while (batch := http.get(f"/v1/batches/{batch_id}", headers={"authorization": f"Bearer {CLIENT_KEY}"}).json())["status"] not in ("completed", "failed"):
            assert time.time() < deadline, batch
            time.sleep(0.25)
        for name in ("output_file_id", "error_file_id"):
            if batch.get(name):
                content = http.get(f"/v1/files/{batch[name]}/content", headers={"authorization": f"Bearer {CLIENT_KEY}"}).content
                for line in content.splitlines():
                    result = orjson.loads(line)
                    status = (result.get("response") or {}).get("status_code", 0)
                    assert status < 500, result


# ---------------------------------------------------------------------------------- admin bodies


@FUZZ
@given(data=st.data(), depth=DEPTHS, form=st.sampled_from(["yaml", "json", "bytes", "text"]))
def test_config_documents(http, upstream, data, depth, form):
    if form == "bytes":
        raw = data.draw(st.binary(max_size=300))
    elif form == "text":
        raw = data.draw(st.text(max_size=300)).encode("utf-8", "surrogatepass")
    else:
        document = data.draw(mutated([governed_fleet_config(upstream.url)]))
        raw = to_bytes(document, depth) if form == "json" else yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass")
    response = post(http, "/admin/v1/config/validate", raw, key=ADMIN_KEY)
    check(response)
    assert response.status_code in (200, 413), response.text
    if response.status_code == 200:
        assert set(response.json()) == {"valid", "errors"}


@pytest.fixture(scope="module")
def client_id(http):
    response = post(http, "/admin/v1/clients", orjson.dumps({"name": "fuzzed"}), key=ADMIN_KEY)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@FUZZ
@given(body=st.one_of(mutated(CLIENT_SEEDS), JUNK), depth=DEPTHS, change=st.booleans())
def test_client_bodies(http, client_id, body, depth, change):
    raw = to_bytes(body, depth)
    headers = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    response = http.patch(f"/admin/v1/clients/{client_id}", content=raw, headers=headers) if change else http.post("/admin/v1/clients", content=raw, headers=headers)
    check(response)
    assert response.status_code in (200 if change else 201, 400), response.text


# ---------------------------------------------------------------------------------- any method, path, header


# Every documented operation (method, path), and paths no route has.
OPERATIONS = [(method.upper().encode(), path) for path, item in DOCUMENT["paths"].items() for method in item] + [
    (b"GET", "/"), (b"GET", "/v1"), (b"POST", "/v2/anything"), (b"GET", "/v1/models/{id}/more/{id}"), (b"POST", "/v1/messages/{id}"),
]
URL_BYTES = st.binary(min_size=1, max_size=12).map(lambda b: "".join(f"%{x:02X}" for x in b).encode())
KNOWN = b"\x00known\x00"  # a path segment naming an object that exists (``objects``)
SEGMENT = st.one_of(
    st.just(KNOWN),
    st.sampled_from([b"x", b"chat-openai", b"openai%231", b"..", b"%2e%2e", b"%00", b"a" * 3000, b"%ff%fe", b"cl_0000000000000000", b"file-x"]),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%/"), min_size=1, max_size=10).map(str.encode),
    URL_BYTES,
)
QUERY = st.lists(
    st.tuples(
        st.sampled_from([b"limit", b"after", b"order", b"minutes", b"from", b"to", b"group_by", b"purpose", b"x", b""]),
        st.one_of(st.sampled_from([b"1", b"0", b"-1", b"1e999", b"nan", b"99999999999999999999", b"asc", b"2026-01-01T00:00:00Z", b""]), URL_BYTES),
    ),
    max_size=3,
).map(lambda pairs: b"&".join(k + b"=" + v for k, v in pairs))
# Mostly the operation's own method; now and then another, or one no route has.
OTHER_METHODS = st.sampled_from([b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS", b"TRACE", b"PROPFIND", b"get", b"G\xc3\x89T", b"X" * 40])
CLIENT_AUTH = [(b"Authorization", b"Bearer " + CLIENT_KEY.encode())]
ADMIN_AUTH = [(b"Authorization", b"Bearer " + ADMIN_KEY.encode())]
WRONG_AUTH = st.sampled_from(
    [
        [],
        CLIENT_AUTH,
        ADMIN_AUTH,
        [(b"x-api-key", CLIENT_KEY.encode())],
        [(b"Authorization", b"Bearer \xff\xfe\x01")],
        [(b"Authorization", b"Basic " + b"A" * 5000)],
        [(b"x-api-key", b"\xc3\x28")],
    ]
)
HEADER_NAMES = st.sampled_from(
    [b"Content-Type", b"Accept", b"Cache-Control", b"x-coo-llm-cache-ttl", b"x-request-id", b"traceparent", b"tracestate", b"anthropic-beta",
     b"anthropic-version", b"Accept-Encoding", b"Expect", b"User-Agent", b"X-Forwarded-For", b"Cookie", b"X-\xff"]
)
HEADER_VALUES = st.one_of(
    st.sampled_from([b"application/json", b"multipart/form-data; boundary=x", b"no-store", b"max-age=1e999", b"-5", b"100-continue",
                     b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01", b"text/event-stream", b"gzip", b""]),
    st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)


@pytest.fixture(scope="module")
def objects(http, client_id) -> dict[str, bytes]:
    """An object of every kind a path names, by the path's first segments."""
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    response = post(http, "/v1/responses", orjson.dumps({"model": CHAT_MODELS["openai"], "input": "keep me"}))
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": CHAT_MODELS["openai"], "messages": [{"role": "user", "content": "hi"}]}}
    uploaded = http.post("/v1/files", files={"file": ("in.jsonl", orjson.dumps(line) + b"\n")}, data={"purpose": "batch"}, headers=auth)
    batch = post(http, "/v1/batches", orjson.dumps({"input_file_id": uploaded.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}))
    return {
        "/v1/responses/": response.json()["id"].encode(),
        "/v1/files/": uploaded.json()["id"].encode(),
        "/v1/batches/": batch.json()["id"].encode(),
        "/v1/models/": CHAT_MODELS["gemini"].encode(),
        "/admin/v1/clients/": client_id.encode(),
        "/admin/v1/keys/": b"openai%231",
        "/admin/assets/": b"dashboard.js",
    }


@settings(max_examples=EXAMPLES * 8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=DERANDOMIZE)
@given(
    operation=st.sampled_from(OPERATIONS),
    other_method=st.one_of(st.none(), st.none(), st.none(), OTHER_METHODS),
    segment=SEGMENT,
    query=QUERY,
    auth=st.one_of(st.none(), st.none(), WRONG_AUTH),
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=3),
    body=st.one_of(st.none(), st.binary(max_size=64), JUNK.map(orjson.dumps)),
)
def test_any_method_path_and_headers(objects, gw, operation, other_method, segment, query, auth, headers, body):
    method, template = operation
    method = other_method or method
    if segment == KNOWN:
        segment = next((known for prefix, known in objects.items() if template.startswith(prefix)), b"x")
    target = re.sub(r"{[^}]*}", lambda _: segment.decode("latin-1"), template).encode("latin-1") + (b"?" + query if query else b"")
    if auth is None:  # the key the route wants
        auth = ADMIN_AUTH if template.startswith("/admin/v1") else CLIENT_AUTH
    response = raw_request(gw.port, http_request(method, target, auth + headers, body))
    assert response.status < 500, (method, target, auth + headers, response.status, response.body[:500])
    if response.status >= 400 and method != b"HEAD":
        assert response.headers.get("content-type", "").startswith("application/json"), (target, response.headers)
        assert_error_envelope(response.json(), anthropic=target.startswith(b"/v1/messages"))


# ---------------------------------------------------------------------------------- malformed HTTP

CHAT = b"/v1/chat/completions"
CLIENT = [(b"Authorization", b"Bearer " + CLIENT_KEY.encode()), (b"Content-Type", b"application/json")]
HELLO = b'{"model": "chat-openai", "messages": [{"role": "user", "content": "hi"}]}'


def framed(extra: bytes, body: bytes = b"{}") -> bytes:
    """A chat POST whose framing headers are ``extra``, as given (no Content-Length of ours)."""
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer client-key\r\n" + extra + b"\r\n" + body


MALFORMED_HTTP = {
    "content-length not a number": (framed(b"Content-Length: abc\r\n"), 400),
    "negative content-length": (framed(b"Content-Length: -2\r\n"), 400),
    "two content-lengths": (framed(b"Content-Length: 2\r\nContent-Length: 3\r\n"), 400),
    "content-length and chunked": (framed(b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n"), 400),
    "broken chunk size": (framed(b"Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"), 400),
    "unknown transfer coding": (framed(b"Transfer-Encoding: gzip\r\n"), 400),
    "garbage request line": (b"GARBAGE\r\n\r\n", 400),
    "header without a colon": (b"GET /health/live HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    "unknown HTTP version": (b"GET /health/live HTTP/7.1\r\nHost: x\r\n\r\n", 400),
    "path not ASCII": (b"GET /v1/mod\xffels HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    "invalid JSON": (http_request(b"POST", CHAT, CLIENT, b'{"model": "chat-openai", "messages": [}'), 400),
    "a number too large for JSON": (http_request(b"POST", CHAT, CLIENT, HELLO[:-1] + b', "temperature": 1e400}'), 400),
    "not UTF-8": (http_request(b"POST", CHAT, CLIENT, HELLO.replace(b"hi", b"\xff\xfe")), 400),
    "a lone surrogate": (http_request(b"POST", CHAT, CLIENT, HELLO.replace(b"hi", b"\\ud800")), 400),
    "empty body": (http_request(b"POST", CHAT, CLIENT, b""), 400),
    "no body": (http_request(b"POST", CHAT, CLIENT), 400),
    "a JSON array": (http_request(b"POST", CHAT, CLIENT, b"[]"), 400),
    "unknown path": (http_request(b"GET", b"/v1/nothing", CLIENT), 404),
    "wrong method": (http_request(b"PUT", CHAT, CLIENT, HELLO), 405),
    "body over max_body_mb": (http_request(b"POST", CHAT, CLIENT, b" " * (MAX_BODY_MB * 1024 * 1024 + 1)), 413),
    "chunked body over max_body_mb": (framed(b"Transfer-Encoding: chunked\r\n", b"%x\r\n%s\r\n0\r\n\r\n" % (MAX_BODY_MB * 1024 * 1024 + 1, b" " * (MAX_BODY_MB * 1024 * 1024 + 1))), 413),
    "declared over max_body_mb": (framed(b"Content-Length: %d\r\n" % (MAX_BODY_MB * 1024 * 1024 + 1), b""), 413),
    "headers too large": (http_request(b"GET", b"/health/live", [(b"X-Big", b"a" * 100_000)]), 413),
}


@pytest.mark.parametrize("name", MALFORMED_HTTP)
def test_malformed_http(gw, name):
    data, status = MALFORMED_HTTP[name]
    response = raw_request(gw.port, data)
    assert response.status == status, (response.status, response.body[:300])
    assert_error_envelope(response.json(), anthropic=False)


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/chat/completions", HELLO),
        ("/v1/embeddings", b'{"model": "emb-openai", "input": "hi"}'),
        ("/v1/responses", b'{"model": "chat-openai", "input": "hi"}'),
        ("/v1/messages", b'{"model": "chat-openai", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'),
        ("/v1/batches", b'{"input_file_id": "file-x", "endpoint": "/v1/chat/completions", "completion_window": "24h"}'),
        ("/admin/v1/clients", b'{"name": "n"}'),
    ],
)
@pytest.mark.parametrize("damage", ["invalid JSON", "not UTF-8", "empty", "too large"])
def test_every_json_route_refuses_a_broken_body(http, path, body, damage):
    key = ADMIN_KEY if path.startswith("/admin") else CLIENT_KEY
    raw = {
        "invalid JSON": body[:-1],
        "not UTF-8": body.replace(b'": "', b'": "\xff\xfe', 1),
        "empty": b"",
        "too large": body[:-1] + b', "pad": "' + b"x" * (MAX_BODY_MB * 1024 * 1024) + b'"}',
    }[damage]
    response = post(http, path, raw, key=key)
    assert response.status_code == (413 if damage == "too large" else 400), response.text
    check(response, anthropic=path == "/v1/messages")
    expected = "request_too_large" if damage == "too large" and path == "/v1/messages" else "invalid_request_error"  # Anthropic's 413 type
    assert response.json()["error"]["type"] == expected


# ---------------------------------------------------------------------------------- regressions (found by these tests)


@pytest.mark.parametrize(
    "target, header, anthropic",
    [(b"/v1/models", b"Authorization: Bearer sk-\xff\xfe", False), (b"/v1/messages", b"x-api-key: \xff\xfe", True), (b"/admin/v1/config", b"Authorization: Bearer \xff", False)],
)
def test_key_bytes_that_are_not_utf8_are_a_401(gw, target, header, anthropic):
    method = b"POST" if target == b"/v1/messages" else b"GET"
    data = method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\nContent-Length: 2\r\n\r\n{}"
    response = raw_request(gw.port, data)
    assert response.status == 401, response.body
    assert_error_envelope(response.json(), anthropic=anthropic)


def test_an_anthropic_beta_header_with_control_characters_is_a_400(gw, fake):
    body = orjson.dumps({"model": CHAT_MODELS["anthropic"], "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    headers = [(b"x-api-key", CLIENT_KEY.encode()), (b"Content-Type", b"application/json")]
    refused = raw_request(gw.port, http_request(b"POST", b"/v1/messages", [*headers, (b"anthropic-beta", b"tools\x01")], body))
    assert refused.status == 400, refused.body
    assert refused.json()["error"]["message"] == "The 'anthropic-beta' header must be printable ASCII."
    assert fake.requests == []  # refused before any upstream call
    served = raw_request(gw.port, http_request(b"POST", b"/v1/messages", [*headers, (b"anthropic-beta", b"tools-2024-04-04")], body))
    assert served.status == 200 and fake.requests[-1].headers["anthropic-beta"] == "tools-2024-04-04"


def test_an_error_quoting_bytes_that_are_not_utf8_is_still_an_envelope(gw):
    """Sanic's 417 quotes the Expect value; its surrogates made the error handler fail (a plain-text 500)."""
    data = http_request(b"POST", CHAT, [*CLIENT, (b"Expect", b"\x80\xff")], HELLO)
    response = raw_request(gw.port, data)
    assert response.status == 417, response.body
    assert_error_envelope(response.json(), anthropic=False)
    assert "\ufffd" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/v1/responses", {"model": CHAT_MODELS["anthropic"], "input": "hi", "stream_options": {"a": DEEP}}, "stream_options"),
        ("/v1/responses", {"model": CHAT_MODELS["openai"], "input": [{"role": "user", "content": "hi", "extra": DEEP}]}, "input"),
        ("/v1/responses", {"model": CHAT_MODELS["gemini"], "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi", "x": DEEP}]}]}, "input"),
        ("/v1/messages", {"model": CHAT_MODELS["anthropic"], "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "extra": DEEP}, "extra"),
        ("/v1/messages/count_tokens", {"model": CHAT_MODELS["custom"], "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": DEEP}]}]}, "messages"),
    ],
)
def test_bodies_nesting_deeper_than_json_writes_are_a_400(http, path, body, field):
    """The Responses body is stored whole (it was a 500), an Anthropic provider gets the Messages
    body whole: the same nesting limit as chat, naming the top-level field."""
    response = post(http, path, to_bytes(body, 300))
    assert response.status_code == 400, response.text
    anthropic = path.startswith("/v1/messages")
    check(response, anthropic=anthropic)
    error = response.json()["error"]
    assert f"Invalid value for '{field}': arrays and objects nest more than 64 levels deep." == error["message"]
    if not anthropic:
        assert error["param"] == field


@pytest.mark.parametrize(
    "body, field",
    [
        (b'{"name": "n", "metadata": {"x": -9223372036854775809}}', "metadata"),
        (b'{"name": "n", "limits": {"req_per_min": 1000000000000000000000000000000}}', "limits"),
        (b'{"name": "n", "limits": {"tokens_per_min": 18446744073709551616}}', "limits"),
    ],
)
def test_client_integers_past_64_bits_are_a_400(http, client_id, body, field):
    """pydantic reads them exactly, orjson cannot write them: the client document was a 500 (metadata) or a 503 (limits)."""
    headers = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    for response in (http.post("/admin/v1/clients", content=body, headers=headers), http.patch(f"/admin/v1/clients/{client_id}", content=body.replace(b'"name": "n", ', b""), headers=headers)):
        assert response.status_code == 400, response.text
        check(response)
        assert response.json()["error"]["param"] == field
