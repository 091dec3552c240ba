"""File bytes round-trip through both backends: a directory, and chunk documents in every runtime
store (memory, SQLite, Redis, webdis, Redis Cluster), including files of several chunks."""

from __future__ import annotations

import asyncio
import os

import pytest

from app.config import settings_from_data
from app.errors import NotFound, PayloadTooLarge
from app.files import CHUNK_BYTES, DirectoryBlobs, FileStore, StoreBlobs
from storage.memory import MemoryStore
from test_storage_contract import redis_cluster, run_with, storage_config  # noqa: F401 (the parametrized backend fixtures)

SIZES = [0, 1, CHUNK_BYTES, CHUNK_BYTES * 2 + 17]


def test_chunks_in_every_runtime_store_give_back_the_same_bytes(storage_config):  # noqa: F811
    payloads = {f"file-{size}": os.urandom(size) for size in SIZES}

    async def scenario(store):
        blobs = StoreBlobs(store)
        for file_id, data in payloads.items():
            await blobs.put(file_id, data)
        back = {file_id: await blobs.get(file_id) for file_id in payloads}
        await blobs.delete(f"file-{SIZES[-1]}")
        return back, await blobs.get(f"file-{SIZES[-1]}"), await blobs.get("file-never")

    back, deleted, never = run_with(storage_config, scenario)
    assert back == payloads and deleted is None and never is None


def test_a_directory_gives_back_the_same_bytes_and_forgets_deleted_ones(tmp_path):
    blobs = DirectoryBlobs(tmp_path / "files")
    data = os.urandom(CHUNK_BYTES + 5)

    async def scenario():
        await blobs.put("file-a", data)
        first = await blobs.get("file-a")
        await blobs.delete("file-a")
        await blobs.delete("file-a")  # twice is fine
        return first, await blobs.get("file-a")

    first, gone = asyncio.run(scenario())
    assert first == data and gone is None
    assert [p.name for p in (tmp_path / "files").iterdir()] == []  # no temporary left behind


def test_file_objects_belong_to_their_owner_expire_and_respect_the_size_cap(tmp_path):
    settings = settings_from_data({"files": {"storage": "store", "max_mb": 100}})
    files = FileStore(settings, MemoryStore())
    assert files.max_bytes == 64 * 1024 * 1024  # store contents are capped whatever max_mb says

    async def scenario():
        made = await files.create("ck-1", filename="in.jsonl", purpose="batch", data=b"{}\n", expires_after=3600, now=1000.0)
        with pytest.raises(NotFound):
            await files.get("ck-2", made["id"])
        with pytest.raises(PayloadTooLarge):
            await files.create("ck-1", filename="big.jsonl", purpose="batch", data=b"x" * (files.max_bytes + 1))
        expired = await files.list("ck-1")  # created at t=1000 with an hour to live: long gone
        swept = await files.sweep(now=10_000.0)
        return made, expired, swept, await files.blobs.get(made["id"])

    made, expired, swept, left = asyncio.run(scenario())
    assert made["expires_at"] == 1000 + 3600 and made["bytes"] == 3 and "owner" not in made
    assert expired == [] and swept == 1 and left is None
