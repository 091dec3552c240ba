"""The two once-per-batch steps: validating its input, and finalizing it into its output files.

``validate(pump, doc)`` (one pump wins ``batch:<id>:validate``; another may retry after
``VALIDATE_TTL`` if that one died): read the input file, check every line
(``app.batch_input.validate_lines``), then store the batch ``in_progress`` with its number of
requests and its model, or ``failed`` with ``errors`` naming the lines.

``finalize(pump, doc, lines)`` (one pump wins ``batch:<id>:final``; another may redo it after
``FINALIZE_TTL`` if that one died, writing the same files again):

1. The final status: ``cancelled`` if a cancel was asked for, else ``expired`` if the window
   ran out, else ``completed`` (``failed`` when the input file went missing); ``finalizing``
   meanwhile.
2. The output file gets the 2xx answers, the error file every other answer and, for a batch that
   stopped early, one ``batch_cancelled`` / ``batch_expired`` line per request that never ran; in
   input order. Files exist only when they have a line; their ids are derived from the batch's, so
   writing them again replaces them.
3. The Batch object gets its final counts (``completed`` and ``failed`` count requests that ran),
   its token ``usage``, the file ids and timestamps; it stays ``batches.keep``. The per-line
   results are then deleted (counters and claims expire by themselves).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import orjson
from loguru import logger

from app.batch_input import batch_error, jsonl, request_lines, unanswered_line, validate_lines
from app.batches import ACTIVE, BATCHES, RUNNING, counters_ttl, lines_name, progress_name, results_collection
from app.errors import NotFound
from app.files import gather_bounded

VALIDATE_TTL = 120.0
FINALIZE_TTL = 300.0
NEVER_RAN = {
    "cancelled": ("batch_cancelled", "This request was not run: the batch was cancelled first."),
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
}


async def validate(pump, doc: dict) -> None:
    store, batch_id = pump.store, doc["batch"]["id"]
    if await store.claim(f"batch:{batch_id}:validate", pump.pump_id, ttl=VALIDATE_TTL, now=time.time()) != pump.pump_id:
        return
    doc = await store.doc_get(BATCHES, batch_id, now=time.time())
    if doc is None or doc["batch"]["status"] != "validating":
        return
    batch = doc["batch"]
    try:
        data = await pump.files.content(doc["owner"], batch["input_file_id"])
    except NotFound:
        lines, model, errors = [], None, [batch_error("invalid_file", "The input file does not exist any more.", param="input_file_id")]
    else:
        lines = await asyncio.to_thread(request_lines, data)
        model, errors = await asyncio.to_thread(validate_lines, lines, url=batch["endpoint"], max_lines=pump.settings.batches.max_lines)
    now = time.time()
    if errors:
        batch.update(status="failed", failed_at=int(now), errors={"object": "list", "data": errors})
        await store.doc_put(BATCHES, batch_id, doc, ttl=pump.settings.batches.keep, now=now)
        await store.doc_delete(ACTIVE, batch_id)
        logger.info("batch failed validation", batch_id=batch_id, errors=len(errors), first=errors[0]["code"])
        return
    batch.update(status="in_progress", in_progress_at=int(now), request_counts={"total": len(lines), "completed": 0, "failed": 0})
    if model:
        batch["model"] = model
    await store.doc_put(BATCHES, batch_id, doc, now=now)
    pump.remember_lines(batch_id, lines)
    logger.info("batch in progress", batch_id=batch_id, requests=len(lines), endpoint=batch["endpoint"])


def output_file_id(batch_id: str, kind: str) -> str:
    """The id of a batch's output or error file: the same each time it is written."""
    return "file-" + hashlib.sha256(f"{batch_id}:{kind}".encode()).hexdigest()[:24]


def _usage(results: list[dict]) -> dict:
    """The Batch ``usage`` object: tokens of every request that ran, with the details upstreams gave."""
    prompt = completion = cached = reasoning = 0
    for result in results:
        spent = result.get("usage") or {}
        prompt += spent.get("prompt_tokens", 0)
        completion += spent.get("completion_tokens", 0)
        response = result["line"].get("response") or {}
        body = response.get("body") if isinstance(response.get("body"), dict) else {}
        reported = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        cached += _int((reported.get("prompt_tokens_details") or {}).get("cached_tokens"))
        reasoning += _int((reported.get("completion_tokens_details") or {}).get("reasoning_tokens"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def finalize(pump, doc: dict, lines, *, reason: str | None = None) -> None:
    """See the module docstring; ``lines`` None with ``reason`` when the input file is gone."""
    store, batch_id = pump.store, doc["batch"]["id"]
    if await store.claim(f"batch:{batch_id}:final", pump.pump_id, ttl=FINALIZE_TTL, now=time.time()) != pump.pump_id:
        return
    doc = await store.doc_get(BATCHES, batch_id, now=time.time())
    if doc is None or doc["batch"]["status"] not in RUNNING:
        return
    batch, now = doc["batch"], time.time()
    _, flags = await store.counters_add(lines_name(batch_id), {"cancel": 0, "expired": 0}, ttl=counters_ttl(doc, now))  # read both at once
    progress = await store.counters_get(progress_name(batch_id))
    status = "failed" if reason else "cancelled" if flags.get("cancel") else "expired" if flags.get("expired") else "completed"
    batch.update(status="finalizing", finalizing_at=int(now))
    await store.doc_put(BATCHES, batch_id, doc, now=now)

    results = {result["i"]: result for result in await store.doc_list(results_collection(batch_id), now=now)}
    answered, failed_lines = [], []
    ran = []
    for index in range(len(lines)) if lines is not None else sorted(results):
        result = results.get(index)
        if result is not None:
            ran.append(result)
            (answered if result["ok"] else failed_lines).append(result["line"])
        elif lines is not None:
            code, message = NEVER_RAN.get(status, ("batch_line_missing", "This request has no recorded result."))
            failed_lines.append(unanswered_line(orjson.loads(lines[index].raw)["custom_id"], code=code, message=message))
    files = {}
    for kind, content in (("output", answered), ("error", failed_lines)):
        if content:
            files[kind] = output_file_id(batch_id, kind)
            await pump.files.create(
                doc["owner"], filename=f"{batch_id}_{kind}.jsonl", purpose="batch_output", data=jsonl(content),
                expires_after=doc.get("output_expires"), file_id=files[kind], now=now, bounded=False,
            )
    done = time.time()
    completed = sum(1 for result in ran if result["ok"])
    batch.update(
        status=status,
        output_file_id=files.get("output"),
        error_file_id=files.get("error"),
        request_counts={"total": len(lines) if lines is not None else batch["request_counts"]["total"], "completed": completed, "failed": len(ran) - completed},
        usage=_usage(ran),
    )
    batch[f"{status}_at"] = int(done)
    if status == "cancelled" and progress.get("cancel_at"):
        batch["cancelling_at"] = int(progress["cancel_at"])
    if reason:
        batch["errors"] = {"object": "list", "data": [batch_error(reason, "The input file was deleted before the batch finished.", param="input_file_id")]}
    await store.doc_put(BATCHES, batch_id, doc, ttl=pump.settings.batches.keep, now=done)
    await store.doc_delete(ACTIVE, batch_id)
    logger.info("batch finished", batch_id=batch_id, status=status, completed=completed, failed=len(ran) - completed, requests=batch["request_counts"]["total"])
    collection = results_collection(batch_id)
    await gather_bounded(16, [store.doc_delete(collection, str(index)) for index in results])
