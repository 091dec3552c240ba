"""How fast ``app.redact`` scrubs, against the regex redactor it replaced, in the same run.

    python -m bench.redact_speed [--min-seconds 0.05]

50 secrets of 40 to 60 characters (OpenAI-, Anthropic-, Gemini-shaped and random ones), then
upstream-like inputs of 200 B (one SSE frame), 10 KB and 1 MB (answer bodies of JSON with prose),
each clean and with echoes (one whole secret, one 12-character part of another). Each cell is
the best of 5 timings, each of enough calls to last ``--min-seconds``. ``old`` is the redactor
before partial-echo redaction (one regex alternation of the whole secrets, then the key-like
regex, on text); ``new`` is ``Redactor.scrub`` on the text and ``Redactor.scrub_bytes`` on its
UTF-8 bytes (what the request path calls). Ratios are old / new: above 1, the new one is faster.
"""

from __future__ import annotations

import argparse
import random
import re
import string
import time
import timeit

from app.redact import RUN, Redactor

_WORDS = (
    "the model answers with a short summary of each section and then lists the open questions "
    "about latency tokens streaming retries and cost, since every provider counts differently "
    "naïve café déjà vu 東京 🙂"
).split()


class LegacyRedactor:
    """The redactor before partial-echo redaction, kept here as the baseline."""

    _key_like = re.compile(r"\b(?:sk-[A-Za-z0-9_\-*]{8,}|AIza[0-9A-Za-z_\-]{20,})")

    def __init__(self, secrets) -> None:
        unique = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in unique)) if unique else None

    def scrub(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub("[redacted]", text)
        return self._key_like.sub("[redacted]", text)


def make_secrets(rnd: random.Random, count: int = 50) -> list[str]:
    alnum, url64 = string.ascii_letters + string.digits, string.ascii_letters + string.digits + "-_"
    shapes = [("sk-proj-", alnum), ("sk-ant-api03-", url64), ("AIza", url64), ("", alnum), ("", string.hexdigits[:16])]
    secrets = []
    for n in range(count):
        prefix, alphabet = shapes[n % len(shapes)]
        length = rnd.randint(40, 60)
        secrets.append(prefix + "".join(rnd.choice(alphabet) for _ in range(length - len(prefix))))
    return secrets


def make_body(rnd: random.Random, size: int, echoes: list[str]) -> str:
    """An OpenAI-style answer of about ``size`` characters whose content is prose; ``echoes``
    are spread through the content."""
    if size <= 400:
        head, tail = 'data: {"id":"chatcmpl-9f2","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"', '"}}]}\n\n'
    else:
        head, tail = '{"id":"chatcmpl-9f2","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"', '"},"finish_reason":"stop"}]}'
    words, room = [], size - len(head) - len(tail) - sum(len(e) + 1 for e in echoes)
    while room > 0:
        word = rnd.choice(_WORDS)
        words.append(word)
        room -= len(word) + 1
    for n, echo in enumerate(echoes, 1):
        words.insert(len(words) * n // (len(echoes) + 1), echo)
    return head + " ".join(words) + tail


def best_seconds(call, min_seconds: float) -> float:
    number, spent = 1, 0.0
    while spent < min_seconds:  # grow the loop until one timing lasts min_seconds
        spent = timeit.timeit(call, number=number)
        if spent < min_seconds:
            number *= max(2, int(min_seconds / max(spent, 1e-9)))
    return min(timeit.repeat(call, number=number, repeat=5)) / number


def _size(n: int) -> str:
    return f"{n} B" if n < 1000 else f"{n // 1000} KB" if n < 1_000_000 else f"{n // 1_000_000} MB"


def _time(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-seconds", type=float, default=0.05, help="least duration of one timing")
    args = parser.parse_args()
    rnd = random.Random(2906)
    secrets = make_secrets(rnd)

    started = time.perf_counter()
    new = Redactor(secrets)
    built_new = time.perf_counter() - started
    started = time.perf_counter()
    old = LegacyRedactor(secrets)
    built_old = time.perf_counter() - started
    print(f"{len(secrets)} secrets of 40-60 characters; built in {_time(built_new)} (new), {_time(built_old)} (old)\n")

    header = f"{'input':<16}{'size':>8}{'old scrub':>13}{'new scrub':>13}{'new bytes':>13}{'old/new':>9}{'old/bytes':>11}"
    print(header)
    print("-" * len(header))
    for size in (200, 10_000, 1_000_000):
        for label, echoes in (("clean", []), ("with echoes", [secrets[7], secrets[21][15:15 + 12]])):
            text = make_body(rnd, size, echoes)
            data = text.encode()
            scrubbed = new.scrub_bytes(data)
            assert (scrubbed is data) == (not echoes)
            assert all(s[i : i + RUN].encode() not in scrubbed for s in secrets for i in range(len(s) - RUN + 1))
            seconds_old = best_seconds(lambda: old.scrub(text), args.min_seconds)
            seconds_new = best_seconds(lambda: new.scrub(text), args.min_seconds)
            seconds_bytes = best_seconds(lambda: new.scrub_bytes(data), args.min_seconds)
            print(
                f"{label:<16}{_size(len(data)):>8}{_time(seconds_old):>13}{_time(seconds_new):>13}{_time(seconds_bytes):>13}"
                f"{seconds_old / seconds_new:>8.1f}x{seconds_old / seconds_bytes:>10.1f}x"
            )


if __name__ == "__main__":
    main()
