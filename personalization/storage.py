"""What a storage error means: the journal's SQLite errors and the data folder's OS errors,
sorted into the two things an operator can act on.

* FULL: the disk (or the file system holding the data folder) has no room. SQLite says
  SQLITE_FULL; a file write says ENOSPC or EDQUOT.
* UNAVAILABLE: the store is there but cannot be used now: another program holds the journal's
  write lock (SQLITE_BUSY / SQLITE_LOCKED), the disk answers with an I/O error, the file or
  folder became read-only or unreachable.

Both are transient for the station: once the operator frees space or the other program lets go,
the same write succeeds. Corruption (SQLITE_CORRUPT, SQLITE_NOTADB) is not transient and is
refused at start instead (`journal.JournalCorrupt`).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from enum import StrEnum
from pathlib import Path


class StorageKind(StrEnum):
    FULL = "FULL"
    UNAVAILABLE = "UNAVAILABLE"


#: SQLite primary result codes (the low byte of an extended code) that mean "no room".
_SQLITE_FULL = {13}  # SQLITE_FULL
#: ... and those that mean "cannot be used now" (busy, locked, I/O, read-only, cannot open,
#: protocol (a lock race), no such file any more).
_SQLITE_UNAVAILABLE = {5, 6, 8, 10, 14, 15}
_OS_FULL = {errno.ENOSPC, errno.EDQUOT}


def sqlite_kind(exc: sqlite3.Error) -> StorageKind | None:
    """The storage kind of an SQLite error, or None when it is not a storage problem (a
    constraint, a programming error, corruption)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # errors raised by the module itself carry no code
        return StorageKind.UNAVAILABLE if isinstance(exc, sqlite3.OperationalError) else None
    primary = code & 0xFF
    if primary in _SQLITE_FULL:
        return StorageKind.FULL
    if primary in _SQLITE_UNAVAILABLE:
        return StorageKind.UNAVAILABLE
    return None


def os_kind(exc: OSError) -> StorageKind:
    """The storage kind of a failed file operation in the data folder."""
    return StorageKind.FULL if exc.errno in _OS_FULL else StorageKind.UNAVAILABLE


def sqlite_cause(exc: sqlite3.Error) -> str:
    """Plain words for an SQLite error (its own text is terse: "database is locked")."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return "another program holds the journal's write lock"
    if name.startswith("SQLITE_FULL"):
        return "the disk is full"
    if name.startswith("SQLITE_READONLY"):
        return "the journal has become read-only"
    if name.startswith("SQLITE_IOERR"):
        return f"the disk reported an I/O error ({name})"
    return str(exc)


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer can still use in `folder`'s file system."""
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize
