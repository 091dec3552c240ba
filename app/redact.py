"""Scrubbing secrets (provider keys) out of text, bytes and JSON-like values.

Upstreams echo the key they were sent, whole or in part (``Incorrect API key provided:
sk-abc...wxyz``), in any field of an error body: ``message``, but also ``param`` as an object or
``code`` as a list. Every upstream answer, stream frame and log line can pass through one
``Redactor`` before it reaches a client or a stream.

Contract of ``Redactor(secrets)`` (any iterable of strings; empty entries and entries shorter than
4 characters are ignored, they would redact ordinary words):

- A *run* is 8 or more consecutive characters of one secret (``RUN``). Every run found anywhere
  is replaced, as far as it reaches (the maximal run: the match is extended as long as the text
  keeps matching that secret), by ``[redacted]``. Runs that overlap or touch, of one secret or of
  several, become one ``[redacted]``.
- A secret of 4 to 7 characters is matched whole only. A prefix that keys share is a run too
  when it is 8 characters or longer (``sk-proj-``, ``sk-ant-api03-``): it is redacted wherever it
  appears, even alone.
- Key-like tokens are masked too, ours or not: ``sk-`` followed by 8 or more of
  ``[A-Za-z0-9_-*]`` and ``AIza`` followed by 20 or more of ``[A-Za-z0-9_-]``, starting at a
  word boundary (ASCII: ``risk-free`` and ``task-0123456789`` are kept).
- Matching is exact (case-sensitive) on the UTF-8 form: bytes are searched as they are (invalid
  UTF-8 is kept byte for byte), text is encoded first (``surrogatepass``). A run counts
  characters, not bytes. In JSON a secret's ``"`` or ``\\`` is escaped, so there only its runs
  between such characters can match.
- When nothing matches, ``scrub`` and ``scrub_bytes`` return their argument itself (no copy), and
  ``scrub_value`` returns the value itself.

Methods: ``scrub(text) -> str``; ``scrub_bytes(data) -> bytes`` (upstream bodies, SSE frames, log
writes); ``scrub_value(value)`` (a deep copy of a JSON-like value: dict keys and values, lists and
tuples at any depth, strings scrubbed, numbers, booleans and None kept, any other object turned
into ``str()`` and scrubbed, so the result is always JSON-serializable; the value must be
acyclic; dict and list subclasses come back as plain ``dict`` and ``list``; two keys that scrub to
the same text keep the later value); ``scrub_envelope(envelope) -> dict`` (``scrub_value`` of an
error envelope whose field names ``error``, ``message``, ``type``, ``param`` and ``code`` are kept
as they are, so a short secret such as ``code`` cannot rename a field of the OpenAI shape).

How: every 8-character window of every secret, each short secret whole and the two key prefixes
are the patterns of one Aho-Corasick automaton over bytes (``ahocorasick_rs``: a DFA, or a
contiguous NFA past ``DFA_PATTERN_BYTES``; ``Redactor.automaton_kind`` says which), built once in
the constructor. One pass over the input reports every occurrence, overlapping ones included.
A maximal run of length L is exactly the union of its L - 7 windows, so the union of the windows
found is the union of the maximal runs: no per-secret extension, no loop over secrets. A prefix
hit is confirmed by the key-like regex at that position. Clean input costs that one pass (with
the DFA about 2 ns a byte, 1-2 us for a stream frame). The input is searched in chunks of
``CHUNK_BYTES``, so that a body full of echoed secret cannot make the list of hits held at once
much larger than a chunk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ahocorasick_rs import BytesAhoCorasick, Implementation

REDACTED = "[redacted]"
RUN = 8  # the shortest part of a secret that is redacted wherever it appears
SHORTEST_SECRET = 4  # shorter configured secrets are ignored
CHUNK_BYTES = 1 << 16  # bytes searched per automaton call (bounds the hits held at once)
# A DFA takes ~450 bytes per pattern byte (50 secrets of 40-60 characters: ~18 KB of windows,
# ~8 MB) and scans 1 MB in ~1.8 ms; a contiguous NFA takes ~0.4 MB there but ~6 ms. Up to this
# many pattern bytes (about 80 such secrets, ~15 MB) the speed is worth the memory.
DFA_PATTERN_BYTES = 32 * 1024

_REDACTED = REDACTED.encode()
# Long key-like tokens (sk-..., AIza..., sk-ant-...) are masked even when not ours: an upstream
# may echo a partial or different key, and no legitimate error text needs one.
_KEY_LIKE = re.compile(rb"\b(?:sk-[A-Za-z0-9_\-*]{8,}|AIza[0-9A-Za-z_\-]{20,})")
_KEY_PREFIXES = (b"sk-", b"AIza")  # patterns 0 and 1 of the automaton; a hit is checked by _KEY_LIKE
_ENVELOPE_FIELDS = frozenset({"message", "type", "param", "code"})
_CONTAINERS = (dict, list, tuple)


def _secret_patterns(secrets: Iterable[str]) -> set[str]:
    """The windows of ``RUN`` characters of each long secret and each short secret whole."""
    patterns: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < SHORTEST_SECRET:
            continue
        if len(secret) < RUN:
            patterns.add(secret)
        else:
            patterns.update(secret[i : i + RUN] for i in range(len(secret) - RUN + 1))
    return patterns


def _splice(data: bytes, spans: list[list[int]]) -> bytes:
    """``data`` with each of the ordered, disjoint ``spans`` replaced by ``[redacted]``."""
    pieces, done = [], 0
    for start, end in spans:
        pieces += (data[done:start], _REDACTED)
        done = end
    pieces.append(data[done:])
    return b"".join(pieces)


class Redactor:
    """Scrubs the given secrets (and key-like tokens) out of text; see the module docstring."""

    def __init__(self, secrets: Iterable[str]) -> None:
        patterns = sorted(p.encode("utf-8", "surrogatepass") for p in _secret_patterns(secrets))
        small = sum(map(len, patterns)) <= DFA_PATTERN_BYTES
        self.automaton_kind = "dfa" if small else "contiguous-nfa"
        self._automaton = BytesAhoCorasick(
            [*_KEY_PREFIXES, *patterns], implementation=Implementation.DFA if small else Implementation.ContiguousNFA
        )
        # A hit of a later chunk that ends inside the previous one was reported there already;
        # one that starts there is found by starting each chunk this many bytes early.
        self._overlap = max(len(p) for p in (*_KEY_PREFIXES, *patterns)) - 1

    def scrub(self, text: str) -> str:
        data = text.encode("utf-8", "surrogatepass")
        spans = self._spans(data)
        return _splice(data, spans).decode("utf-8", "surrogatepass") if spans else text

    def scrub_bytes(self, data: bytes) -> bytes:
        spans = self._spans(data)
        return _splice(data, spans) if spans else data

    def scrub_value(self, value: Any) -> Any:
        """A scrubbed copy of a JSON-like value, or ``value`` itself when nothing in it changed.

        Walks with an explicit stack (any depth, no recursion limit): containers are visited
        parents first, then rebuilt children first, each only if something under it changed."""
        if not isinstance(value, _CONTAINERS):
            return self._scrub_leaf(value)
        copies: list[_Copy] = []
        todo: list[tuple[Any, _Copy | None, int]] = [(value, None, 0)]
        while todo:
            node, parent, slot = todo.pop()
            copy = _Copy(node, parent, slot)
            if isinstance(node, dict):
                copy.keys = [self._scrub_leaf(key) for key in node]
                copy.changed = any(new is not old for new, old in zip(copy.keys, node))
            items = copy.items
            for index, item in enumerate(items):
                if isinstance(item, _CONTAINERS):
                    todo.append((item, copy, index))
                else:
                    scrubbed = self._scrub_leaf(item)
                    if scrubbed is not item:
                        items[index], copy.changed = scrubbed, True
            copies.append(copy)
        for copy in reversed(copies):  # children before their parents
            result = copy.build() if copy.changed else copy.node
            if copy.parent is None:
                return result
            if result is not copy.node:
                copy.parent.items[copy.slot], copy.parent.changed = result, True
        raise AssertionError("unreachable: the root is the first copy")

    def scrub_envelope(self, envelope: dict) -> dict:
        """``scrub_value`` of an error envelope, keeping the OpenAI field names as they are."""
        scrubbed = {}
        for key, value in envelope.items():
            if key == "error" and isinstance(value, dict):
                scrubbed[key] = {
                    (name if name in _ENVELOPE_FIELDS else self._scrub_leaf(name)): self.scrub_value(field)
                    for name, field in value.items()
                }
            else:
                scrubbed[key if key == "error" else self._scrub_leaf(key)] = self.scrub_value(value)
        return scrubbed

    def _scrub_leaf(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self.scrub(str(value))

    def _spans(self, data: bytes) -> list[list[int]]:
        """The byte spans ``[start, end)`` to redact in ``data``: ordered, disjoint, touching ones
        merged.

        The automaton reports hits in order of their end. A key-like hit is extended to its
        token's end, beyond later hits' ends, but those still end after its start (its prefix
        was reported before them). So each hit ends after the start of the last merged span:
        it either starts after that span's end (a new span) or overlaps it, and can reach back
        over earlier spans only by starting before it (rare: a short pattern after a longer one)."""
        merged: list[list[int]] = []
        with memoryview(data) as view:
            for begin in range(0, len(data), CHUNK_BYTES):
                low = max(0, begin - self._overlap)
                for pattern, start, end in self._automaton.find_matches_as_indexes(view[low : begin + CHUNK_BYTES], overlapping=True):
                    start, end = start + low, end + low
                    if end <= begin:
                        continue  # reported by the previous chunk
                    if pattern < len(_KEY_PREFIXES):
                        token = _KEY_LIKE.match(data, start)
                        if token is None:
                            continue
                        end = token.end()
                    if merged and start <= merged[-1][1]:
                        last = merged[-1]
                        if end > last[1]:
                            last[1] = end
                        if start < last[0]:
                            last[0] = start
                            while len(merged) > 1 and start <= merged[-2][1]:
                                last[0] = start = min(start, merged.pop(-2)[0])
                    else:
                        merged.append([start, end])
        return merged


class _Copy:
    """One container of ``scrub_value``'s walk: its items (scrubbed in place) and where it goes."""

    __slots__ = ("node", "parent", "slot", "keys", "items", "changed")

    def __init__(self, node: Any, parent: _Copy | None, slot: int) -> None:
        self.node, self.parent, self.slot = node, parent, slot
        self.keys: list[Any] | None = None
        self.items: list[Any] = list(node.values()) if isinstance(node, dict) else list(node)
        self.changed = False

    def build(self) -> Any:
        if self.keys is not None:
            return dict(zip(self.keys, self.items))
        return tuple(self.items) if isinstance(self.node, tuple) else self.items


def configured_secrets(settings) -> list[str]:
    """Every secret a config holds: provider keys and provider header values, client keys, the
    admin key, and the runtime store's password (given alone or inside its URL)."""
    secrets = [secret for provider in settings.llm_providers for secret in provider.api_keys]
    secrets += [str(value) for provider in settings.llm_providers for value in provider.headers.values()]
    secrets += [client.key for client in settings.api_keys]
    runtime = settings.storage.runtime
    secrets += [value for value in (settings.server.admin_api_key, runtime.password) if value]
    for url in (runtime.url, settings.storage.queue.url):
        credentials = _URL_CREDENTIALS.match(url or "")
        if credentials:
            secrets.append(credentials.group(1))
    return secrets


_URL_CREDENTIALS = re.compile(r"^[a-z]+://[^:/@]*:([^@/]+)@")
