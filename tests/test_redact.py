"""app.redact: every run of 8+ characters of a secret is redacted, in text, bytes, nested values
and log lines; clean input comes back as the same object."""

from __future__ import annotations

import asyncio
import io
import random
import string
import sys
from decimal import Decimal

import orjson
import pytest
from loguru import logger

from app.config import LoggingConfig
from app.logging import info_line, set_log_redactor, setup_logging
from app.redact import CHUNK_BYTES, REDACTED, Redactor

# Random-looking, but not key-like: only the run rule can catch them.
SECRET = "Zq7vLm3pXw9rTb2kNc5hYd8fGs4jUa6eWr1o"
OTHER = "Hh2Jj4Kk6Ll8Mm0Nn1Bb3Vv5Cc7Xx9ZzQqWwEe"
OPENAI = "sk-proj-Qd83hfTkq0Wm4LrXz92NbVcPs7Ye1UiA5oGjKlMn"


@pytest.fixture(scope="module")
def redactor():
    return Redactor([SECRET, OTHER, OPENAI])


# -- the run rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "echo",
    [SECRET, SECRET[:8], SECRET[-8:], SECRET[10:18], SECRET[3:30], OPENAI[9:17]],
    ids=["whole", "prefix-8", "suffix-8", "middle-8", "middle-27", "key-body-8"],
)
def test_a_run_of_eight_or_more_is_redacted_whole(redactor, echo):
    assert redactor.scrub(f"Incorrect API key provided: {echo}.") == f"Incorrect API key provided: {REDACTED}."


def test_the_match_extends_as_far_as_the_text_keeps_matching(redactor):
    # 12 characters of the secret, then a character the secret does not have next, on both sides.
    run = SECRET[5:17]
    assert SECRET[4] != "#" and SECRET[17] != "#"
    assert redactor.scrub(f"x#{run}#y") == f"x#{REDACTED}#y"
    # The characters on either side belong to the secret: they are part of the run.
    assert redactor.scrub(f"[{SECRET[4]}{run}{SECRET[17]}]") == f"[{REDACTED}]"


def test_prefix_and_suffix_echo_around_an_ellipsis(redactor):
    text = f"Incorrect API key provided: {SECRET[:10]}...{SECRET[-9:]}. You can find your key at ..."
    assert redactor.scrub(text) == f"Incorrect API key provided: {REDACTED}...{REDACTED}. You can find your key at ..."


def test_seven_characters_are_kept(redactor):
    for start in (0, 11, len(SECRET) - 7):
        text = f"near miss: {SECRET[start:start + 7]}!"
        assert redactor.scrub(text) is text


def test_short_secrets_match_whole_only():
    redactor = Redactor(["pa5sw0r", "xyz", "", None])  # 7 characters; 3 is too short, ignored
    assert redactor.scrub("pw=pa5sw0r;") == f"pw={REDACTED};"
    assert redactor.scrub("pw=pa5sw0;") == "pw=pa5sw0;"
    assert redactor.scrub("xyz xyz") == "xyz xyz"


def test_overlapping_and_touching_runs_become_one_redaction():
    first, second = "AAAA1111BBBB2222", "BBBB2222CCCC3333"  # share an 8-character middle
    redactor = Redactor([first, second])
    # first's head, the shared part, second's tail: one run of each secret, overlapping.
    assert redactor.scrub(f"<{first}CCCC3333>") == f"<{REDACTED}>"
    # Two secrets back to back touch: one redaction, not two.
    joined = Redactor([SECRET, OTHER])
    assert joined.scrub(f"({SECRET[:9]}{OTHER[-9:]})") == f"({REDACTED})"


def test_every_echo_in_a_text_is_redacted(redactor):
    text = f"a {SECRET[:8]} b {OTHER[4:20]} c {SECRET[-12:]} d"
    assert redactor.scrub(text) == f"a {REDACTED} b {REDACTED} c {REDACTED} d"


def test_unicode_around_a_match_is_kept(redactor):
    text = f"¡Clave inválida «{SECRET[2:14]}» — 请检查 🙂"
    assert redactor.scrub(text) == f"¡Clave inválida «{REDACTED}» — 请检查 🙂"


def test_a_run_counts_characters_not_bytes():
    secret = "pässwörd-für-müll-ünd-mehr"
    redactor = Redactor([secret])
    assert redactor.scrub(f"~{secret[4:12]}~") == f"~{REDACTED}~"  # 8 characters, 11 bytes
    kept = f"~{secret[4:11]}~"  # 7 characters, 10 bytes
    assert redactor.scrub(kept) is kept


def test_key_like_tokens_are_masked_even_when_not_ours(redactor):
    foreign = "Incorrect API key provided: sk-proj-****************************wXyZ. Or AIzaSyD-0123456789abcdefghijklmnop"
    assert redactor.scrub(foreign) == f"Incorrect API key provided: {REDACTED}. Or {REDACTED}"
    ordinary = "a risk-free task-0123456789abc, sk-short"
    assert redactor.scrub(ordinary) is ordinary


