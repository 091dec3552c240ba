"""A client's own limits and USD budgets, enforced where every request passes: ``Service``.

``Governor.admit(plan, record) -> Admission`` runs once per request, after the plan (so it knows
the targets) and before the cache and the upstream; ``Admission.settle(record)`` runs exactly once
when the service settles the request (a unary answer in ``Service.answer``, a stream when its
``Relay`` closes, and every failure and client-gone path in between). A principal without rules
(``Principal.rules is None``: no limits, no budgets) gets the shared ``FREE`` admission: no store
call, no allocation.

What ``admit`` does for a principal with rules, in this order:

1. Unpriced targets (only with a budget): ``policy.unpriced: deny`` leaves targets whose price is
   unknown out of the plan (403 ``model_unpriced`` when none is left); ``allow`` keeps them, with
   one warning per (client, provider, model): what they cost is not charged to the budget.
2. Budget: one ``counters_add`` (storage contract 9) on the client's spend counters
   (``spend:<id>``) adds the request's worst case, its prompt estimate plus its completion cap
   (``Balancer.completion_estimate``) at the dearest target of the plan, to the fields of the
   current UTC day and UTC month at once, refused whole if either would pass its budget: 429
   ``budget_exceeded`` with ``Retry-After`` up to the end of that period. So processes sharing a
   store never admit more worst-case spend than a budget; settling only replaces a reservation by
   the real cost, so spend passes a budget only where a request cost more than its worst case.
3. Windows: the same atomic ``reserve`` as provider keys, on the state id ``client:<id>``, with
   the prompt estimate plus the largest completion estimate of the plan; refused: 429
   ``rate_limit_exceeded`` with the window's ``Retry-After`` (and the budget reservation is given
   back). The window's state after the reservation goes on the record for the headers.

``settle`` replaces the window entry's tokens by the real ones and, in one ``counters_add`` on the
same counter set, swaps the budget reservation for the real cost (``record.cost``; null, an
unknown price, counts 0) and counts the request and its tokens for the day. Settling never raises:
the answer exists already; a store failure there is logged and the reservation stays charged.

The budget needs the shared store: when it cannot be reached, a budgeted request is refused with
503 ``storage_unavailable`` rather than spent unchecked. Windows keep working through a
degraded store (per process, as for provider keys).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

from loguru import logger

from app import metrics
from app.accounting import RateWindow, RequestRecord
from app.auth import Principal, Rules
from app.errors import BudgetExceeded, ClientRateLimited, PermissionDenied, StorageUnavailable
from storage.base import WINDOW_SECONDS, Refusal, Reservation, WindowLimits

if TYPE_CHECKING:
    from app.service import Plan

DAY = 86400
SPEND_TTL = 40 * DAY  # a client's spend counters outlive its month; an idle client's set then expires
WARNED_MAX = 4096
PRUNED_MAX = 10_000  # clients whose past spend fields this process dropped today (forgotten all at once beyond)


def window_id(client_id: str) -> str:
    """The state id of a client's own windows (provider keys use their ``ProviderKey.id``)."""
    return f"client:{client_id}"


def spend_name(client_id: str) -> str:
    """The counter set holding a client's spend (contract 9)."""
    return f"spend:{client_id}"


@dataclass(frozen=True, slots=True)
class Period:
    """The UTC calendar day and month a moment falls in, and the spend counter fields of each."""

    day: str  # 2026-12-04
    month: str  # 2026-12
    day_ends: float  # unix seconds
    month_ends: float

    @classmethod
    def of(cls, now: float) -> "Period":
        moment = datetime.fromtimestamp(now, timezone.utc)
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        day_start = now - now % DAY
        return cls(moment.strftime("%Y-%m-%d"), moment.strftime("%Y-%m"), day_start + DAY, datetime(year, month, 1, tzinfo=timezone.utc).timestamp())

    @property
    def usd_day(self) -> str:
        return f"usd:{self.day}"

    @property
    def usd_month(self) -> str:
        return f"usd:{self.month}"

    @property
    def requests_day(self) -> str:
        return f"req:{self.day}"

    @property
    def tokens_day(self) -> str:
        return f"tok:{self.day}"

    def fields(self) -> tuple[str, ...]:
        return (self.usd_day, self.usd_month, self.requests_day, self.tokens_day)


def budget_remaining(rules: Rules, period: Period, values: dict[str, float]) -> float | None:
    """USD left in the tighter of the client's budgets (never below 0); None without a budget."""
    left = []
    if rules.usd_per_day is not None:
        left.append(rules.usd_per_day - values.get(period.usd_day, 0.0))
    if rules.usd_per_month is not None:
        left.append(rules.usd_per_month - values.get(period.usd_month, 0.0))
    return max(0.0, min(left)) if left else None


