"""OncePerTurn and the metrics Tally built on it: one flush per loop turn, and a loop that stopped
before its flush ran does not keep the next loop's counts back."""

import asyncio

from prometheus_client import CollectorRegistry, Counter

from app.loopturn import OncePerTurn
from app.metrics import Tally


def test_many_schedules_in_one_turn_flush_once_on_the_next():
    flushes = []
    turn = OncePerTurn(lambda: flushes.append(1))

    async def main():
        answers = [turn.schedule() for _ in range(5)]
        before = len(flushes)
        await asyncio.sleep(0)
        return answers, before, len(flushes)

    answers, before, after = asyncio.run(main())
    assert answers == [True] * 5
    assert (before, after) == (0, 1)


def test_without_a_running_loop_schedule_says_so():
    turn = OncePerTurn(lambda: None)
    assert turn.schedule() is False


def test_a_tally_whose_loop_stopped_early_still_counts_on_the_next_loop():
    counter = Counter("loopturn_test_total", "test", registry=CollectorRegistry())
    tally = Tally()

    def count_and_stop():
        tally.count(counter, (), 2)
        loop.stop()  # the flush scheduled above never runs on this loop

    loop = asyncio.new_event_loop()
    loop.call_soon(count_and_stop)
    loop.run_forever()
    loop.close()
    assert counter._value.get() == 0

    async def next_loop():
        tally.count(counter, (), 3)
        await asyncio.sleep(0)

    asyncio.run(next_loop())
    assert counter._value.get() == 5
