"""Cache warming: hot entries are refreshed before they expire (obeying key limits), and
``coo-llm warm FILE`` pre-warms entries that live traffic then hits."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from conftest import openai_client
from gateway import ROOT, config, provider


def ask(gw, model: str, content: str, key: str = "client-key"):
    raw = openai_client(gw, key).chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": content}])
    return raw.headers.get("x-coo-llm-cache"), raw.parse()


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    cfg = config(
        [
            provider("w", upstream.url, ["W1"], models=["warm-model"]),
            provider("tight", upstream.url, ["TIGHT1"], models=["tight-model"], limits={"req_per_min": 1}),
        ],
        policy={"cache": {"enabled": True, "ttl_seconds": 4, "warm": True, "warm_min_hits": 2, "warm_before": "3s"}},
        workers={"warm_every": "1s"},
    )
    return start_gateway(cfg)


def test_a_hot_entry_is_refreshed_before_it_expires(gw, fake):
    prompt = uuid.uuid4().hex
    stored_by = time.monotonic()
    assert ask(gw, "warm-model", prompt)[0] == "miss"
    assert ask(gw, "warm-model", prompt)[0] == "hit"
    assert ask(gw, "warm-model", prompt)[0] == "hit"  # 2 hits: hot
    # The first entry lives 4 s. The warming run (every 1 s) that first sees it within 3 s of
    # expiring, 1 to 2 s after it was stored, replaces it with one that lives until 5 to 6 s.
    # Asking at 4.5 s, a hit can only come from that refresh.
    time.sleep(max(0.0, stored_by + 4.5 - time.monotonic()))
    assert fake.count("W1") >= 2  # the warming job called the upstream again, not a client
    assert ask(gw, "warm-model", prompt)[0] == "hit"


def test_a_cold_entry_expires(gw, fake):
    prompt = uuid.uuid4().hex
    ask(gw, "warm-model", prompt)
    time.sleep(4.5)
    assert fake.count("W1") == 1
    assert ask(gw, "warm-model", prompt)[0] == "miss"


def test_warming_obeys_key_limits(gw, fake):
    prompt = uuid.uuid4().hex
    ask(gw, "tight-model", prompt)  # takes the key's only slot this minute
    ask(gw, "tight-model", prompt)
    ask(gw, "tight-model", prompt)
    time.sleep(4.5)
    assert fake.count("TIGHT1") == 1  # hot, but the key had no room: no refresh was sent
    # ...and not because warming never ran: it tried, and the key's window refused it. (The
    # clients' 2nd and 3rd asks were cache hits, so only warming can have met the full window.)
    refusals = [line for line in httpx.get(gw.url + "/metrics").text.splitlines() if line.startswith('coo_llm_no_capacity_total{model="tight-model"}')]
    assert refusals and float(refusals[0].rsplit(" ", 1)[1]) >= 1


def test_warm_command_prewarms_entries_that_traffic_then_hits(start_gateway, upstream, redis_server, fake, tmp_path):
    redis_server.flush()
    cfg = config(
        [provider("w", upstream.url, ["W1"], models=["warm-model"])],
        client_keys=[{"key": "tenant-key", "cache_namespace": "tenant-x"}],
        policy={"cache": {"enabled": True, "ttl_seconds": 300}},
        storage={"runtime": {"type": "redis", "url": redis_server.url, "timeout": "1s"}},
    )
    gateway = start_gateway(cfg)
    prompts = [uuid.uuid4().hex, uuid.uuid4().hex]
    lines = [json.dumps({"model": "warm-model", "messages": [{"role": "user", "content": p}]}) for p in prompts]
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join(lines + ['{"model": "warm-model"}']) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "warm", str(requests), "--config", str(gateway.config_path), "--namespace", "tenant-x"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stderr  # one line was not a chat request
    assert "warmed 2, failed 0, skipped 1" in done.stdout and ":3: skipped" in done.stderr
    assert fake.count("W1") == 2
    for prompt in prompts:
        assert ask(gateway, "warm-model", prompt, key="tenant-key")[0] == "hit"
    assert fake.count("W1") == 2
