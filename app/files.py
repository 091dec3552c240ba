"""Uploaded files (``/v1/files``): the input, output and error files of the Batch API.

A file is two things:

- its object (OpenAI's ``OpenAIFile`` fields) with its owner (``Principal.id``), one document in
  the runtime store's ``files`` collection. It is put only once the bytes are stored, so nobody
  ever reads half a file; it is deleted first, so nobody reads bytes being deleted.
- its bytes, in the backend ``files.storage`` picks (``open_blobs``):

  - ``DirectoryBlobs``: one file per id under ``files.path`` (written to a temporary name, then
    renamed). For one machine: every process there reads the same directory.
  - ``StoreBlobs``: base64 chunks of ``CHUNK_BYTES``, one document each in the collection
    ``file_chunks:<id>`` of the runtime store. Every machine sharing the store sees them; meant for
    small files: at most ``STORE_MAX_MB`` per file, whatever ``files.max_mb`` says.

  ``auto`` (the default) is ``store`` when the runtime store is shared (redis, http), else
  ``directory``. S3 or other object stores are not built.

Limits: a file holds at most ``FileStore.max_bytes`` (``files.max_mb``, capped as above); an upload
without ``expires_after`` expires ``files.expire_after`` after it was made (OpenAI: 30 days for
batch files). An expired file answers 404 at once; ``sweep`` deletes its bytes later.

A client sees only its own files: another owner's file is a 404, exactly like a missing one.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import time
from pathlib import Path
from typing import Protocol

from app.errors import InvalidRequest, NotFound, PayloadTooLarge

FILES = "files"  # the documents collection of file objects
CHUNK_BYTES = 512 * 1024
STORE_MAX_MB = 64
MB = 1024 * 1024
PURPOSES = ("batch", "batch_output")  # what this gateway keeps files for (uploads: batch only)
# OpenAI's bounds on expires_after.seconds (1 hour .. 30 days).
EXPIRES_MIN, EXPIRES_MAX = 3600, 30 * 86400


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


class Blobs(Protocol):
    """Where file bytes live. ``put`` replaces; ``get`` of a missing id is None; ``delete`` is idempotent."""

    async def put(self, file_id: str, data: bytes) -> None: ...

    async def get(self, file_id: str) -> bytes | None: ...

    async def delete(self, file_id: str) -> None: ...


class DirectoryBlobs:
    """One file per id in a directory (created when first written). Reads and writes run on a
    thread: a large file must not stall the event loop."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.root = Path(path)

    def _path(self, file_id: str) -> Path:
        return self.root / file_id

    async def put(self, file_id: str, data: bytes) -> None:
        def write() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            temporary = self.root / f".{file_id}.{secrets.token_hex(4)}.tmp"
            temporary.write_bytes(data)
            os.replace(temporary, self._path(file_id))  # readers see the old bytes or the new, never part

        await asyncio.to_thread(write)

    async def get(self, file_id: str) -> bytes | None:
        def read() -> bytes | None:
            try:
                return self._path(file_id).read_bytes()
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(read)

    async def delete(self, file_id: str) -> None:
        await asyncio.to_thread(self._path(file_id).unlink, missing_ok=True)


class StoreBlobs:
    """File bytes as chunk documents in the runtime store (see the module docstring)."""

    PARALLEL = 16  # chunk reads and writes in flight at once

    def __init__(self, store) -> None:
        self.store = store

    @staticmethod
    def _collection(file_id: str) -> str:
        return f"file_chunks:{file_id}"

    async def put(self, file_id: str, data: bytes) -> None:
        collection, now = self._collection(file_id), time.time()
        pieces = [data[at : at + CHUNK_BYTES] for at in range(0, len(data), CHUNK_BYTES)] or [b""]

        async def put_one(number: int) -> None:
            chunk = {"n": number, "of": len(pieces), "data": base64.b64encode(pieces[number]).decode()}
            await self.store.doc_put(collection, str(number), chunk, now=now)

        await gather_bounded(self.PARALLEL, [put_one(number) for number in range(len(pieces))])

    async def get(self, file_id: str) -> bytes | None:
        collection, now = self._collection(file_id), time.time()
        first = await self.store.doc_get(collection, "0", now=now)
        if first is None:
            return None
        chunks = [first] + list(
            await gather_bounded(self.PARALLEL, [self.store.doc_get(collection, str(n), now=now) for n in range(1, first["of"])])
        )
        if any(chunk is None for chunk in chunks):
            return None  # being deleted
        return b"".join(base64.b64decode(chunk["data"]) for chunk in chunks)

    async def delete(self, file_id: str) -> None:
        collection, now = self._collection(file_id), time.time()
        first = await self.store.doc_get(collection, "0", now=now)
        count = first["of"] if first else 0
        await gather_bounded(self.PARALLEL, [self.store.doc_delete(collection, str(n)) for n in range(count)])


