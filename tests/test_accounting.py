"""``finish_soon``: records handed over in one loop turn are all finished on the next, once."""

import asyncio

from app.accounting import RequestRecord, finish_soon


def test_records_of_one_turn_finish_together_on_the_next():
    async def scenario():
        records = [RequestRecord(f"r{i}", route="/health") for i in range(3)]
        for record in records:
            finish_soon(record)
        before = [record.finished for record in records]
        await asyncio.sleep(0)
        after = [record.finished for record in records]
        late = RequestRecord("late", route="/health")
        finish_soon(late)  # a later turn gets its own callback
        await asyncio.sleep(0)
        return before, after, late.finished

    before, after, late = asyncio.run(scenario())
    assert before == [False, False, False]
    assert after == [True, True, True]
    assert late is True


def test_a_loop_that_closed_before_its_turn_ended_does_not_stall_the_next():
    """A record handed over just before its loop stopped is finished by the next loop's turn,
    and that loop's own records are too (no flush is thought to be on its way)."""
    stranded = RequestRecord("stranded", route="/health")

    def hand_over_and_stop():
        finish_soon(stranded)
        loop.stop()  # this turn is the loop's last: the finishing callback never runs on it

    loop = asyncio.new_event_loop()
    loop.call_soon(hand_over_and_stop)
    loop.run_forever()
    loop.close()
    assert stranded.finished is False

    async def next_loop():
        record = RequestRecord("next", route="/health")
        finish_soon(record)
        await asyncio.sleep(0)
        return record.finished

    assert asyncio.run(next_loop()) is True
    assert stranded.finished is True
