"""The Batch API on real processes: one ``coo-llm serve`` and two ``coo-llm worker``s on a real Redis,
driven with the official ``openai`` SDK. File bytes live in Redis (``files.storage: auto``).

What is proven, at the fake upstream (which logs every request with its key and time):

- a 200-line batch completes with 200 correct lines while live traffic on the same keys gets no
  429, and the batch never uses more than its share (80 %) of any key's window: it waits instead;
- workers killed with SIGKILL mid-batch (one while sending, one while holding lines it had not
  sent) lose no line and repeat none: every custom_id is in the output or the error file exactly
  once, no prompt reached the upstream twice, and the unsent lines were run by the survivor;
- a cancel stops further lines.

Each limit is per 60-second window, so the first test takes a little over a minute by design.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from batch_helpers import chat_line, file_lines, jsonl, upstream_calls_per_line, wait_for_batch
from conftest import openai_client
from fakeupstream import Step
from gateway import WorkerProcess, config, provider
from test_one_gateway import send

ADMIN = {"authorization": "Bearer admin-secret-key"}


@pytest.fixture(scope="module")
def gw(start_gateway, upstream, redis):
    cfg = config(
        [
            provider("hb", upstream.url, ["H1", "H2"], models=["hb-model"], limits={"req_per_min": 100}, pricing={"input_token_cost": 1.0, "output_token_cost": 1.0}),
            provider("kp", upstream.url, ["K1"], models=["kill-model"], limits={"req_per_min": 50}),
            provider("cp", upstream.url, ["C1"], models=["cancel-model"]),
        ],
        storage={"runtime": {"type": "redis", "url": redis.url, "timeout": "1s"}},
        workers={"rollup_every": "1s", "compact_every": "5s"},
        batches={"concurrency": 8},
    )
    return start_gateway(cfg)


def pumps(gw) -> int:
    return httpx.get(gw.url + "/admin/v1/queue", headers=ADMIN).json()["batches"]["pumps"]


@pytest.fixture
def workers(gw, tmp_path):
    """Two fresh ``coo-llm worker`` processes, each with its batch pump up."""
    started = []
    for number in (1, 2):
        started.append(WorkerProcess(gw.config_path, tmp_path).start(ready=lambda n=number: pumps(gw) >= n))
    yield started
    for worker in started:
        worker.stop()


def submit(gw, lines):
    client = openai_client(gw, timeout=30)
    uploaded = client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")
    return client, client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")


def most_in_any_minute(times: list[float]) -> int:
    """The most of ``times`` that fall inside any 60-second window."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 60.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_a_200_line_batch_completes_while_live_traffic_on_its_keys_gets_no_429(gw, fake, workers, schemas_if_present):
    client, batch = submit(gw, [chat_line(f"b-{n}", "hb-model") for n in range(200)])
    started = time.time()
    # Live traffic alongside: 30 requests over ~20 s, alternating keys (round robin), well inside the 20 % left.
    with ThreadPoolExecutor(4) as pool:
        live = []
        for n in range(30):
            live.append(pool.submit(send, gw, "hb-model", f"live {n} {time.time()}"))
            time.sleep(0.6)
        statuses = [future.result() for future in live]
    assert statuses == [200] * 30

    done = wait_for_batch(client, batch.id, ("completed", "failed", "expired"), 150)
    assert done.status == "completed" and (done.request_counts.completed, done.request_counts.failed) == (200, 0)
    assert time.time() - started > 55  # it had to wait for the window: 160 fit in the first minute, not 200
    output = file_lines(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(f"b-{n}" for n in range(200))
    assert all(line["response"]["body"]["choices"][0]["message"]["content"] == f"echo: line {line['custom_id']}" for line in output)
    assert done.error_file_id is None
    assert upstream_calls_per_line(fake) == Counter({f"b-{n}": 1 for n in range(200)})
    for key in ("H1", "H2"):
        batch_times = [c.at for c in fake.requests if c.key == key and c.body["messages"][0]["content"].startswith("line ")]
        assert most_in_any_minute(batch_times) <= 80  # never more than the key's window less the headroom
    if schemas_if_present is not None:
        schemas_if_present.check("Batch", httpx.get(gw.url + f"/v1/batches/{batch.id}", headers={"authorization": "Bearer client-key"}).json(), closed=True)

    # Every line was recorded like a live request: the roll-up counts 230 requests for this client.
    deadline = time.time() + 20
    while time.time() < deadline:
        rows = {r["provider"]: r for r in httpx.get(gw.url + "/admin/v1/usage", params={"group_by": "provider"}, headers=ADMIN).json()["data"]}
        if rows.get("hb", {}).get("requests") == 230:
            break
        time.sleep(0.5)
    assert rows["hb"]["requests"] == rows["hb"]["ok"] == 230, rows


def test_workers_killed_mid_batch_lose_and_repeat_no_line(gw, fake, workers, tmp_path):
    # 1.5 s per call, 8 lines at a time per worker, 40 of the key's 50 requests a minute for the
    # batch: 24 lines go out, then 16, then the other 20 wait (held by the workers) for the window.
    third = WorkerProcess(gw.config_path, tmp_path).start(ready=lambda: pumps(gw) >= 3)
    fake.set_default("K1", Step(delay=1.5))
    try:
        client, batch = submit(gw, [chat_line(f"k-{n}", "kill-model") for n in range(60)])
        mid_call, waiting = workers
        assert wait_until(lambda: fake.count("K1") >= 25, 30)
        mid_call.kill()  # SIGKILL while its second wave is on its way upstream
        assert wait_until(lambda: fake.count("K1") >= 40, 30)
        time.sleep(2.0)  # the calls in flight return; every line left now waits for the window
        waiting.kill()  # SIGKILL while it holds lines it has not sent
        done = wait_for_batch(client, batch.id, ("completed", "failed", "expired"), 150)
        assert done.status == "completed", third.logs()[-3000:]
    finally:
        third.stop()
    output, errors = file_lines(client, done.output_file_id), file_lines(client, done.error_file_id)
    assert sorted(line["custom_id"] for line in output + errors) == sorted(f"k-{n}" for n in range(60))  # none lost, none twice
    calls = upstream_calls_per_line(fake)
    assert max(calls.values()) == 1  # no line ran twice
    assert all(calls[line["custom_id"]] == 1 for line in output)
    # Only a line a dead worker may have been sending is an error: reported, never run again.
    assert {line["error"]["code"] for line in errors} <= {"batch_line_interrupted"} and len(errors) <= 8
    assert (done.request_counts.completed, done.request_counts.failed) == (len(output), len(errors))
    # The lines the second victim held unsent were run by the survivor.
    assert "taken over from a pump that stopped" in third.logs()
    print(f"\nkilled mid-call: {len(errors)} line(s) interrupted; {third.logs().count('taken over')} unsent line(s) taken over")


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_cancel_stops_further_lines(gw, fake, workers):
    fake.set_default("C1", Step(delay=0.5))
    client, batch = submit(gw, [chat_line(f"c-{n}", "cancel-model") for n in range(100)])
    deadline = time.time() + 20
    while fake.count("C1") < 10 and time.time() < deadline:
        time.sleep(0.02)
    assert client.batches.cancel(batch.id).status == "cancelling"
    done = wait_for_batch(client, batch.id, ("cancelled",), 30)
    sent = fake.count("C1")
    time.sleep(1.5)
    assert fake.count("C1") == sent < 100
    output, errors = file_lines(client, done.output_file_id), file_lines(client, done.error_file_id)
    assert len(output) == done.request_counts.completed == sent
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"} and len(output) + len(errors) == 100
    assert done.cancelled_at >= done.cancelling_at >= done.created_at
