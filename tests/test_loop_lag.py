"""The gateway watches its own event loop: /metrics exposes the lag histogram, and it keeps sampling."""

from __future__ import annotations

import re
import time

import httpx

from conftest import openai_client
from gateway import config, provider


def lag_count(gateway) -> float:
    text = httpx.get(gateway.url + "/metrics", timeout=5).text
    match = re.search(r"^coo_llm_event_loop_lag_seconds_count (\S+)$", text, re.M)
    assert match, "the event-loop lag histogram is missing from /metrics"
    return float(match[1])


def test_loop_lag_is_sampled_while_serving(fake, start_gateway):
    gateway = start_gateway(config([provider("p1", fake.url, ["sk-lag-1"])]))
    client = openai_client(gateway)
    before = lag_count(gateway)
    for _ in range(5):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    time.sleep(0.3)  # several sampling intervals
    assert lag_count(gateway) > before
