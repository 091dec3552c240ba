"""The Batch API without Redis: memory storage, file bytes in a directory, the batch pump inside the
web process. Driven with the official ``openai`` SDK; every line is checked against what the fake
upstream really received."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from batch_helpers import chat_line, file_lines, jsonl, upstream_calls_per_line, wait_for_batch
from conftest import openai_client
from fakeupstream import Step
from gateway import config, provider

ADMIN = {"authorization": "Bearer admin-secret-key"}
MODEL = "batch-model"


@pytest.fixture(scope="module")
def gw(start_gateway, upstream, tmp_path_factory):
    files_dir = tmp_path_factory.mktemp("batch-files")
    cfg = config(
        [
            provider("bp", upstream.url, ["BK1"], models=[MODEL, "embed-model"], pricing={"input_token_cost": 1.0, "output_token_cost": 2.0}),
            provider("slow", upstream.url, ["SK1"], models=["slow-model"]),
        ],
        client_keys=[{"key": "client-key"}, {"key": "other-key"}],
        workers={"rollup_every": "1s"},
        files={"path": str(files_dir), "max_mb": 1},
        batches={"concurrency": 8},
    )
    gateway = start_gateway(cfg)
    gateway.files_dir = files_dir
    return gateway


def create_batch(client, lines, *, endpoint="/v1/chat/completions", window="24h", **extra):
    uploaded = client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")
    return uploaded, client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window=window, **extra)


def test_a_batch_runs_in_process_and_answers_in_openais_formats(gw, fake, schemas_if_present):
    client = openai_client(gw)
    lines = [chat_line(f"q-{n}", MODEL) for n in range(20)]
    lines.insert(7, {"custom_id": "no-messages", "method": "POST", "url": "/v1/chat/completions", "body": {"model": MODEL}})
    uploaded, batch = create_batch(client, lines, metadata={"job": "nightly"})
    assert uploaded.purpose == "batch" and uploaded.bytes == len(jsonl(lines)) and uploaded.status == "processed"
    assert batch.status == "validating" and batch.input_file_id == uploaded.id and batch.metadata == {"job": "nightly"}
    assert list(gw.files_dir.iterdir()) != []  # the bytes went to files.path

    done = wait_for_batch(client, batch.id, ("completed", "failed"), 30)
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (21, 20, 1)
    assert done.model == MODEL and done.completed_at >= done.in_progress_at >= done.created_at
    assert done.expires_at == done.created_at + 86400

    output = file_lines(client, done.output_file_id)
    assert [line["custom_id"] for line in output] == [f"q-{n}" for n in range(20)]  # input order
    for line in output:
        assert line["error"] is None and line["id"].startswith("batch_req_")
        assert line["response"]["status_code"] == 200 and line["response"]["request_id"].startswith("req_")
        assert line["response"]["body"]["choices"][0]["message"]["content"] == f"echo: line {line['custom_id']}"
    errors = file_lines(client, done.error_file_id)
    assert [line["custom_id"] for line in errors] == ["no-messages"]
    assert errors[0]["response"]["status_code"] == 400  # what the live route answers such a body
    assert errors[0]["response"]["body"]["error"]["param"] == "messages"
    assert upstream_calls_per_line(fake) == {f"q-{n}": 1 for n in range(20)}

    outputs = client.files.retrieve(done.output_file_id)
    assert outputs.purpose == "batch_output" and outputs.filename == f"{batch.id}_output.jsonl"
    listed = client.batches.list(limit=5)
    assert listed.data[0].id == batch.id
    if schemas_if_present is not None:
        raw = httpx.get(gw.url + f"/v1/batches/{batch.id}", headers={"authorization": "Bearer client-key"}).json()
        schemas_if_present.check("Batch", raw, closed=True)
        schemas_if_present.check("OpenAIFile", httpx.get(gw.url + f"/v1/files/{uploaded.id}", headers={"authorization": "Bearer client-key"}).json(), closed=True)
        schemas_if_present.check("ListBatchesResponse", httpx.get(gw.url + "/v1/batches", headers={"authorization": "Bearer client-key"}).json(), closed=True)
        schemas_if_present.check("ListFilesResponse", httpx.get(gw.url + "/v1/files", headers={"authorization": "Bearer client-key"}).json(), closed=True)

    # Accounted like live requests: the usage roll-up counts the 20 answered lines for this client.
    deadline = time.time() + 15
    while time.time() < deadline:
        rows = httpx.get(gw.url + "/admin/v1/usage", params={"group_by": "client"}, headers=ADMIN).json()["data"]
        mine = [row for row in rows if row["client"] and row["requests"] >= 20]
        if mine:
            break
        time.sleep(0.3)
    assert mine and mine[0]["requests"] == 20 and mine[0]["cost_usd"] > 0, rows

    deleted = httpx.delete(gw.url + f"/v1/files/{uploaded.id}", headers={"authorization": "Bearer client-key"}).json()
    assert deleted == {"id": uploaded.id, "object": "file", "deleted": True}
    if schemas_if_present is not None:
        schemas_if_present.check("DeleteFileResponse", deleted, closed=True)
    assert not (gw.files_dir / uploaded.id).exists()
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_an_embeddings_batch_answers_with_embeddings(gw, fake):
    client = openai_client(gw)
    lines = [{"custom_id": f"e-{n}", "method": "POST", "url": "/v1/embeddings", "body": {"model": "embed-model", "input": f"text {n}"}} for n in range(3)]
    _, batch = create_batch(client, lines, endpoint="/v1/embeddings")
    done = wait_for_batch(client, batch.id, ("completed", "failed"), 30)
    assert done.status == "completed" and done.request_counts.completed == 3
    output = file_lines(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == ["e-0", "e-1", "e-2"]
    assert all(line["response"]["body"]["object"] == "list" and line["response"]["body"]["data"][0]["embedding"] for line in output)
    assert done.error_file_id is None


def test_a_responses_batch_answers_with_response_objects(gw, fake):
    client = openai_client(gw)
    lines = [{"custom_id": f"r-{n}", "method": "POST", "url": "/v1/responses", "body": {"model": MODEL, "input": f"line r-{n}"}} for n in range(3)]
    _, batch = create_batch(client, lines, endpoint="/v1/responses")
    done = wait_for_batch(client, batch.id, ("completed", "failed"), 30)
    assert done.status == "completed" and done.request_counts.completed == 3, done
    output = file_lines(client, done.output_file_id)
    assert [line["custom_id"] for line in output] == ["r-0", "r-1", "r-2"]
    for line in output:
        body = line["response"]["body"]
        assert body["object"] == "response" and body["output"][0]["content"][0]["text"] == f"echo: line {line['custom_id']}"
    stored = client.responses.retrieve(output[0]["response"]["body"]["id"])  # stored like a live one (store defaults to true)
    assert stored.output_text == "echo: line r-0"
    assert upstream_calls_per_line(fake) == {"r-0": 1, "r-1": 1, "r-2": 1}


def test_bad_lines_fail_the_batch_at_validating_and_name_each_line(gw, fake, schemas_if_present):
    client = openai_client(gw)
    lines = [
        chat_line("ok-1", MODEL),
        b"{not json",
        chat_line("ok-1", MODEL),  # the same custom_id again
        {**chat_line("ok-3", MODEL), "url": "/v1/embeddings"},
        chat_line("ok-4", "another-model"),
        {"method": "POST", "url": "/v1/chat/completions", "body": {"model": MODEL}},
    ]
    _, batch = create_batch(client, lines)
    done = wait_for_batch(client, batch.id, ("failed", "completed"), 20)
    assert done.status == "failed" and done.failed_at
    assert [(e.code, e.line) for e in done.errors.data] == [
        ("invalid_json_line", 2),
        ("duplicate_custom_id", 3),
        ("url_mismatch", 4),
        ("model_mismatch", 5),
        ("missing_required_parameter", 6),
    ]
    assert done.errors.data[4].param == "custom_id"
    assert fake.requests == []  # nothing ran
    if schemas_if_present is not None:
        schemas_if_present.check("Batch", httpx.get(gw.url + f"/v1/batches/{batch.id}", headers={"authorization": "Bearer client-key"}).json(), closed=True)
    _, empty = create_batch(client, [])
    assert [e.code for e in wait_for_batch(client, empty.id, ("failed",), 20).errors.data] == ["empty_file"]


def test_a_batch_past_its_window_expires_with_what_finished(gw, fake):
    fake.set_default("SK1", Step(delay=1.0))
    client = openai_client(gw)
    lines = [chat_line(f"x-{n}", "slow-model") for n in range(40)]
    _, batch = create_batch(client, lines, window="3s")  # 8 at a time, 1 s each: about 24 run in time
    done = wait_for_batch(client, batch.id, ("expired", "completed"), 20)
    assert done.status == "expired" and done.expired_at
    output, errors = file_lines(client, done.output_file_id), file_lines(client, done.error_file_id)
    assert 0 < len(output) < 40 and done.request_counts.completed == len(output)
    assert {line["error"]["code"] for line in errors} == {"batch_expired"}
    assert sorted(line["custom_id"] for line in output + errors) == sorted(f"x-{n}" for n in range(40))  # every line, once
    calls = upstream_calls_per_line(fake)
    assert all(calls[line["custom_id"]] == 1 for line in output)
    assert max(calls.values()) == 1 and sum(calls.values()) <= len(output) + 8  # at most the lines in flight at the end


def test_cancel_stops_further_lines(gw, fake):
    fake.set_default("SK1", Step(delay=0.5))
    client = openai_client(gw)
    _, batch = create_batch(client, [chat_line(f"c-{n}", "slow-model") for n in range(60)])
    deadline = time.time() + 20
    while fake.count("SK1") < 10 and time.time() < deadline:
        time.sleep(0.05)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    done = wait_for_batch(client, batch.id, ("cancelled",), 20)
    sent = fake.count("SK1")
    time.sleep(1.0)
    assert fake.count("SK1") == sent < 60  # nothing starts after the cancel
    output, errors = file_lines(client, done.output_file_id), file_lines(client, done.error_file_id)
    assert len(output) == done.request_counts.completed == sent
    assert len(errors) == 60 - sent and {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_a_client_sees_only_its_own_files_and_batches_and_bad_input_gets_openai_errors(gw, fake):
    mine, theirs = openai_client(gw), openai_client(gw, key="other-key")
    uploaded, batch = create_batch(mine, [chat_line("own-1", MODEL)])
    for call in (lambda: theirs.files.retrieve(uploaded.id), lambda: theirs.files.content(uploaded.id), lambda: theirs.files.delete(uploaded.id),
                 lambda: theirs.batches.retrieve(batch.id), lambda: theirs.batches.cancel(batch.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert uploaded.id not in [f.id for f in theirs.files.list()]
    assert batch.id not in [b.id for b in theirs.batches.list()]
    with pytest.raises(openai.NotFoundError) as missing:
        theirs.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert missing.value.body["param"] == "input_file_id"

    with pytest.raises(openai.BadRequestError) as wrong_endpoint:
        mine.batches.create(input_file_id=uploaded.id, endpoint="/v1/moderations", completion_window="24h")
    assert wrong_endpoint.value.body["param"] == "endpoint"
    with pytest.raises(openai.BadRequestError):
        mine.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="48h")
    with pytest.raises(openai.BadRequestError) as purpose:
        mine.files.create(file=("a.jsonl", b"{}\n"), purpose="fine-tune")
    assert purpose.value.body["param"] == "purpose"
    with pytest.raises(openai.APIStatusError) as too_big:
        mine.files.create(file=("big.jsonl", b"x" * (1024 * 1024 + 100)), purpose="batch")
    assert too_big.value.status_code == 413
    anonymous = httpx.post(gw.url + "/v1/files", files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "batch"})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_api_key"
    bare = httpx.post(gw.url + "/v1/batches", headers={"authorization": "Bearer client-key"}, json={"endpoint": "/v1/chat/completions"})
    assert bare.status_code == 400 and bare.json()["error"]["param"] == "input_file_id"
    listing = httpx.get(gw.url + "/v1/batches", params={"limit": 0}, headers={"authorization": "Bearer client-key"})
    assert listing.status_code == 400 and listing.json()["error"]["param"] == "limit"
    wait_for_batch(mine, batch.id, ("completed",), 20)


def test_a_batch_runs_as_its_owner_is_now_and_a_revoked_owner_gets_401_lines(gw, fake):
    made = httpx.post(gw.url + "/admin/v1/clients", headers=ADMIN, json={"name": "batcher", "allowed_providers": ["*"]}).json()
    fake.set_default("SK1", Step(delay=0.5))
    client = openai_client(gw, key=made["key"])
    _, batch = create_batch(client, [chat_line(f"v-{n}", "slow-model") for n in range(300)])  # ~19 s at 8 at a time
    deadline = time.time() + 20
    while fake.count("SK1") < 8 and time.time() < deadline:
        time.sleep(0.05)
    assert httpx.delete(gw.url + f"/admin/v1/clients/{made['id']}", headers=ADMIN).json()["revoked"] is True
    time.sleep(6.5)  # the pump reads the owner's key again within 5 s
    sent = fake.count("SK1")
    time.sleep(1.0)
    assert fake.count("SK1") == sent < 300  # nothing more is sent for a revoked key
    # Its other lines are answered with the key's 401 at once: the batch finishes (the admin queue
    # shows it; the revoked key itself can no longer read it).
    deadline = time.time() + 20
    while time.time() < deadline and batch.id in [b["id"] for b in httpx.get(gw.url + "/admin/v1/queue", headers=ADMIN).json()["batches"]["active"]]:
        time.sleep(0.2)
    assert batch.id not in [b["id"] for b in httpx.get(gw.url + "/admin/v1/queue", headers=ADMIN).json()["batches"]["active"]]
    with pytest.raises(openai.AuthenticationError):
        client.batches.retrieve(batch.id)
    refused = [line for line in gw.logs().splitlines() if f'"client":"{made["id"]}"' in line and '"error":"api_key_revoked"' in line]
    assert len(refused) == 300 - sent  # every line never sent was recorded with the revoked key's 401


def test_the_admin_queue_shows_batch_progress(gw, fake):
    fake.set_default("SK1", Step(delay=0.5))
    client = openai_client(gw)
    _, batch = create_batch(client, [chat_line(f"a-{n}", "slow-model") for n in range(24)])
    deadline = time.time() + 20
    seen = None
    while time.time() < deadline:
        active = httpx.get(gw.url + "/admin/v1/queue", headers=ADMIN).json()["batches"]
        seen = next((b for b in active["active"] if b["id"] == batch.id), None)
        if seen and seen["request_counts"]["completed"] > 0:
            break
        time.sleep(0.1)
    assert seen and seen["status"] == "in_progress" and seen["request_counts"]["total"] == 24 and active["pumps"] == 1
    wait_for_batch(client, batch.id, ("completed",), 30)
    assert batch.id not in [b["id"] for b in httpx.get(gw.url + "/admin/v1/queue", headers=ADMIN).json()["batches"]["active"]]