def test_clean_text_and_bytes_come_back_as_the_same_object(redactor):
    text = "The model `gpt-4o` does not exist or you do not have access to it." * 40
    data = text.encode()
    assert redactor.scrub(text) is text
    assert redactor.scrub_bytes(data) is data
    assert redactor.scrub_bytes(b"") == b""


def test_bytes_are_scrubbed_in_place_of_the_run_and_other_bytes_kept(redactor):
    frame = b'data: {"error":{"message":"bad key ' + SECRET[6:20].encode() + b' \xff\xfe"}}\n\n'
    assert redactor.scrub_bytes(frame) == b'data: {"error":{"message":"bad key [redacted] \xff\xfe"}}\n\n'


def test_runs_across_the_search_chunk_boundary_are_redacted(redactor):
    echo = SECRET[:20]
    token = "sk-" + "x" * 30
    for offset in range(CHUNK_BYTES - 40, CHUNK_BYTES + 2):
        text = "." * offset + f" {echo} {token} " + "." * 50
        assert redactor.scrub(text) == "." * offset + f" {REDACTED} {REDACTED} " + "." * 50, offset


def test_text_between_runs_near_the_chunk_boundary_is_kept():
    redactor = Redactor(["abcd", "ä" * 10])  # windows of 16 bytes: chunks are searched 15 bytes early
    for offset in range(CHUNK_BYTES - 40, CHUNK_BYTES + 2):
        text = "." * offset + "abcd sk-" + "x" * 30 + "."
        assert redactor.scrub(text) == "." * offset + f"{REDACTED} {REDACTED}.", offset


def test_a_body_full_of_echoes_is_redacted_across_many_chunks(redactor):
    body = (f"{SECRET} said {OTHER[:10]}; " * 20_000).encode()  # ~1.5 MB, ~23 chunks
    assert redactor.scrub_bytes(body) == b"[redacted] said [redacted]; " * 20_000


def test_constructor_takes_any_iterable_of_secrets():
    keys = {"openai": [SECRET], "gemini": [OTHER, ""]}
    redactor = Redactor(secret for secrets in keys.values() for secret in secrets)
    assert redactor.scrub(f"{SECRET[1:9]} {OTHER[-8:]}") == f"{REDACTED} {REDACTED}"


def test_a_large_secret_set_uses_the_small_automaton_with_the_same_results(redactor):
    rnd = random.Random(7)
    many = ["".join(rnd.choice(string.ascii_letters) for _ in range(50)) for _ in range(200)]
    large = Redactor([SECRET, OTHER, OPENAI, *many])
    assert (redactor.automaton_kind, large.automaton_kind) == ("dfa", "contiguous-nfa")
    texts = [
        f"Incorrect API key provided: {SECRET[:10]}...{SECRET[-9:]}",
        f"<{SECRET[3:30]}{OTHER[:9]}> sk-{'x' * 20} risk-free {OPENAI[9:17]}",
        "." * (CHUNK_BYTES - 5) + SECRET + "." * 10,
        "clean text " * 100,
    ]
    assert [large.scrub(text) for text in texts] == [redactor.scrub(text) for text in texts]
    assert [redactor.scrub(text) == text for text in texts] == [False, False, False, True]
    assert large.scrub(f"a {many[150][20:28]} b") == f"a {REDACTED} b"


def test_no_secrets_still_masks_key_like_tokens():
    assert Redactor([]).scrub("sk-ant-api03-abcdefghijkl") == REDACTED


# -- values and envelopes -------------------------------------------------------------------------


def test_scrub_value_walks_keys_values_lists_and_tuples(redactor):
    value = {
        "model": "gpt-4o",
        "n": 2,
        "ok": False,
        "none": None,
        f"header {SECRET[:8]}": {"nested": [1, 2.5, ("t", f"k={OTHER[3:15]}"), [[[SECRET]]]]},
    }
    assert redactor.scrub_value(value) == {
        "model": "gpt-4o",
        "n": 2,
        "ok": False,
        "none": None,
        f"header {REDACTED}": {"nested": [1, 2.5, ("t", f"k={REDACTED}"), [[[REDACTED]]]]},
    }


def test_scrub_value_returns_the_same_object_when_clean_and_copies_otherwise(redactor):
    clean = {"error": {"message": "rate limited", "code": [429, "x"], "param": {"a": (1, None)}}}
    assert redactor.scrub_value(clean) is clean
    dirty = {"keep": {"same": ["x"]}, "change": [SECRET]}
    scrubbed = redactor.scrub_value(dirty)
    assert scrubbed is not dirty and scrubbed["change"] == [REDACTED]
    assert scrubbed["keep"] is dirty["keep"]  # an untouched branch is shared, not copied
    assert dirty["change"] == [SECRET]  # the input is left as it was


