"""What a process needs besides a valid config, checked before it starts: ``preflight``.

``coo-llm serve`` (and ``worker`` and ``warm``) run it and refuse to start on any error, with one
line per error and exit status 1, instead of dying later with a traceback. ``coo-llm check`` runs
the same function on the address ``serve`` would use, so a config that passes ``check`` starts,
unless something changes in between. Each finding is one ``where: what`` line.

Errors:

1. Open access on a reachable address: no ``api_keys``, a listen address that is not loopback,
   and no ``server.allow_open_access: true``. (``$PORT`` platforms pass ``--host 0.0.0.0``: that is
   a choice of address like any other, and the rule holds for it.)
2. The listen address cannot be bound: the host does not resolve, is not an address of this
   machine, or the port needs privileges. A port in use is an error when starting, and only a
   warning for ``check``, since it may be held by the very gateway the checked config replaces.
3. ``logging.file`` cannot be appended to, or its folder cannot be created (start-up creates it).
4. ``storage.runtime.path`` (file backend) cannot be written, its folder cannot be created, or it
   is a file that is not a SQLite database.

Nothing here writes or creates anything; the port is bound and released at once.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from app.config import Settings

SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def preflight(settings: Settings, *, listen: tuple[str, int] | None, starting: bool) -> Findings:
    """Check what ``settings`` needs from this machine. ``listen`` is the ``(host, port)`` a web
    process binds (None for processes that listen on nothing); ``starting`` is True when the
    caller starts right after (a port in use is then an error, not a warning)."""
    found = Findings()
    if listen is not None:
        host, port = listen
        if not settings.api_keys and not settings.server.allow_open_access and not is_loopback(host):
            found.errors.append(
                f"server.allow_open_access: no api_keys are configured and the gateway would listen on {address(host, port)}, "
                "which is not loopback: anyone who reaches it could spend your provider keys. "
                "Add api_keys, listen on 127.0.0.1, or set server.allow_open_access: true"
            )
        problem, busy = bind_problem(host, port)
        if problem:
            (found.errors if starting or not busy else found.warnings).append(problem)
    if settings.logging.file:
        found.errors += _file_problems("logging.file", Path(settings.logging.file))
    runtime = settings.storage.runtime
    if runtime.type == "file" and runtime.path:
        found.errors += _file_problems("storage.runtime.path", Path(runtime.path), sqlite=True)
    return found


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def address(host: str, port: int) -> str:
    """``host:port`` as written in a URL (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_problem(host: str, port: int, *, where: str = "server.listen (or --host/--port)") -> tuple[str | None, bool]:
    """Bind ``host:port`` as Sanic does (same family, ``SO_REUSEADDR``), then let go.
    Returns (the problem, prefixed by ``where``, or None; whether it is only that the port is in use)."""
    where = f"{where}: {address(host, port)}"
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET  # a host name: Sanic binds a default (IPv4) socket to it
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except (socket.gaierror, UnicodeError):
        return f"{where}: the host name does not resolve", False
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return f"{where}: the port is in use (another gateway running?)", True
        if error.errno == errno.EADDRNOTAVAIL:
            return f"{where}: not an address of this machine", False
        if error.errno == errno.EACCES:
            return f"{where}: permission denied (ports below 1024 need privileges)", False
        return f"{where}: cannot listen ({error.strerror or error})", False
    return None, False


def _file_problems(where: str, path: Path, *, sqlite: bool = False) -> list[str]:
    """Why ``path`` cannot be opened for appending (its missing folders created first), or []. A
    SQLite file also needs its folder writable (the WAL and shared-memory files sit beside it)."""
    if path.is_dir():
        return [f"{where}: {path} is a folder, not a file"]
    if path.exists():
        if not os.access(path, os.W_OK):
            return [f"{where}: {path} is not writable"]
        if sqlite:
            with open(path, "rb") as handle:
                head = handle.read(len(SQLITE_HEADER))
            if head and head != SQLITE_HEADER:
                return [f"{where}: {path} exists and is not a SQLite database"]
            if not os.access(path.parent, os.W_OK | os.X_OK):
                return [f"{where}: {path.parent} is not writable (SQLite writes its -wal and -shm files there)"]
        return []
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return [f"{where}: cannot create {folder}: {existing} is a file"]
    if not os.access(existing, os.W_OK | os.X_OK):
        action = "create the file in" if existing == folder else f"create {folder} in"
        return [f"{where}: cannot {action} {existing} (not writable)"]
    return []
