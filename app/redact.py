"""Scrubbing provider keys out of text that came from an upstream.

Upstreams sometimes echo the key they were sent (``Incorrect API key provided: sk-...``). Every
upstream message passes through ``Redactor.scrub`` before it reaches a response or a log line.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"
# Long key-like tokens (sk-..., AIza..., sk-ant-...) are masked even when not ours: an upstream
# may echo a partial or different key, and no legitimate error text needs one.
_KEY_LIKE = re.compile(r"\b(?:sk-[A-Za-z0-9_\-*]{8,}|AIza[0-9A-Za-z_\-]{20,})")


class Redactor:
    def __init__(self, secrets) -> None:
        unique = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in unique)) if unique else None

    def scrub(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _KEY_LIKE.sub(REDACTED, text)

    def scrub_envelope(self, envelope: dict) -> dict:
        error = dict(envelope.get("error") or {})
        for field in ("message", "param", "code", "type"):
            if isinstance(error.get(field), str):
                error[field] = self.scrub(error[field])
        return {**envelope, "error": error}
