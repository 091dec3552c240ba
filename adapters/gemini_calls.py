"""Gemini function calls, whole or streamed in pieces, assembled into OpenAI ``tool_calls``.

A ``functionCall`` part is either a whole call (``name`` and ``args``) or, from Gemini 3 with
``toolConfig.functionCallingConfig.streamFunctionCallArguments``, one piece of a call. Google's
reference (``FunctionCall``, ``PartialArg``):

- ``FunctionCall.willContinue``: true when another piece of the same call follows; the first
  piece carries the ``name`` (and ``id`` if any), the following pieces usually only arguments.
  Streams observed in the wild close a call with an empty ``functionCall: {}``.
- ``FunctionCall.partialArgs[]``: ``PartialArg`` entries, each with ``jsonPath`` (RFC 9535, e.g.
  ``$.foo.bar[0].data``, required) and one value: ``stringValue``, ``numberValue``,
  ``boolValue`` or ``nullValue`` (``"NULL_VALUE"``); ``structValue`` / ``listValue`` (the rest
  of ``google.protobuf.Value``) are taken as they are. ``PartialArg.willContinue``: true when
  another piece of the same ``jsonPath`` follows, so the next ``stringValue`` there is appended.
- ``args`` and ``partialArgs`` may come together: the pieces are set into ``args``.

``CallAssembler`` keeps one candidate's call in progress across parts (and, in streams, across
chunks) and returns each call once, when it is complete, with its arguments as one JSON object:
a piece with ``willContinue`` false or absent ends it; a piece with another ``id`` or ``name``
starts a new one (the open call is taken as it is, with a warning); ``close()`` ends a call
still open when the candidate finishes. An empty ``functionCall``
with no call open (a terminator after a call that already ended) is not a call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from adapters.base import Outcome, UpstreamError
from adapters.shapes import new_id, tool_call

# One segment of a singular RFC 9535 query: .name, ['name'] / ["name"], or [index].
_SEGMENT = re.compile(
    r"""\.(?P<short>[A-Za-z_\u0080-\U0010FFFF][A-Za-z0-9_\u0080-\U0010FFFF]*)"""
    r"""|\[\s*(?:'(?P<single>(?:[^'\\]|\\.)*)'|"(?P<double>(?:[^"\\]|\\.)*)"|(?P<index>0|[1-9][0-9]*))\s*\]"""
)
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "/": "/", "\\": "\\", "'": "'", '"': '"'}
_VALUE_FIELDS = ("stringValue", "numberValue", "boolValue", "nullValue", "structValue", "listValue")

Path = tuple[str | int, ...]


def malformed_call(message: str) -> UpstreamError:
    return UpstreamError(Outcome.SERVER_ERROR, 200, f"Gemini sent a function call piece that cannot be assembled: {message}")


def _unescape(text: str) -> str:
    def one(match: re.Match) -> str:
        code = match.group(1)
        if code.startswith("u"):
            return chr(int(code[1:], 16))
        return _ESCAPES.get(code, code)

    return re.sub(r"\\(u[0-9A-Fa-f]{4}|.)", one, text)


