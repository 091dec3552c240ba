"""The pieces of ``app.governance`` and the headers it feeds, on real values."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import orjson
import pytest

from adapters.sse import frame
from app.accounting import RateWindow, RequestRecord, frames_with_cost
from app.auth import Principal, Rules
from app.calls import Call
from app.config import settings_from_data
from app.endpoints import CHAT
from app.governance import FREE, Governor, Period, budget_remaining
from app.routes.respond import served_headers
from app.service import Plan
from balancer.catalog import Catalog
from balancer.pool import Balancer
from storage.memory import MemoryStore

SETTINGS = settings_from_data(
    {
        "llm_providers": [
            {"id": "cheap", "type": "openai", "api_keys": ["k1"], "models": ["m"], "pricing": {"input_token_cost": 1, "output_token_cost": 2}},
            {"id": "dear", "type": "openai", "api_keys": ["k2"], "models": ["m"], "pricing": {"input_token_cost": 3, "output_token_cost": 4}, "limits": {"max_tokens": 50}},
        ]
    }
)


class Untouchable:
    """A store that fails on any use: proves a code path makes no store call."""

    shared = True

    def __getattr__(self, name):
        raise AssertionError(f"the store was used: {name}")


def plan(principal: Principal, *, max_tokens: int | None = 100, prompt_tokens: int = 10) -> Plan:
    targets = Catalog(SETTINGS).resolve("m", lambda _: True)
    return Plan(Call(endpoint=CHAT, body={}, model="m", principal=principal, max_tokens=max_tokens, prompt_tokens=prompt_tokens), list(targets), {})


def test_a_principal_without_rules_costs_no_store_call():
    governor = Governor(SETTINGS, Untouchable(), Balancer(SETTINGS, MemoryStore()))
    record = RequestRecord("r")

    async def scenario():
        admission = await governor.admit(plan(Principal("ck-free")), record)
        await admission.settle(record)
        return admission

    assert asyncio.run(scenario()) is FREE
    assert record.ratelimit is None and record.budget_remaining is None


def test_the_worst_case_is_the_dearest_target_at_its_own_completion_cap():
    governor = Governor(SETTINGS, MemoryStore(), Balancer(SETTINGS, MemoryStore()))
    tokens, usd = governor.worst_case(plan(Principal("x"), max_tokens=100))
    # cheap: 10 x 0.001 + 100 x 0.002 = 0.21; dear caps completion at 50: 10 x 0.003 + 50 x 0.004 = 0.23
    assert tokens == 110 and usd == pytest.approx(0.23)
    tokens, usd = governor.worst_case(plan(Principal("x"), max_tokens=None))  # no cap: the policy default (1024)
    assert tokens == 10 + 1024 and usd == pytest.approx(max(10 * 0.001 + 1024 * 0.002, 10 * 0.003 + 50 * 0.004))


def test_periods_are_utc_calendar_days_and_months():
    moment = datetime(2026, 12, 31, 23, 59, 30, tzinfo=timezone.utc).timestamp()
    period = Period.of(moment)
    assert (period.day, period.month) == ("2026-12-31", "2026-12")
    assert period.day_ends == datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp() == period.month_ends
    assert Period.of(datetime(2027, 2, 10, 5, tzinfo=timezone.utc).timestamp()).month_ends == datetime(2027, 3, 1, tzinfo=timezone.utc).timestamp()
    assert period.fields() == ("usd:2026-12-31", "usd:2026-12", "req:2026-12-31", "tok:2026-12-31")


def test_budget_remaining_is_the_tighter_budget_never_below_zero():
    period = Period.of(0.0)
    values = {period.usd_day: 0.75, period.usd_month: 9.5}
    assert budget_remaining(Rules(usd_per_day=1.0, usd_per_month=10.0), period, values) == pytest.approx(0.25)
    assert budget_remaining(Rules(usd_per_day=5.0, usd_per_month=10.0), period, values) == pytest.approx(0.5)
    assert budget_remaining(Rules(usd_per_day=0.5), period, values) == 0.0
    assert budget_remaining(Rules(req_per_min=3), period, values) is None


def test_the_usage_chunk_gets_the_cost_and_nothing_else_changes():
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    content = frame({**head, "choices": [{"index": 0, "delta": {"content": "usage"}, "finish_reason": None}]})
    usage = frame({**head, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})
    done = b"data: [DONE]\n\n"
    out = frames_with_cost([content, usage, done], 0.00123)
    assert out[0] is content and out[2] is done
    assert orjson.loads(out[1][6:])["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost_usd": 0.00123}
    assert orjson.loads(frames_with_cost([usage], None)[0][6:])["usage"]["cost_usd"] is None


def test_served_headers_render_the_clients_windows_and_budget():
    record = RequestRecord("req_1")
    record.charge(10, 5, 0.0000125)
    record.ratelimit = RateWindow(limit_requests=60, limit_tokens=None, requests=15, tokens=400)
    record.budget_remaining = 1.5
    headers = served_headers(record)
    assert headers["x-coo-llm-cost-usd"] == "0.0000125"
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"], headers["x-ratelimit-reset-requests"]) == ("60", "45", "15s")
    assert not any("tokens" in name for name in headers)
    assert headers["x-coo-llm-budget-remaining-usd"] == "1.5"
    record.cost, record.stream = None, False
    assert "x-coo-llm-cost-usd" not in served_headers(record)  # unknown price: no number


def test_past_spend_fields_are_dropped_once_a_day():
    store = MemoryStore()
    now = datetime(2026, 12, 4, 12, tzinfo=timezone.utc).timestamp()
    governor = Governor(SETTINGS, store, Balancer(SETTINGS, store), clock=lambda: now)
    principal = Principal("cl_old", rules=Rules(usd_per_day=10.0))

    async def scenario():
        await store.counters_add("spend:cl_old", {"usd:2026-12-03": 4.0, "req:2026-12-03": 7, "usd:2026-11": 40.0, "usd:2026-12": 4.0})
        record = RequestRecord("r")
        admission = await governor.admit(plan(principal), record)
        record.charge(10, 5, 0.02)
        await admission.settle(record)
        await asyncio.gather(*governor._tasks)
        return await store.counters_get("spend:cl_old")

    values = asyncio.run(scenario())
    assert set(values) == {"usd:2026-12-04", "usd:2026-12", "req:2026-12-04", "tok:2026-12-04"}
    assert values["usd:2026-12"] == pytest.approx(4.02) and values["req:2026-12-04"] == 1
