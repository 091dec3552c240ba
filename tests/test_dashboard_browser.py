"""The admin dashboard in a real headless browser (Playwright driving Debian's Chromium).

A gateway of two web processes and a worker on one Redis serves the page; real requests go
through it to the fake upstream. The browser signs in, sees the numbers move, lifts a cooldown,
purges the cache and sees both take effect; a wrong key sees no data; nothing logs a console
error and the page talks to nobody but its gateway. The signed-in page is saved as
``docs/dashboard.png`` (the README shows it).

The clients panel reads the runtime clients API (``/admin/v1/clients``): a client created
through it shows with its spend against its budget, and revoking it from the page makes its key
fail on the gateway.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import shutil
import time
from pathlib import Path

import httpx
import pytest

from fakeupstream import Step
from gateway import WorkerProcess, config, provider
from servers import redis_command

ROOT = Path(__file__).resolve().parent.parent
# The README's screenshot: refreshed by ``COO_SCREENSHOT=docs/dashboard.png make test``; a plain run
# writes a temporary one (a test must not rewrite a committed file).
SCREENSHOT = Path(os.environ.get("COO_SCREENSHOT") or Path(tempfile.gettempdir()) / "coo-llm-dashboard.png")
if not SCREENSHOT.is_absolute():
    SCREENSHOT = ROOT / SCREENSHOT
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google's services.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ADMIN_KEY = "admin-secret-key"
CLIENT = {"authorization": "Bearer client-key"}
PRICING = {"input_token_cost": 0.15, "output_token_cost": 0.6}
WAIT_MS = 15_000  # the page refreshes every 3 s


@pytest.fixture(scope="module")
def playwright_browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("chromium is not installed (make test installs it: scripts/ensure-debs.sh chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed (it is in the test extras: pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def gw(start_gateway, upstream, redis):
    cfg = config(
        [
            provider("openai", upstream.url, ["OA-KEY-1", "OA-KEY-2"], models=["gpt-4o-mini"], pricing=PRICING, limits={"req_per_min": 500, "tokens_per_min": 200000}),
            provider("anthropic", upstream.url, ["AN-KEY-1"], type="anthropic", models=["claude-haiku-4-5"], pricing=PRICING, limits={"req_per_min": 50, "tokens_per_min": 40000}),
        ],
        policy={"retry": {"max_attempts": 2, "timeout": "5s"}, "cache": {"enabled": True, "ttl_seconds": 300}},
        storage={"runtime": {"type": "redis", "url": redis.url, "timeout": "1s"}},
        workers={"rollup_every": "1s"},
    )
    gateway = start_gateway(cfg, workers=2)
    worker = WorkerProcess(gateway.config_path, gateway.workdir)
    worker.start(ready=lambda: redis_command(redis.port, "EXISTS", "arq:queue:health-check").strip() == b":1")
    yield gateway
    worker.stop()


class Watched:
    """A page with everything it logged and every request it made."""

    def __init__(self, browser, base_url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=base_url)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("request", lambda request: self.requests.append(request))

    def sign_in(self, key: str) -> None:
        self.page.goto("/admin/")
        self.page.fill("#admin-key", key)
        self.page.click("#sign-in-button")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def close(self) -> None:
        self.context.close()


def chat(gw, model: str, content: str, **headers) -> httpx.Response:
    response = httpx.post(gw.url + "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": content}]}, headers={**CLIENT, **headers})
    return response


def number(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text) or "nan")


def test_signed_in_the_numbers_move_and_the_actions_take_effect(playwright_browser, gw, fake):
    watched = Watched(playwright_browser, gw.url)
    page = watched.page
    try:
        page.goto("/admin/")
        assert page.is_visible("#sign-in") and not page.is_visible("#dashboard")
        watched.sign_in(ADMIN_KEY)
        page.wait_for_selector('#keys-rows tr[data-key="openai#1"]', timeout=WAIT_MS)
        assert page.is_visible("#dashboard") and not page.is_visible("#sign-in")
        assert page.evaluate("() => document.cookie") == ""  # no cookie: the key rides in a header only
        rps_before = number(watched.text("#ov-rps"))

        # Live traffic through the gateway shows up by itself.
        for key in ("OA-KEY-1", "OA-KEY-2", "AN-KEY-1"):
            fake.set_default(key, Step(prompt_tokens=1200, completion_tokens=300))
        sent = [chat(gw, "gpt-4o-mini", f"question {i}") for i in range(12)] + [chat(gw, "claude-haiku-4-5", f"claude {i}") for i in range(3)]
        sent += [chat(gw, "gpt-4o-mini", "question 0"), chat(gw, "gpt-4o-mini", "question 1")]  # cache hits
        assert [r.status_code for r in sent] == [200] * len(sent)
        assert sent[-1].headers["x-coo-llm-cache"] == "hit"
        newest = sent[-1].headers["x-request-id"]
        page.wait_for_selector(f'#requests-rows tr[data-request="{newest}"]', timeout=WAIT_MS)
        page.wait_for_function("before => parseFloat(document.getElementById('ov-rps').textContent) > before", arg=rps_before, timeout=WAIT_MS)
        assert watched.text("#ov-p50").endswith("ms") and watched.text("#ov-p99").endswith("ms")
        assert watched.text("#ov-cache").endswith("%") and number(watched.text("#ov-cache")) > 0
        page.wait_for_function("() => document.getElementById('ov-tokens').textContent.replace(/,/g, '') === '22500'", timeout=WAIT_MS)  # 15 x 1,500
        assert watched.text("#ov-usd") == "$5.40"  # 15 x (1,200 x 0.15 + 300 x 0.6) / 1,000 (prices per 1k tokens)
        row = page.locator(f'#requests-rows tr[data-request="{sent[0].headers["x-request-id"]}"]')
        assert "gpt-4o-mini" in row.inner_text() and "question 0" not in page.content()  # ids and numbers, never the prompt
        assert "1,200 / 300" in row.inner_text()
        openai_row = page.locator('#keys-rows tr[data-key="openai#1"]').inner_text()
        assert "/ 500" in openai_row and "/ 200,000" in openai_row  # windows against their limits
        assert "arq on Redis" in watched.text("#queue-backend") and "rollup_usage" in watched.text("#outcomes-rows")

        # A key that rests: shown cooling, then lifted from the page.
        fake.script("AN-KEY-1", Step(status=429, headers={"retry-after": "120"}))
        assert chat(gw, "claude-haiku-4-5", "rate limited").status_code == 429
        key_row = page.locator('#keys-rows tr[data-key="anthropic#1"]')
        key_row.locator(".pill.bad").wait_for(timeout=WAIT_MS)
        assert "cooling" in key_row.inner_text() and re.search(r"\b1m \d\ds\b|\b\d+s\b", key_row.inner_text())
        page.wait_for_timeout(3200)  # one more refresh: the sparkline has points
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        key_row.locator('button[data-action="reset"]').click()
        page.wait_for_function("() => document.getElementById('action-status').textContent.includes('anthropic#1: cooldown lifted')", timeout=WAIT_MS)
        key_row.locator(".pill.ok").wait_for(timeout=WAIT_MS)
        keys = httpx.get(gw.url + "/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["data"]
        assert [k["cooldown_left_s"] for k in keys if k["id"] == "anthropic#1"] == [0]
        assert chat(gw, "claude-haiku-4-5", "after the reset").status_code == 200

        # Purging the cache asks once more, then the next identical request is a miss.
        purge = page.locator("#purge-cache")
        purge.click()
        assert purge.inner_text() == "Confirm purge"
        purge.click()
        page.wait_for_function("() => /Cache purged: [1-9]/.test(document.getElementById('action-status').textContent)", timeout=WAIT_MS)
        assert chat(gw, "gpt-4o-mini", "question 0").headers["x-coo-llm-cache"] == "miss"

        assert watched.errors == []
        outside = [r.url for r in watched.requests if not r.url.startswith(gw.url + "/admin/")]
        assert outside == []  # no CDN, no other host: the page and its API only
        api_calls = [r for r in watched.requests if r.url.startswith(gw.url + "/admin/v1/")]
        assert api_calls and all(r.headers.get("authorization") == f"Bearer {ADMIN_KEY}" and "cookie" not in r.headers for r in api_calls)
        assert any(r.url.startswith(gw.url + "/admin/v1/clients") for r in api_calls)  # the clients panel reads its API
        assert SCREENSHOT.stat().st_size > 20_000

        # Signing out forgets the key and the data.
        page.click("#sign-out")
        assert page.is_visible("#sign-in") and page.evaluate("() => sessionStorage.length") == 0
        assert page.locator("#requests-rows tr").count() == 0
    finally:
        watched.close()


def test_a_wrong_key_gets_no_data(playwright_browser, gw, fake):
    assert chat(gw, "gpt-4o-mini", "something to show").status_code == 200  # there is data to leak
    watched = Watched(playwright_browser, gw.url)
    page = watched.page
    try:
        watched.sign_in("not-the-admin-key")
        page.wait_for_function("() => document.getElementById('sign-in-error').textContent.length > 0", timeout=WAIT_MS)
        assert "not this gateway's admin key" in watched.text("#sign-in-error")
        page.wait_for_timeout(3500)  # a refresh would have happened by now
        assert not page.is_visible("#dashboard")
        assert page.locator("#requests-rows tr, #keys-rows tr").count() == 0 and watched.text("#ov-rps") == "–"
        assert page.evaluate("() => sessionStorage.length") == 0
        answered = [(r.url, r.response().status) for r in watched.requests if "/admin/v1/" in r.url]
        assert answered and all(status == 401 for _, status in answered), answered
        # A key kept in the tab that stopped being valid: signed out at once, nothing shown.
        page.evaluate("() => sessionStorage.setItem('coo-llm-admin-key', 'stale-key')")
        page.reload()
        page.wait_for_function("() => document.getElementById('sign-in-error').textContent.includes('not accepted')", timeout=WAIT_MS)
        assert page.locator("#requests-rows tr, #keys-rows tr").count() == 0
        assert "gpt-4o-mini" not in page.content() and "openai#1" not in page.content()
        assert all("401" in error for error in watched.errors), watched.errors  # the refused calls, nothing else
    finally:
        watched.close()


def test_the_clients_panel_shows_spend_and_revokes_a_real_client(playwright_browser, gw, fake):
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    created = httpx.post(gw.url + "/admin/v1/clients", headers=admin, json={
        "name": "search team", "allowed_providers": ["*"], "limits": {"req_per_min": 60}, "budgets": {"usd_per_day": 10.0, "usd_per_month": 200.0},
    })
    assert created.status_code == 201, created.text
    client = created.json()
    key = {"authorization": f"Bearer {client['key']}"}
    spent = httpx.post(gw.url + "/v1/chat/completions", headers=key, timeout=20,
                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "bill me"}]})
    assert spent.status_code == 200
    watched = Watched(playwright_browser, gw.url)
    page = watched.page
    try:
        watched.sign_in(ADMIN_KEY)
        row = page.locator(f'#clients-rows tr[data-client="{client["id"]}"]')
        row.wait_for(timeout=WAIT_MS)
        text = row.inner_text()
        for shown in ("search team", client["key_hint"], "/ $10.00", "/ $200.00", "req_per_min 60", "active"):
            assert shown in text, shown
        assert client["key"] not in page.content()  # the page never sees a client's key
        revoke = row.locator('button[data-action="revoke"]')
        revoke.click()
        assert revoke.inner_text() == "Confirm revoke"  # the first click only arms it
        revoke.click()
        page.wait_for_function(f"() => document.getElementById('action-status').textContent.includes('{client['id']} revoked')", timeout=WAIT_MS)
        def refused() -> bool:  # every web process learns of a revocation within a second
            return httpx.post(gw.url + "/v1/chat/completions", headers=key, timeout=20,
                              json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "again"}]}).status_code == 401

        time.sleep(1.0)
        assert all(refused() for _ in range(6))
        assert httpx.get(gw.url + f"/admin/v1/clients/{client['id']}", headers=admin).json()["revoked"] is True
        assert watched.errors == []
    finally:
        watched.close()


def test_the_queue_panel_shows_a_batch_in_progress_until_it_ends(playwright_browser, gw, fake):
    """A batch run by the worker shows in the queue panel with its progress while it runs, and
    leaves the panel when it is done."""
    from openai import OpenAI

    client = OpenAI(base_url=gw.url + "/v1", api_key="client-key", max_retries=0)
    for key in ("OA-KEY-1", "OA-KEY-2"):
        fake.set_default(key, Step(delay=4.0))  # the batch stays in progress for a few page refreshes
    watched = Watched(playwright_browser, gw.url)
    page = watched.page
    try:
        lines = [
            {"custom_id": f"q-{n}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"batch question {n}"}]}}
            for n in range(3)
        ]
        source = client.files.create(file=("questions.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode()), purpose="batch")
        batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
        watched.sign_in(ADMIN_KEY)
        row = f'#batches-rows tr[data-batch="{batch.id}"]'
        page.wait_for_selector(row, timeout=WAIT_MS)
        page.wait_for_selector(f"{row} td:has-text('/ 3')", timeout=WAIT_MS)  # validated: its 3 lines counted
        cells = [cell.inner_text() for cell in page.query_selector_all(f"{row} td")]
        assert cells[0] == batch.id and cells[1] == "/v1/chat/completions"
        assert cells[2] in ("in_progress", "finalizing")
        assert re.fullmatch(r"[0-3] / 3", cells[3]) and cells[4] == "0", cells
        assert "batch pump" in watched.text("#batch-pumps")

        page.wait_for_selector(row, state="detached", timeout=40_000)
        finished = client.batches.retrieve(batch.id)
        assert finished.status == "completed" and finished.request_counts.completed == 3
        assert "No batch in progress." in watched.text("#batches-rows")
        assert watched.errors == []
    finally:
        for key in ("OA-KEY-1", "OA-KEY-2"):
            fake.set_default(key, Step())
        watched.close()