def parse_json_path(path: Any) -> Path:
    """The member names and indexes of a singular JSON Path (``$.a['b'][0]``); ``UpstreamError``
    for anything else (wildcards, descendants, filters, slices, negative indexes)."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise malformed_call(f"jsonPath {path!r} is not a JSON Path")
    segments: list[str | int] = []
    position = 1
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            raise malformed_call(f"jsonPath {path!r} is not a path to one value")
        if match.group("index") is not None:
            segments.append(int(match.group("index")))
        else:
            name = match.group("short")
            segments.append(name if name is not None else _unescape(match.group("single") if match.group("single") is not None else match.group("double")))
        position = match.end()
    return tuple(segments)


def partial_arg_value(piece: dict) -> tuple[bool, Any]:
    """``(has a value, the value)`` of one ``PartialArg``."""
    for name in _VALUE_FIELDS:
        if name in piece:
            return True, None if name == "nullValue" else piece[name]
    return False, None


def set_at(arguments: dict, path: Path, value: Any, *, append: bool) -> None:
    """Set ``value`` at ``path`` in ``arguments``, creating objects and arrays on the way;
    ``append`` concatenates a string to the string already there."""
    if not path:
        if not isinstance(value, dict):
            raise malformed_call("a value for $ that is not an object")
        arguments.update(value)
        return
    holder: Any = arguments
    for here, step in enumerate(path):
        last = here == len(path) - 1
        make = None if last else ({} if isinstance(path[here + 1], str) else [])
        if isinstance(step, str):
            if not isinstance(holder, dict):
                raise malformed_call(f"a member name where an array is: {path}")
            if last:
                previous = holder.get(step)
                holder[step] = previous + value if append and isinstance(previous, str) and isinstance(value, str) else value
                return
            holder = holder.setdefault(step, make)
        else:
            if not isinstance(holder, list):
                raise malformed_call(f"an index where an object is: {path}")
            holder.extend([None] * (step + 1 - len(holder)))
            if last:
                previous = holder[step]
                holder[step] = previous + value if append and isinstance(previous, str) and isinstance(value, str) else value
                return
            if holder[step] is None:
                holder[step] = make
            holder = holder[step]


@dataclass(slots=True)
class CallInProgress:
    id: str | None
    name: str
    arguments: dict = field(default_factory=dict)
    continuing: set = field(default_factory=set)  # paths whose last piece said willContinue

    def take(self, call: dict) -> None:
        """Merge one ``functionCall`` piece: its ``args``, then its ``partialArgs``."""
        self.name = self.name or (call.get("name") if isinstance(call.get("name"), str) else "")
        self.id = self.id or (call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None)
        if isinstance(call.get("args"), dict):
            self.arguments.update(call["args"])
        pieces = call.get("partialArgs")
        if pieces is None:
            return
        if not isinstance(pieces, list):
            raise malformed_call("partialArgs is not a list")
        for piece in pieces:
            if not isinstance(piece, dict):
                raise malformed_call("a partialArgs entry is not an object")
            path = parse_json_path(piece.get("jsonPath"))
            has_value, value = partial_arg_value(piece)
            if has_value:
                set_at(self.arguments, path, value, append=path in self.continuing)
            if piece.get("willContinue") is True:
                self.continuing.add(path)
            else:
                self.continuing.discard(path)

    def as_tool_call(self) -> dict:
        return tool_call(self.id or new_id("call_"), self.name, self.arguments)


class CallAssembler:
    """One candidate's function calls (see the module docstring)."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: CallInProgress | None = None

    def add(self, call: dict) -> list[dict]:
        """Take one ``functionCall`` part; the OpenAI ``tool_calls`` entries it completes."""
        done: list[dict] = []
        open_call = self._open
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
        name = call.get("name") if isinstance(call.get("name"), str) and call.get("name") else None
        if open_call is not None and ((call_id and open_call.id and call_id != open_call.id) or (name and open_call.name and name != open_call.name)):
            logger.warning("a Gemini function call ended without its last piece; taking what arrived", name=open_call.name)
            done.append(open_call.as_tool_call())
            open_call = self._open = None
        if open_call is None:
            if not any(key in call for key in ("name", "args", "partialArgs")):
                return done  # the terminator after a call that already ended
            open_call = CallInProgress(call_id, "")
        open_call.take(call)
        if call.get("willContinue") is True:
            self._open = open_call
        else:
            self._open = None
            done.append(open_call.as_tool_call())
        return done

    def close(self) -> list[dict]:
        """The call still open when the candidate finishes (its pieces so far), if any."""
        if self._open is None:
            return []
        logger.warning("a Gemini function call was still streaming at finishReason; taking what arrived", name=self._open.name)
        call, self._open = self._open.as_tool_call(), None
        return [call]