async def gather_bounded(limit: int, coroutines: list) -> list:
    """Await ``coroutines`` with at most ``limit`` running at once; their results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(coroutine):
        async with gate:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))


def open_blobs(settings, store) -> Blobs:
    kind = settings.files.storage
    if kind == "auto":
        kind = "store" if getattr(store, "shared", False) else "directory"
    return StoreBlobs(store) if kind == "store" else DirectoryBlobs(settings.files.path)


def public(doc: dict) -> dict:
    """The ``OpenAIFile`` object of a stored file document (OpenAI's schema types no field as null:
    one without a value is left out)."""
    return {key: value for key, value in doc.items() if key != "owner" and value is not None}


class FileStore:
    """Files by owner: objects in the runtime store, bytes in ``blobs`` (see the module docstring)."""

    def __init__(self, settings, store, blobs: Blobs | None = None) -> None:
        self.store = store
        self.blobs = blobs or open_blobs(settings, store)
        cap = settings.files.max_mb if not isinstance(self.blobs, StoreBlobs) else min(settings.files.max_mb, STORE_MAX_MB)
        self.max_bytes = int(cap * MB)
        self.expire_after = settings.files.expire_after

    async def create(
        self,
        owner: str,
        *,
        filename: str,
        purpose: str,
        data: bytes,
        expires_after: float | None = None,
        file_id: str | None = None,
        now: float | None = None,
        bounded: bool = True,
    ) -> dict:
        """Store ``data`` as a new file (or again under ``file_id``) and return its object. Uploads
        are ``bounded`` by ``max_bytes``; the gateway's own files (batch outputs) are not."""
        if bounded and len(data) > self.max_bytes:
            raise PayloadTooLarge(f"The file is {len(data)} bytes; this gateway keeps files of at most {self.max_bytes} bytes.", param="file")
        now = time.time() if now is None else now
        file_id = file_id or new_file_id()
        await self.blobs.put(file_id, data)
        doc = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(now),
            "expires_at": int(now + (expires_after or self.expire_after)),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
            "owner": owner,
        }
        await self.store.doc_put(FILES, file_id, doc, now=now)
        return public(doc)

    async def find(self, owner: str, file_id: str, *, param: str = "file_id") -> dict:
        """The owner's live file document, or ``NotFound`` (missing, expired or someone else's)."""
        doc = await self.store.doc_get(FILES, file_id, now=time.time()) if isinstance(file_id, str) and file_id else None
        if doc is None or doc.get("owner") != owner or doc["expires_at"] <= time.time():
            raise NotFound(f"No such File object: {file_id}", param=param)
        return doc

    async def get(self, owner: str, file_id: str) -> dict:
        return public(await self.find(owner, file_id))

    async def content(self, owner: str, file_id: str, *, param: str = "file_id") -> bytes:
        await self.find(owner, file_id, param=param)
        data = await self.blobs.get(file_id)
        if data is None:  # deleted between the two reads
            raise NotFound(f"No such File object: {file_id}", param=param)
        return data

    async def list(self, owner: str, *, purpose: str | None = None, order: str = "desc") -> list[dict]:
        now = time.time()
        docs = [d for d in await self.store.doc_list(FILES, now=now) if d.get("owner") == owner and d["expires_at"] > now]
        if purpose:
            docs = [d for d in docs if d["purpose"] == purpose]
        docs.sort(key=lambda d: (d["created_at"], d["id"]), reverse=order == "desc")
        return [public(d) for d in docs]

    async def delete(self, owner: str, file_id: str) -> dict:
        await self.find(owner, file_id)
        await self.store.doc_delete(FILES, file_id)
        await self.blobs.delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    async def sweep(self, *, now: float) -> int:
        """Delete expired files (object, then bytes); how many."""
        expired = [d["id"] for d in await self.store.doc_list(FILES, now=now) if d["expires_at"] <= now]
        for file_id in expired:
            await self.store.doc_delete(FILES, file_id)
            await self.blobs.delete(file_id)
        return len(expired)


def list_page(items: list[dict], *, after: str | None, limit: int) -> dict:
    """One page of an OpenAI list: the ``limit`` items after the one whose id is ``after``."""
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def expires_after_seconds(anchor: str | None, seconds: str | int | None) -> float | None:
    """``expires_after`` (anchor ``created_at``, 3600..2592000 seconds) as seconds; None when absent."""
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequest("expires_after.anchor must be 'created_at'.", param="expires_after.anchor", code="invalid_value")
    try:
        value = int(seconds)
    except (TypeError, ValueError):
        value = 0
    if not EXPIRES_MIN <= value <= EXPIRES_MAX:
        raise InvalidRequest(
            f"expires_after.seconds must be a whole number from {EXPIRES_MIN} to {EXPIRES_MAX}.", param="expires_after.seconds", code="invalid_value"
        )
    return float(value)
