"""The audit log: one keyed, chained JSON line per state-changing call.

Each line is one object::

    {"seq": 1, "at": "2025-01-31T08:00:00.123Z", "who": "window-1", "role": "operator",
     "method": "/cardstation.v1.IssuanceService/CreateIssuance", "issuance_id": "iss-1",
     "result": "OK", "kid": "<key id>", "prev": "000…0", "mac": "<hmac-sha256 hex>"}

`mac` = HMAC-SHA256 under the server's audit key (`cardstation.server.audit_key`) of the
canonical JSON of the record without "mac" (sorted keys, separators "," and ":", UTF-8). `prev`
is the mac of the line before (64 zeros for the first) and `seq` counts up from 1. Without the
key nobody can write a line that verifies, so a rewritten line fails even when every later line
is recomputed; a deleted, inserted or reordered line shows as a gap in `seq`.

What a chain cannot show on its own is lines cut off its end. So after each append the head
(last seq and its mac) is recorded in the journal (`AuditHead`, a meta row), and `verify`
compares the file's tail with it: a file that ends before the recorded head was truncated. The
head is written after the line, so a crash between the two leaves the file one line ahead of the
head; that is reported, not failed (lines past the head still carry valid macs, which nobody
without the key could have made). The limit: someone who can write both the file and the
journal can cut the file and roll the head back to an earlier line's values.

Records hold who, role, method, issuance id and result: never tokens, never ID numbers.
Each record is flushed and fsync'ed before `append` returns. `AuditLog` continues the chain of an
existing file after a restart, after checking its last line and the head; a broken or truncated
file stops it from opening (run `cardstation audit verify`, keep the file as evidence,
`cardstation audit restart` to begin a new chain). A file from before keying (sha256 "hash"
lines) is moved aside and a new keyed chain begins.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

GENESIS = "0" * 64
FIELDS = ("seq", "at", "who", "role", "method", "issuance_id", "result", "kid", "prev", "mac")
#: The fields of a line written before the chain was keyed (sha256 "hash", no key).
UNKEYED_FIELDS = ("seq", "at", "who", "role", "method", "issuance_id", "result", "prev", "hash")


class AuditChainError(ValueError):
    """The audit file does not verify (or was truncated), so the chain cannot be continued."""


@dataclass(frozen=True)
class AuditHead:
    """The last record's seq and mac, kept outside the audit file."""

    seq: int
    mac: str


class HeadStore(Protocol):
    """Where the head is recorded (the journal: `JournalHeadStore`)."""

    def load(self) -> AuditHead | None: ...

    def save(self, head: AuditHead) -> None: ...


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found. `first_bad_line` is 1-based; None when ok.

    `problem` names the kind of fault: "unparsable", "incomplete_line", "bad_mac", "other_key",
    "sequence_gap", "chain_break", "truncated_tail", "head_mismatch", "no_head", "unkeyed";
    None when ok. `seq` is the sequence number where the fault shows, when known.
    """

    ok: bool
    records: int
    first_bad_line: int | None
    message: str
    problem: str | None = None
    seq: int | None = None
    head_seq: int | None = None


def canonical(record: dict[str, Any]) -> bytes:
    """The canonical JSON bytes of a record (sorted keys, no spaces, UTF-8)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def key_id(key: bytes) -> str:
    """A short public name of a key, so `verify` can tell "another key" from "edited"."""
    return hashlib.sha256(b"cardstation audit key id\0" + key).hexdigest()[:16]