async def _settled(call):
    """``call``'s result, or the exception it raised (as ``gather(return_exceptions=True)`` gives)."""
    try:
        return await call
    except Exception as error:
        return error


class Admission:
    """One request's hold on its client's windows and budget; ``settle`` gives it back once."""

    __slots__ = ("_governor", "principal", "rules", "period", "tokens", "usd", "reservation", "_settled")

    def __init__(self, governor: "Governor", principal: Principal, rules: Rules, period: Period, tokens: int, usd: float) -> None:
        self._governor = governor
        self.principal = principal
        self.rules = rules
        self.period = period
        self.tokens = tokens  # reserved in the client's token window
        self.usd = usd  # reserved in its budget (0 without one)
        self.reservation: Reservation | None = None
        self._settled = False

    async def settle(self, record: RequestRecord) -> None:
        """Charge what the request spent (``record``'s tokens and cost); later calls do nothing.
        Shielded: a client hanging up mid-settle must not leave the reservation half given back."""
        if self._settled:
            return
        self._settled = True
        await asyncio.shield(self._governor._settle(self, record))


class _Free:
    """The admission of a principal without rules: nothing was reserved, nothing to settle."""

    __slots__ = ()

    async def settle(self, record: RequestRecord) -> None:
        return None


FREE = _Free()


