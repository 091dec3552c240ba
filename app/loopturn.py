"""``OncePerTurn``: work added up during an event-loop turn, done once at its end."""

from __future__ import annotations

import asyncio
from typing import Callable


class OncePerTurn:
    """Calls ``flush`` once, on the loop's next turn, however often ``schedule`` is called in this
    one. ``schedule`` answers False when no loop is running (the caller then flushes itself).

    It remembers the loop it scheduled on, not a flag: a loop closed before its callback ran (a
    test's ``asyncio.run``, a process stopping) must not leave the next loop thinking a flush is
    on its way."""

    __slots__ = ("_flush", "_loop")

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._loop: asyncio.AbstractEventLoop | None = None

    def schedule(self) -> bool:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._loop is not loop:
            self._loop = loop
            loop.call_soon(self._run)
        return True

    def _run(self) -> None:
        self._loop = None
        self._flush()
