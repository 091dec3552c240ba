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