class Governor:
    """See the module docstring. One per ``Service``."""

    def __init__(self, settings, store, balancer, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.balancer = balancer
        self._deny_unpriced = settings.policy.unpriced == "deny"
        self._clock = clock
        self._warned: set[tuple[str, str, str]] = set()
        self._shared = bool(getattr(store, "shared", False))
        self._period = Period.of(clock())
        self._pruned: dict[str, str] = {}  # client id -> the day its past spend fields were dropped
        self._tasks: set[asyncio.Task] = set()

    def period(self, now: float) -> Period:
        """The current ``Period``, computed once per UTC day."""
        period = self._period
        if not now < period.day_ends or now < period.day_ends - DAY:
            period = self._period = Period.of(now)
        return period

    async def admit(self, plan: "Plan", record: RequestRecord) -> Admission | _Free:
        rules = plan.call.principal.rules
        if rules is None:
            return FREE
        return await self._admit(plan, record, plan.call.principal, rules)

    async def _admit(self, plan: "Plan", record: RequestRecord, principal: Principal, rules: Rules) -> Admission:
        if rules.budgeted:
            self._price_check(plan, principal)
        tokens, usd = self.worst_case(plan)
        now = self._clock()
        period = self.period(now)
        admission = Admission(self, principal, rules, period, tokens, usd if rules.budgeted else 0.0)
        values: dict[str, float] = {}
        if rules.budgeted:
            values = await self._reserve_budget(admission)
        if rules.windowed:
            state_id = window_id(principal.id)
            limits = WindowLimits(rules.req_per_min, rules.tokens_per_min)
            try:
                result = await self.store.reserve(state_id, tokens=tokens, limits=limits, now=now)
                state = None
                if isinstance(result, Reservation):
                    state = result.state or (await self.store.key_states([state_id], window=WINDOW_SECONDS, now=now))[state_id]
            except Exception as error:
                await self._refund(admission)
                raise StorageUnavailable(error) from None
            if isinstance(result, Refusal):
                await self._refund(admission)
                what = "requests" if result.reason == "requests" else "tokens"
                metrics.child(metrics.CLIENT_REFUSALS, what).inc()
                limit = rules.req_per_min if what == "requests" else rules.tokens_per_min
                raise ClientRateLimited(
                    f"Rate limit reached for this API key: {limit} {what} per minute. Retry after the indicated time.",
                    retry_after=result.retry_after,
                )
            admission.reservation = result
            record.ratelimit = RateWindow(rules.req_per_min, rules.tokens_per_min, state.requests, state.tokens)
        if rules.budgeted:
            record.budget_remaining = budget_remaining(rules, period, values)
        return admission

    def worst_case(self, plan: "Plan") -> tuple[int, float]:
        """(tokens, USD) the request may spend at most: its prompt estimate plus the largest
        completion estimate of the plan's targets, and that at the dearest target's price."""
        call = plan.call
        prompt = call.prompt_tokens
        tokens, usd = prompt, 0.0
        for target in plan.targets:
            completion = self.balancer.completion_estimate(target, call.max_tokens)
            tokens = max(tokens, prompt + completion)
            if target.price is not None:
                usd = max(usd, target.price.tokens_cost(prompt, completion))
        return tokens, usd

    def _price_check(self, plan: "Plan", principal: Principal) -> None:
        """``policy.unpriced`` for a budgeted client (step 1 of the module docstring)."""
        unpriced = [t for t in plan.targets if t.price is None]
        if not unpriced:
            return
        if self._deny_unpriced:
            plan.targets = [t for t in plan.targets if t.price is not None]
            if not plan.targets:
                raise PermissionDenied(
                    f"No price is known for '{plan.call.model}', and this API key has a USD budget (policy.unpriced: deny).",
                    param="model",
                    code="model_unpriced",
                )
            return
        for target in unpriced:
            seen = (principal.id, target.provider_id, target.model)
            if seen not in self._warned and len(self._warned) < WARNED_MAX:
                self._warned.add(seen)
                logger.warning(
                    "a budgeted client uses a model with no known price: its cost is not charged to the budget",
                    client=principal.id,
                    provider=target.provider_id,
                    model=target.model,
                )

    async def _reserve_budget(self, admission: Admission) -> dict[str, float]:
        rules, period, usd = admission.rules, admission.period, admission.usd
        limits = {}
        if rules.usd_per_day is not None:
            limits[period.usd_day] = rules.usd_per_day
        if rules.usd_per_month is not None:
            limits[period.usd_month] = rules.usd_per_month
        try:
            applied, values = await self.store.counters_add(
                spend_name(admission.principal.id), {period.usd_day: usd, period.usd_month: usd}, limits=limits, ttl=SPEND_TTL
            )
        except Exception as error:
            raise StorageUnavailable(error) from None
        if applied:
            return values
        day_full = rules.usd_per_day is not None and values.get(period.usd_day, 0.0) + usd > rules.usd_per_day
        month_full = rules.usd_per_month is not None and values.get(period.usd_month, 0.0) + usd > rules.usd_per_month
        which, budget, resets = ("month", rules.usd_per_month, period.month_ends) if month_full or not day_full else ("day", rules.usd_per_day, period.day_ends)
        admission._settled = True  # nothing was reserved
        metrics.child(metrics.CLIENT_REFUSALS, "budget").inc()
        raise BudgetExceeded(
            f"This API key's USD budget for the UTC {which} ({budget:g}) has no room for this request "
            f"(up to {usd:.6f} USD); it resets at the start of the next UTC {which}.",
            retry_after=max(1.0, resets - self._clock()),
        )

    async def _refund(self, admission: Admission) -> None:
        """Give the budget reservation back (the request was refused after it)."""
        admission._settled = True
        if not admission.usd:
            return
        period = admission.period
        try:
            await self.store.counters_add(spend_name(admission.principal.id), {period.usd_day: -admission.usd, period.usd_month: -admission.usd}, ttl=SPEND_TTL)
        except Exception as error:
            logger.warning("a budget reservation could not be given back", client=admission.principal.id, error=repr(error))

    async def _settle(self, admission: Admission, record: RequestRecord) -> None:
        period = admission.period
        used = record.prompt_tokens + record.completion_tokens
        cost = record.cost or 0.0
        change = cost - admission.usd
        deltas = {period.usd_day: change, period.usd_month: change, period.requests_day: 1, period.tokens_day: used}
        calls = [self.store.counters_add(spend_name(admission.principal.id), deltas, ttl=SPEND_TTL)]
        if admission.reservation is not None:
            calls.append(self.store.settle(admission.reservation, tokens=used, failed=None, latency=None, now=self._clock()))
        if self._shared and len(calls) > 1:  # one round trip for both (on Redis, one pipeline)
            results = await asyncio.gather(*calls, return_exceptions=True)
        else:  # in-process: awaiting in turn costs no extra task or loop turn
            results = [await _settled(call) for call in calls]
        for result in results:
            if isinstance(result, BaseException):
                logger.warning("a client's spend could not be settled", client=admission.principal.id, request_id=record.request_id, error=repr(result))
        counted = results[0]
        if not isinstance(counted, BaseException) and admission.rules.budgeted:
            record.budget_remaining = budget_remaining(admission.rules, period, counted[1])
        if self._pruned.get(admission.principal.id) != period.day:
            self._prune_later(admission.principal.id, period)
        if record.ratelimit is not None:
            record.ratelimit.tokens += used - admission.tokens

    def _prune_later(self, client_id: str, period: Period) -> None:
        """Once per client per UTC day and process, off the request path: drop the spend fields
        of past days and months (a client busy every day would otherwise add three a day)."""
        if len(self._pruned) >= PRUNED_MAX:
            self._pruned.clear()
        self._pruned[client_id] = period.day
        task = asyncio.get_running_loop().create_task(self._prune(client_id, period))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prune(self, client_id: str, period: Period) -> None:
        name = spend_name(client_id)
        try:
            stale = [field for field in await self.store.counters_get(name) if field not in period.fields()]
            if stale:
                await self.store.counters_drop(name, stale)
        except Exception as error:  # the next day tries again
            logger.debug("past spend fields not dropped", client=client_id, error=repr(error))
