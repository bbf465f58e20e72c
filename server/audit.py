"""The audit log: one hash-chained JSON line per state-changing call.

Each line is one object::

    {"seq": 1, "at": "2025-01-31T08:00:00.123Z", "who": "window-1", "role": "operator",
     "method": "/cardstation.v1.IssuanceService/CreateIssuance", "issuance_id": "iss-1",
     "result": "OK", "prev": "000…0", "hash": "<sha256 hex>"}

`hash` = sha256 hex of (`prev` + the canonical JSON of the record without "hash": sorted keys,
separators "," and ":", UTF-8). The first record's `prev` is 64 zeros; every later `prev` is the
hash of the line before and `seq` counts up from 1. So `verify` finds an edited field, a
deleted, inserted or reordered line, and a truncated or garbage line, and names the first line
(1-based) that does not fit. What a chain alone cannot show is lines cut off the end of the file;
compare `records` with what you expect (or anchor the last hash elsewhere) for that.

Records hold who, role, method, issuance id and result: never tokens, never ID numbers.
Each record is flushed and fsync'ed before `append` returns. `AuditLog` continues the chain of an
existing file after a restart, after checking its last line; a broken tail stops it from opening
(run `cardstation audit verify`, keep the file as evidence, start a new one).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
FIELDS = ("seq", "at", "who", "role", "method", "issuance_id", "result", "prev", "hash")


class AuditChainError(ValueError):
    """The audit file's tail does not verify, so the chain cannot be continued."""


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found. `first_bad_line` is 1-based; None when ok."""

    ok: bool
    records: int
    first_bad_line: int | None
    message: str


def canonical(record: dict[str, Any]) -> bytes:
    """The canonical JSON bytes of a record (sorted keys, no spaces, UTF-8)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def record_hash(record: dict[str, Any]) -> str:
    """sha256 hex of prev + canonical JSON of the record without its "hash"."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(str(record.get("prev", "")).encode("ascii") + canonical(body)).hexdigest()


def _check_line(raw: bytes, line_no: int, expect_seq: int, expect_prev: str) -> dict[str, Any]:
    """Parse and check one line against the chain; raise ValueError describing the fault."""
    if not raw.endswith(b"\n"):
        raise ValueError(f"line {line_no} is incomplete (no newline): truncated write")
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"line {line_no} is not a JSON record (truncated or garbage)") from None
    if not isinstance(record, dict) or set(record) != set(FIELDS):
        raise ValueError(f"line {line_no} does not have exactly the fields {', '.join(FIELDS)}")
    if record["hash"] != record_hash(record):
        raise ValueError(f"line {line_no}: hash does not match its content (edited)")
    if record["seq"] != expect_seq:
        raise ValueError(
            f"line {line_no}: seq {record['seq']!r}, expected {expect_seq} "
            "(a line was deleted, inserted or moved)"
        )
    if record["prev"] != expect_prev:
        raise ValueError(
            f"line {line_no}: prev does not match the hash of the line before "
            "(a line was deleted, inserted or moved)"
        )
    return record


def verify(path: str | os.PathLike[str]) -> VerifyResult:
    """Check the whole chain of an audit file. Raises FileNotFoundError when it is missing."""
    records = 0
    prev = GENESIS
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                record = _check_line(raw, line_no, records + 1, prev)
            except ValueError as exc:
                return VerifyResult(False, records, line_no, str(exc))
            records += 1
            prev = record["hash"]
    return VerifyResult(True, records, None, f"{records} records, chain intact")


def _last_line(f: Any, size: int) -> tuple[bytes, int]:
    """The last line of a binary file (with its newline, if any) and its byte offset."""
    block = 8192
    pos = size
    buf = b""
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf
        # The newline ending the line before the last one (not the file's final byte).
        idx = buf.rfind(b"\n", 0, len(buf) - 1)
        if idx != -1:
            return buf[idx + 1 :], pos + idx + 1
    return buf, 0


def _line_number(f: Any, offset: int) -> int:
    """1-based number of the line starting at byte `offset`."""
    f.seek(0)
    count = 0
    remaining = offset
    while remaining > 0:
        chunk = f.read(min(1 << 20, remaining))
        if not chunk:
            break
        count += chunk.count(b"\n")
        remaining -= len(chunk)
    return count + 1


class AuditLog:
    """Append-only, hash-chained, fsync'ed JSON-lines audit file. Thread-safe.

    `AuditLog(path)` creates the file (and its folder) or continues its chain; raises
    AuditChainError when the last line of an existing file does not verify.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self.failed = False  # set when a write failed; the interceptor then refuses changes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        self._file = os.fdopen(fd, "r+b", buffering=0)
        try:
            self._seq, self._prev = self._read_tail()
        except BaseException:
            self._file.close()
            raise
        if created:
            self._fsync_dir()

    def _read_tail(self) -> tuple[int, str]:
        size = os.fstat(self._file.fileno()).st_size
        if size == 0:
            return 0, GENESIS
        raw, offset = _last_line(self._file, size)
        line_no = _line_number(self._file, offset)
        try:
            record = json.loads(raw.decode("utf-8")) if raw.endswith(b"\n") else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if (
            not isinstance(record, dict)
            or set(record) != set(FIELDS)
            or not isinstance(record["seq"], int)
            or record["hash"] != record_hash(record)
            or (record["seq"] == 1) != (record["prev"] == GENESIS)
        ):
            raise AuditChainError(
                f"audit log {self.path}: line {line_no} (the last) does not verify; "
                "run `cardstation audit verify`, keep the file as evidence, start a new one"
            )
        if record["seq"] != line_no:
            raise AuditChainError(
                f"audit log {self.path}: last line {line_no} has seq {record['seq']}; "
                "lines were deleted or inserted (run `cardstation audit verify`)"
            )
        return record["seq"], record["hash"]

    def _fsync_dir(self) -> None:
        try:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    @property
    def last_hash(self) -> str:
        """The hash of the last record (GENESIS when empty)."""
        return self._prev

    @property
    def records(self) -> int:
        """How many records the file holds."""
        return self._seq

    def append(
        self,
        who: str,
        role: str,
        method: str,
        issuance_id: str | None,
        result: str,
    ) -> dict[str, Any]:
        """Write one record, flush and fsync it; return it (with seq, prev and hash)."""
        with self._lock:
            if self._file.closed:
                raise ValueError("audit log is closed")
            now = datetime.fromtimestamp(self._clock(), tz=UTC)
            record: dict[str, Any] = {
                "seq": self._seq + 1,
                "at": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "who": who,
                "role": role,
                "method": method,
                "issuance_id": issuance_id,
                "result": result,
                "prev": self._prev,
            }
            record["hash"] = record_hash(record)
            line = canonical(record) + b"\n"
            try:
                written = 0
                while written < len(line):
                    written += self._file.write(line[written:]) or 0
                self._file.flush()
                os.fsync(self._file.fileno())
            except BaseException:
                self.failed = True
                raise
            self._seq = record["seq"]
            self._prev = record["hash"]
            return record

    def close(self) -> None:
        """Close the file. Further appends raise."""
        with self._lock:
            self._file.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
