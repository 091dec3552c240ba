"""Runtime state backends. ``open_store(config)`` picks one by ``storage.runtime.type``."""

from __future__ import annotations

from storage.base import KeyState, Refusal, Reservation, RuntimeStore, WindowLimits


def open_store(config) -> RuntimeStore:
    """Build the backend named by ``config.type`` (a ``RuntimeStorage`` from ``app.config``)."""
    if config.type == "memory":
        from storage.memory import MemoryStore

        return MemoryStore()
    raise NotImplementedError(f"storage.runtime.type {config.type!r} is not available in this build")


__all__ = ["KeyState", "Refusal", "Reservation", "RuntimeStore", "WindowLimits", "open_store"]