def record_mac(record: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 hex of the canonical JSON of the record without its "mac"."""
    body = {k: v for k, v in record.items() if k != "mac"}
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


class _LineFault(ValueError):
    def __init__(self, problem: str, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.seq = seq


def _parse(raw: bytes, line_no: int) -> dict[str, Any]:
    if not raw.endswith(b"\n"):
        raise _LineFault("incomplete_line",
                         f"line {line_no} is incomplete (no newline): truncated write")
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _LineFault("unparsable",
                         f"line {line_no} is not a JSON record (truncated or garbage)") from None
    if isinstance(record, dict) and set(record) == set(UNKEYED_FIELDS):
        raise _LineFault("unkeyed", f"line {line_no} is from before the audit log was keyed "
                         "(sha256 chain, no key): it cannot prove it was not rewritten",
                         record.get("seq") if isinstance(record.get("seq"), int) else None)
    if not isinstance(record, dict) or set(record) != set(FIELDS):
        raise _LineFault("unparsable",
                         f"line {line_no} does not have exactly the fields {', '.join(FIELDS)}")
    if not isinstance(record["seq"], int) or isinstance(record["seq"], bool):
        raise _LineFault("unparsable", f"line {line_no}: seq is not a number")
    return record


def _check_line(raw: bytes, line_no: int, key: bytes, kid: str, expect_seq: int,
                expect_prev: str) -> dict[str, Any]:
    """Parse and check one line against the chain; raise _LineFault describing the fault."""
    record = _parse(raw, line_no)
    seq = record["seq"]
    if not hmac.compare_digest(str(record["mac"]), record_mac(record, key)):
        if record["kid"] != kid:
            raise _LineFault("other_key", f"line {line_no} (seq {seq}) was made under another "
                             f"key (key id {record['kid']}, this key is {kid})", seq)
        raise _LineFault("bad_mac", f"line {line_no} (seq {seq}): bad MAC, the line was "
                         "edited or written without the key", seq)
    if seq != expect_seq:
        raise _LineFault("sequence_gap", f"line {line_no}: gap in sequence, seq {seq} where "
                         f"{expect_seq} was expected (a line was deleted, inserted or moved)", seq)
    if record["prev"] != expect_prev:
        raise _LineFault("chain_break", f"line {line_no} (seq {seq}): prev does not match the "
                         "line before (a line was replaced by one from another chain)", seq)
    return record


def verify(path: str | os.PathLike[str], key: bytes,
           head: AuditHead | None = None, *, check_head: bool = True) -> VerifyResult:
    """Check the whole chain of an audit file, then its tail against the recorded `head`.

    With `check_head` False the head is not compared (no journal to compare with). Raises
    FileNotFoundError when the file is missing.
    """
    kid = key_id(key)
    records = 0
    prev = GENESIS
    macs: dict[int, str] = {}
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                record = _check_line(raw, line_no, key, kid, records + 1, prev)
            except _LineFault as fault:
                return VerifyResult(False, records, line_no, str(fault), fault.problem,
                                    fault.seq, head.seq if head else None)
            records += 1
            prev = record["mac"]
            if head is not None and record["seq"] == head.seq:
                macs[head.seq] = prev
    if not check_head:
        return VerifyResult(True, records, None,
                            f"{records} records, chain intact (head not checked)")
    return _compare_head(records, head, macs)


def _compare_head(records: int, head: AuditHead | None,
                  macs: dict[int, str]) -> VerifyResult:
    if head is None:
        if records == 0:
            return VerifyResult(True, 0, None, "0 records, chain intact")
        return VerifyResult(False, records, None, f"{records} records but the journal records "
                            "no audit head: truncation cannot be ruled out", "no_head")
    if head.seq > records:
        return VerifyResult(
            False, records, records + 1,
            f"truncated tail: the file ends at seq {records} but the journal records the head "
            f"at seq {head.seq} ({head.seq - records} record(s) missing from the end)",
            "truncated_tail", records + 1, head.seq)
    if head.seq > 0 and not hmac.compare_digest(macs.get(head.seq, ""), head.mac):
        return VerifyResult(False, records, head.seq, f"line {head.seq}: its MAC differs from "
                            "the head the journal records (the file was replaced)",
                            "head_mismatch", head.seq, head.seq)
    ahead = records - head.seq
    note = f"; {ahead} record(s) after the recorded head (its update was lost)" if ahead else ""
    return VerifyResult(True, records, None,
                        f"{records} records, chain intact, head at seq {head.seq}{note}",
                        head_seq=head.seq)


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


def _is_unkeyed(path: Path) -> bool:
    """True when the file's first line is a record from before keying."""
    try:
        with open(path, "rb") as f:
            first = f.readline()
        record = json.loads(first.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and set(record) == set(UNKEYED_FIELDS)


def set_aside(path: Path, why: str) -> Path:
    """Rename the audit file to `<name>.<why>-<UTC time>` (kept as evidence); return the name."""
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.{why}-{stamp}")
    os.replace(path, target)
    return target


class AuditLog:
    """Append-only, keyed, chained, fsync'ed JSON-lines audit file. Thread-safe.

    `AuditLog(path, key=..., head=...)` creates the file (and its folder) or continues its
    chain; raises AuditChainError when the last line of an existing file does not verify or the
    file ends before the head recorded in `head`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: bytes,
        head: HeadStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._key = key
        self._kid = key_id(key)
        self._heads = head
        self._clock = clock
        self._lock = threading.Lock()
        self.failed = False  # set when a write failed; the interceptor then refuses changes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if _is_unkeyed(self.path):
            moved = set_aside(self.path, "unkeyed")
            log.warning("audit log %s is from before keying; kept as %s, a keyed chain begins",
                        self.path, moved)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "r+b", buffering=0)
        try:
            self._seq, self._prev = self._read_tail()
            self._check_head()
        except BaseException:
            self._file.close()
            raise
        if created:
            self._fsync_dir()

    def _refuse(self, what: str) -> AuditChainError:
        return AuditChainError(
            f"audit log {self.path}: {what}; run `cardstation audit verify`, keep the file as "
            "evidence, then `cardstation audit restart` to begin a new chain"
        )

    def _read_tail(self) -> tuple[int, str]:
        size = os.fstat(self._file.fileno()).st_size
        if size == 0:
            return 0, GENESIS
        raw, offset = _last_line(self._file, size)
        line_no = _line_number(self._file, offset)
        try:
            record = _parse(raw, line_no)
        except _LineFault as fault:
            raise self._refuse(f"line {line_no} (the last) does not verify: {fault}") from None
        if (
            not hmac.compare_digest(str(record["mac"]), record_mac(record, self._key))
            or (record["seq"] == 1) != (record["prev"] == GENESIS)
        ):
            raise self._refuse(f"line {line_no} (the last) does not verify under this key")
        if record["seq"] != line_no:
            raise self._refuse(f"last line {line_no} has seq {record['seq']}; "
                               "lines were deleted or inserted")
        return record["seq"], record["mac"]

    def _check_head(self) -> None:
        if self._heads is None:
            return
        head = self._heads.load()
        if head is not None and head.seq > self._seq:
            raise self._refuse(f"the file ends at seq {self._seq} but the journal records the "
                               f"head at seq {head.seq}: its tail was cut off")
        if head is not None and head.seq == self._seq and not hmac.compare_digest(
                head.mac, self._prev):
            raise self._refuse(f"its last line (seq {self._seq}) is not the head the journal "
                               "records: the file was replaced")
        if head is None or head.seq < self._seq:
            if head is None and self._seq:
                log.warning("audit log %s: the journal recorded no head; recording seq %d",
                            self.path, self._seq)
            self._save_head()

    def _save_head(self) -> None:
        if self._heads is None:
            return
        try:
            self._heads.save(AuditHead(self._seq, self._prev))
        except Exception as exc:  # the line is on disk; the next append records a newer head
            log.warning("audit log: could not record the head (seq %d) in the journal: %s",
                        self._seq, exc)

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
    def last_mac(self) -> str:
        """The mac of the last record (GENESIS when empty)."""
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
        """Write one record, flush and fsync it, record the head; return it."""
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
                "kid": self._kid,
                "prev": self._prev,
            }
            record["mac"] = record_mac(record, self._key)
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
            self._prev = record["mac"]
            self._save_head()
            return record

    def close(self) -> None:
        """Close the file. Further appends raise."""
        with self._lock:
            self._file.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
