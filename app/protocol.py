"""Sanic's HTTP protocol with read timeouts a slow client cannot push back.

Sanic's own ``REQUEST_TIMEOUT`` restarts on every byte received, so a client that dribbles its
headers or body one byte at a time holds a connection (and its buffers) forever; and a body is
read while the request is already in the handler stage, where only the (long: streams)
response timeout applies. ``TimedProtocol`` measures each phase from its start instead:

- headers: from the request's first byte until its headers are complete, ``server.header_timeout``;
- body: from then until the last body byte, ``server.body_timeout``.

Past either, the client gets ``408`` and the connection is closed. Idle keep-alive connections
close after ``server.keep_alive_timeout`` (Sanic's). Phases are checked every ``CHECK_EVERY``
seconds, so a limit holds to within that.
"""

from __future__ import annotations

from time import monotonic

from sanic.exceptions import RequestTimeout
from sanic.http import Stage
from sanic.server.protocols.http_protocol import HttpProtocol

CHECK_EVERY = 0.5


class TimedProtocol(HttpProtocol):
    __slots__ = ("_phase", "_phase_since")

    header_timeout = 10.0
    body_timeout = 30.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._phase: str | None = None
        self._phase_since = 0.0

    @classmethod
    def configure(cls, server) -> None:
        """Take the limits of ``server`` (a ``ServerConfig``). Class attributes, set by
        ``create_app`` in every web process: Sanic hands worker processes the class by name."""
        cls.header_timeout = server.header_timeout
        cls.body_timeout = server.body_timeout

    def check_timeouts(self) -> None:
        http = self._http
        if self._task and http is not None:
            stage = http.stage
            phase = "headers" if stage is Stage.REQUEST else "body" if stage is Stage.HANDLER and http.request_body else None
            now = monotonic()
            if phase != self._phase:
                self._phase, self._phase_since = phase, now
            limit = self.header_timeout if phase == "headers" else self.body_timeout if phase == "body" else None
            if limit is not None and now - self._phase_since > limit:
                http.exception = RequestTimeout(f"The request's {phase} did not arrive within {limit:g} s.")
                self._task.cancel("read timeout")
                return
            if phase is not None:  # come back sooner than Sanic would: the phase limits are short
                self._callback_check_timeouts = self.loop.call_later(CHECK_EVERY, self.check_timeouts)
                return
        super().check_timeouts()