def test_scrub_value_turns_other_objects_into_scrubbed_text(redactor):
    class Upstream:
        def __str__(self) -> str:
            return f"Upstream(key={SECRET})"

    assert redactor.scrub_value([Upstream(), Decimal("1.5"), b"raw"]) == [f"Upstream(key={REDACTED})", "1.5", "b'raw'"]


def test_scrub_value_has_no_depth_limit(redactor):
    value: object = SECRET
    for _ in range(5_000):
        value = [value]
    scrubbed = redactor.scrub_value(value)
    for _ in range(5_000):
        scrubbed = scrubbed[0]
    assert scrubbed == REDACTED


def test_envelope_with_param_object_and_code_list(redactor):
    envelope = {
        "error": {
            "message": f"Incorrect API key provided: {OPENAI[:12]}...{OPENAI[-4:]}",
            "type": "invalid_request_error",
            "param": {"api_key": OPENAI, "header": f"Bearer {SECRET[4:16]}"},
            "code": ["invalid_api_key", OTHER[:8]],
        },
        "request": {"headers": [["authorization", f"Bearer {SECRET}"]]},
    }
    assert redactor.scrub_envelope(envelope) == {
        "error": {
            "message": f"Incorrect API key provided: {REDACTED}...{OPENAI[-4:]}",
            "type": "invalid_request_error",
            "param": {"api_key": REDACTED, "header": f"Bearer {REDACTED}"},
            "code": ["invalid_api_key", REDACTED],
        },
        "request": {"headers": [["authorization", f"Bearer {REDACTED}"]]},
    }


def test_envelope_field_names_survive_short_secrets():
    redactor = Redactor(["code", "error", "type"])
    envelope = {"error": {"message": "bad code", "type": "type", "param": None, "code": "error"}}
    assert redactor.scrub_envelope(envelope) == {
        "error": {"message": f"bad {REDACTED}", "type": REDACTED, "param": None, "code": REDACTED}
    }


# -- log lines ------------------------------------------------------------------------------------


@pytest.fixture
def logs(tmp_path):
    """Logging to a temporary file (JSON) and a captured stderr (text), through a redactor."""
    path, stderr = tmp_path / "gateway.log", io.TextIOWrapper(io.BytesIO())  # held: closing it closes the buffer
    saved, sys.stderr = sys.stderr, stderr  # setup_logging takes sys.stderr.buffer once
    try:
        setup_logging(LoggingConfig(level="INFO", json=False, file=str(path)))
    finally:
        sys.stderr = saved
    set_log_redactor(Redactor([SECRET, OTHER]))
    yield path, stderr.buffer
    set_log_redactor(None)
    setup_logging(LoggingConfig())  # back to the real stderr only


def test_loguru_and_access_lines_are_redacted_in_both_formats(logs):
    path, stderr = logs
    logger.warning("upstream said {}", f"bad key {SECRET[:10]}", key_id="openai#1", detail={"param": OTHER})
    info_line("request", {"request_id": "req_1", "error": f"Incorrect API key provided: {SECRET[-9:]}", "status": 401})
    try:
        raise ValueError(f"boom {OTHER[2:12]}")
    except ValueError:
        logger.exception("failed")
    text = path.read_text() + stderr.getvalue().decode()
    for part in (SECRET[:8], SECRET[-8:], OTHER[:8], OTHER[2:10]):
        assert part not in text
    lines = [orjson.loads(line) for line in path.read_text().splitlines()]
    assert [line["message"] for line in lines] == [f"upstream said bad key {REDACTED}", "request", "failed"]
    assert lines[0]["detail"] == {"param": REDACTED} and lines[0]["key_id"] == "openai#1"
    assert lines[1]["error"] == f"Incorrect API key provided: {REDACTED}" and lines[1]["status"] == 401
    assert lines[2]["exception"] == f"ValueError: boom {REDACTED}"
    printed = stderr.getvalue().decode().splitlines()
    assert printed[1].endswith(f"INFO    request request_id=req_1 error=Incorrect API key provided: {REDACTED} status=401")


def test_access_lines_batched_in_a_loop_turn_are_redacted(logs):
    path, _ = logs

    async def one_turn() -> None:
        for n in range(3):
            info_line("request", {"request_id": f"req_{n}", "error": SECRET[n : n + 8]})
        await asyncio.sleep(0)

    asyncio.run(one_turn())
    lines = [orjson.loads(line) for line in path.read_text().splitlines()]
    assert [(line["request_id"], line["error"]) for line in lines] == [(f"req_{n}", REDACTED) for n in range(3)]


def test_without_a_log_redactor_lines_are_written_as_rendered(logs):
    path, _ = logs
    set_log_redactor(None)
    info_line("request", {"error": SECRET[:8]})
    assert orjson.loads(path.read_text())["error"] == SECRET[:8]
