"""The return outbox (数据回盘 queue) and the worker that delivers it to the CMS.

Rows are inserted only by `Journal.transition(..., VERIFIED -> RETURN_QUEUED, return_record=...)`
in the same SQLite transaction as the state change; this module reads and updates them. An entry
is kept until the CMS acknowledges it (status `delivered`, with the ack); nothing is ever deleted.

Entry statuses:

* `pending`    waiting for delivery at `next_attempt_at`;
* `delivering` claimed by a worker until `lease_until` (see below);
* `delivered`  acknowledged (`ack`, `delivered_at`); final;
* `failed`     the worker gave up after `max_attempts`; kept, `retry_now` makes it pending again.

Claims and leases: before delivering, a worker claims the row with one conditional UPDATE under
the SQLite write lock (pending and due, or delivering with an expired lease -> delivering, lease
`now + lease`, `claimed_by` = the worker's id). Only one worker, in this process or another on
the same file, wins a claim, so two workers never deliver an entry concurrently. A worker that
dies mid-delivery (kill -9) leaves the row `delivering`; once its lease expires the row is due
again and another worker (or the restarted station) claims it. The lease must be longer than the
CMS client's timeout; if a delivery outlives its lease it can be repeated, which the CMS
deduplicates by the idempotency key (the record is the same bytes: it is stored once).
A crashed delivery is not counted as an attempt; only recorded failures are.

So that a restarted station does not wait out a dead process's lease, `claimed_by` names the
claiming process (`host:pid:process-token:worker`). `Outbox.release_dead_claims` (run by the
worker before every pass) hands back at once the claims of processes on this host that are gone:
a PID that no longer exists, or this very PID with another process token (a restarted container
often gets the same PID). Claims by other hosts, by unrecognised owners, or by a live PID (even a
reused one) wait for their lease.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cardstation.drivers.redaction import redact
from cardstation.personalization.datakey import DataKeyError, DataKeys
from cardstation.personalization.journal import (
    Database,
    Journal,
    JournalCorrupt,
    JournalError,
    JournalKeyRefused,
    StorageFault,
    loads,
)
from cardstation.personalization.ports.cms import CmsError
from cardstation.personalization.sealed_rows import decode_object

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 2000
#: Distinguishes this process from an earlier one that had the same PID.
_PROCESS_TOKEN = uuid.uuid4().hex[:12]


def claim_owner(name: str) -> str:
    """An owner id for claims made by this process: host:pid:process-token:name."""
    return f"{socket.gethostname()}:{os.getpid()}:{_PROCESS_TOKEN}:{name}"


def owner_is_dead(owner: str | None) -> bool:
    """True only when the claiming process is certainly gone (see the module docstring)."""
    parts = (owner or "").split(":", 3)
    if len(parts) != 4 or parts[0] != socket.gethostname():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return parts[2] != _PROCESS_TOKEN
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, another user's
        return False
    return False


#: last_error_code of a return whose card was rejected or spoiled: never sent again.
WITHDRAWN = "withdrawn"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"


class OutboxEntryNotFound(JournalError, KeyError):
    """No outbox entry with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "outbox entry not found"


@dataclass
class OutboxEntry:
    """One queued return record and its delivery bookkeeping.

    `attempts` counts failed attempts since the entry was queued or last retried by hand
    (`retry_now` resets it; it drives the back-off and `max_attempts`); `total_attempts` never
    resets.
    """

    id: int
    issuance_id: str
    idempotency_key: str
    record: dict[str, Any] = field(repr=False)
    status: OutboxStatus
    attempts: int
    total_attempts: int
    next_attempt_at: float
    lease_until: float | None
    claimed_by: str | None
    last_error: str
    ack: str | None
    created_at: float
    updated_at: float
    delivered_at: float | None
    #: The CMS's machine reason for the last failure ("" for network trouble).
    last_error_code: str = ""

    @property
    def refused(self) -> bool:
        """Given up because the CMS refused it for good (not network trouble, not withdrawn)."""
        return (self.status is OutboxStatus.FAILED and bool(self.last_error_code)
                and self.last_error_code != WITHDRAWN)


_COLUMNS = (
    "id, issuance_id, idempotency_key, record, status, attempts, total_attempts, "
    "next_attempt_at, lease_until, claimed_by, last_error, ack, created_at, updated_at, "
    "delivered_at, last_error_code"
)


def _entry(row: tuple[Any, ...], keys: DataKeys | None) -> OutboxEntry:
    try:  # sealed with the issuance as its row: one entry per issuance
        record = decode_object(keys, row[3], "outbox", "record", row[1], loads)
    except DataKeyError as exc:
        raise JournalKeyRefused(str(exc)) from None
    if not isinstance(record, dict):
        raise JournalCorrupt(f"outbox entry {row[0]} record is not a JSON object")
    try:
        status = OutboxStatus(row[4])
    except ValueError:
        raise JournalCorrupt(f"outbox entry {row[0]} has an unknown status {row[4]!r}") from None
    return OutboxEntry(
        id=row[0],
        issuance_id=row[1],
        idempotency_key=row[2],
        record=record,
        status=status,
        attempts=row[5],
        total_attempts=row[6],
        next_attempt_at=row[7],
        lease_until=row[8],
        claimed_by=row[9],
        last_error=row[10],
        ack=row[11],
        created_at=row[12],
        updated_at=row[13],
        delivered_at=row[14],
        last_error_code=row[15] or "",
    )


def _finite(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number of seconds, not {value!r}")
    return float(value)


class Outbox:
    """The outbox table of a journal file.

    Pass the `Journal` (shares its connection and lock: the journal's transition inserts the
    rows, this reads/updates them) or a path (opens its own connection; `close()` closes it;
    `durable` as for `Journal`). `clock` defaults to the journal's.
    """

    def __init__(
        self,
        source: Journal | Database | str | Path,
        *,
        clock: Callable[[], float] | None = None,
        durable: bool = True,
    ) -> None:
        if isinstance(source, Journal):
            self._db, self._owned = source.database, False
        elif isinstance(source, Database):
            self._db, self._owned = source, False
        else:
            self._db, self._owned = (
                Database(source, clock=clock or time.time, durable=durable),
                True,
            )
        self._clock = clock or self._db.clock

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else _finite(now, "now")

    def _select(self, where: str, params: Iterable[Any] = ()) -> list[OutboxEntry]:
        with self._db.read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM outbox {where}", tuple(params)).fetchall()
        return [_entry(r, self._db.keys) for r in rows]

    def due(self, now: float | None = None) -> list[OutboxEntry]:
        """Entries to deliver now: pending with next_attempt_at <= now, and delivering ones
        whose lease has expired (their worker died), oldest schedule first."""
        t = self._now(now)
        return self._select(
            "WHERE (status = 'pending' AND next_attempt_at <= ?) "
            "OR (status = 'delivering' AND lease_until <= ?) ORDER BY next_attempt_at, id",
            (t, t),
        )

    def summary(self) -> dict[str, tuple[int, float | None]]:
        """status -> (entries, created_at of the oldest): what the metrics show, in one
        query that reads no record."""
        with self._db.read() as conn:
            # the counts are kept by triggers and the oldest comes from the outbox_oldest
            # index (journal schema 3): no pass over the delivered entries, however many
            counts = conn.execute(
                "SELECT key, n FROM counts WHERE tbl = 'outbox' AND n > 0").fetchall()
            return {str(status): (int(n), conn.execute(
                "SELECT MIN(created_at) FROM outbox WHERE status = ?", (status,)).fetchone()[0])
                for status, n in counts}

    def pending(self) -> list[OutboxEntry]:
        """Every entry not yet acknowledged and not given up (pending or delivering)."""
        return self._select("WHERE status IN ('pending', 'delivering') ORDER BY id")

    def delivered(self) -> list[OutboxEntry]:
        return self._select("WHERE status = 'delivered' ORDER BY id")

    def failed(self) -> list[OutboxEntry]:
        """Entries the worker gave up on (kept; `retry_now` re-queues them)."""
        return self._select("WHERE status = 'failed' ORDER BY id")

    def all(self) -> list[OutboxEntry]:
        return self._select("ORDER BY id")

    def get(self, issuance_id: str) -> OutboxEntry | None:
        """The entry of an issuance (there is at most one), or None."""
        rows = self._select("WHERE issuance_id = ?", (issuance_id,))
        return rows[0] if rows else None

    def entry(self, entry_id: int) -> OutboxEntry:
        """The entry by its id; OutboxEntryNotFound (a KeyError) if there is none."""
        rows = self._select("WHERE id = ?", (entry_id,))
        if not rows:
            raise OutboxEntryNotFound(f"outbox entry {entry_id} not found")
        return rows[0]

    def next_due_at(self) -> float | None:
        """When the next entry becomes due (a schedule or a lease expiry), None if nothing is
        waiting."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT MIN(CASE status WHEN 'pending' THEN next_attempt_at "
                "ELSE lease_until END) FROM outbox WHERE status IN ('pending', 'delivering')"
            ).fetchone()
        return row[0] if row else None

    def claim(
        self, entry_id: int, owner: str, lease_until: float, now: float | None = None
    ) -> OutboxEntry | None:
        """Claim a due entry for delivery (status delivering until `lease_until`). Returns the
        claimed entry, or None if it is not due or another worker holds it."""
        t = self._now(now)
        lease_until = _finite(lease_until, "lease_until")
        with self._db.write() as conn:
            cur = conn.execute(
                "UPDATE outbox SET status = 'delivering', lease_until = ?, claimed_by = ?, "
                "updated_at = ? WHERE id = ? AND ((status = 'pending' AND next_attempt_at <= ?) "
                "OR (status = 'delivering' AND lease_until <= ?))",
                (lease_until, owner, t, entry_id, t, t),
            )
            if cur.rowcount != 1:
                return None
            row = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (entry_id,))
            return _entry(row.fetchone(), self._db.keys)

    def release_dead_claims(self, now: float | None = None) -> int:
        """Make entries claimed by a process that is gone (`owner_is_dead`) pending and due now,
        without waiting for their lease. Returns how many were released."""
        t = self._now(now)
        with self._db.read() as conn:
            claims = conn.execute(
                "SELECT id, claimed_by FROM outbox WHERE status = 'delivering'"
            ).fetchall()
        dead = [(entry_id, owner) for entry_id, owner in claims if owner_is_dead(owner)]
        released = 0
        if dead:
            with self._db.write() as conn:
                for entry_id, owner in dead:
                    released += conn.execute(
                        "UPDATE outbox SET status = 'pending', lease_until = NULL, "
                        "next_attempt_at = MIN(next_attempt_at, ?), updated_at = ? "
                        "WHERE id = ? AND status = 'delivering' AND claimed_by = ?",
                        (t, t, entry_id, owner),
                    ).rowcount
            log.info("released %d outbox claim(s) of processes that are gone", released)
        return released

    def mark_delivered(self, entry_id: int, ack: str) -> None:
        """Record the CMS acknowledgement. Final: an entry already delivered keeps its first ack.
        Accepted from any other status (an ack is the truth, even from a late worker)."""
        if not isinstance(ack, str):
            raise ValueError("ack must be a string")
        with self._db.write() as conn:
            now = self._clock()
            cur = conn.execute(
                "UPDATE outbox SET status = 'delivered', ack = ?, delivered_at = ?, "
                "lease_until = NULL, updated_at = ? WHERE id = ? AND status != 'delivered'",
                (ack, now, now, entry_id),
            )
            if cur.rowcount == 0:
                self._require(conn, entry_id)

    def mark_attempt_failed(
        self, entry_id: int, error: str, next_attempt_at: float, give_up: bool = False,
        code: str = "",
    ) -> None:
        """Record a failed attempt (error text redacted, the CMS's reason `code` if it gave
        one), schedule the next one, or give up (status failed). Ignored if the entry is
        already delivered or failed (a late worker)."""
        next_attempt_at = _finite(next_attempt_at, "next_attempt_at")
        text = redact(str(error))[:_MAX_ERROR_CHARS]
        with self._db.write() as conn:
            cur = conn.execute(
                "UPDATE outbox SET status = ?, attempts = attempts + 1, "
                "total_attempts = total_attempts + 1, last_error = ?, last_error_code = ?, "
                "next_attempt_at = ?, lease_until = NULL, updated_at = ? "
                "WHERE id = ? AND status IN ('pending', 'delivering')",
                (
                    OutboxStatus.FAILED.value if give_up else OutboxStatus.PENDING.value,
                    text,
                    code,
                    next_attempt_at,
                    self._clock(),
                    entry_id,
                ),
            )
            if cur.rowcount == 0:
                self._require(conn, entry_id)

    def withdraw(self, entry_id: int, why: str) -> bool:
        """The card of this return was rejected or spoiled: never send its record (status
        failed, code `withdrawn`; `retry_now` leaves it alone). False if it was delivered
        already (the CMS has it: a re-make restores the application first)."""
        with self._db.write() as conn:
            now = self._clock()
            changed = conn.execute(
                "UPDATE outbox SET status = 'failed', last_error = ?, last_error_code = ?, "
                "lease_until = NULL, updated_at = ? WHERE id = ? AND status != 'delivered'",
                (redact(why)[:_MAX_ERROR_CHARS], WITHDRAWN, now, entry_id),
            ).rowcount
            if not changed:
                self._require(conn, entry_id)
            return bool(changed)

    def retry_now(self, entry_ids: list[int] | None = None) -> int:
        """Make failed and pending entries (all, or those in `entry_ids`) due now, with the
        attempt count reset (fresh back-off, fresh max_attempts). Delivering and delivered
        entries are left alone. Returns how many entries were changed."""
        with self._db.write() as conn:
            now = self._clock()
            sql = (
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, "
                "lease_until = NULL, updated_at = ? WHERE status IN ('pending', 'failed') "
                f"AND last_error_code != '{WITHDRAWN}'"
            )
            params: list[Any] = [now, now]
            if entry_ids is not None:
                ids = [int(i) for i in entry_ids]
                if not ids:
                    return 0
                sql += f" AND id IN ({', '.join('?' * len(ids))})"
                params.extend(ids)
            return conn.execute(sql, params).rowcount

    def close(self) -> None:
        """Close the connection if this outbox opened it (a shared Journal's is left open)."""
        if self._owned:
            self._db.close()

    @staticmethod
    def _require(conn: Any, entry_id: int) -> None:
        if conn.execute("SELECT 1 FROM outbox WHERE id = ?", (entry_id,)).fetchone() is None:
            raise OutboxEntryNotFound(f"outbox entry {entry_id} not found")


class ReturnWorker:
    """Delivers the outbox in a background thread (or synchronously with `run_once`).

    `deliver(record, idempotency_key) -> ack` sends one return record to the CMS and raises any
    Exception on failure. An exception whose `retryable` attribute is False (the CMS refused
    the record for good: no such application, a different record held) gives the entry up at
    once, with the CMS error's domain `code` kept as `last_error_code`; sending it again unchanged
    would be refused again. After the n-th consecutive failure the entry is due again after
    `min(max_delay, base_delay * 2**(n-1)) * (1 + u)`, u uniform in [-jitter, +jitter]; after
    `max_attempts` failures (None: never) it is given up (status failed, kept). The recorded
    error is `str(exc)` redacted (no ID or account numbers in the database or the logs).

    `on_delivered(entry)` is called after each acknowledged delivery, `on_failed(entry)` after
    each failed attempt with the updated entry (status pending, or failed when given up).
    Callback errors are logged and ignored. `lease` (seconds) is how long a claim holds; make it
    longer than the CMS client's whole timeout (connect + read). Before each pass the worker
    releases the claims of dead local processes (`Outbox.release_dead_claims`). `rng` makes the
    jitter reproducible in tests.
    """

    def __init__(
        self,
        outbox: Outbox,
        deliver: Callable[[dict[str, Any], str], str],
        *,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        jitter: float = 0.2,
        max_attempts: int | None = None,
        clock: Callable[[], float] = time.time,
        on_delivered: Callable[[OutboxEntry], object] | None = None,
        on_failed: Callable[[OutboxEntry], None] | None = None,
        lease: float = 120.0,
        poll_interval: float = 5.0,
        rng: random.Random | None = None,
        name: str = "return-worker",
    ) -> None:
        if base_delay < 0 or max_delay < 0 or not 0 <= jitter < 1:
            raise ValueError("base_delay/max_delay must be >= 0 and 0 <= jitter < 1")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 or None")
        if lease <= 0 or poll_interval <= 0:
            raise ValueError("lease and poll_interval must be > 0")
        self.outbox = outbox
        self.deliver = deliver
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self.max_attempts = max_attempts
        self.clock = clock
        self.on_delivered = on_delivered
        self.on_failed = on_failed
        self.lease = lease
        self.poll_interval = poll_interval
        self.worker_id = claim_owner(f"{name}-{uuid.uuid4().hex[:8]}")
        self._rng = rng or random.Random()
        self._name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def delay(self, attempts: int) -> float:
        """The back-off before the next attempt after `attempts` consecutive failures."""
        exponent = min(max(attempts - 1, 0), 64)  # 2**64 s is past any max_delay
        base = min(self.max_delay, self.base_delay * float(2**exponent))
        return base * (1.0 + self._rng.uniform(-self.jitter, self.jitter))

    def run_once(self) -> int:
        """Deliver every entry due now, once each, synchronously. Returns the number delivered.
        Entries another worker holds are skipped."""
        now = self.clock()
        self.outbox.release_dead_claims(now)
        delivered = 0
        for candidate in self.outbox.due(now):
            if self._stop.is_set() and self._thread is threading.current_thread():
                break
            t = self.clock()
            entry = self.outbox.claim(candidate.id, self.worker_id, t + self.lease, now=t)
            if entry is None:
                continue
            if self._deliver_one(entry):
                delivered += 1
        return delivered

    def _deliver_one(self, entry: OutboxEntry) -> bool:
        try:
            ack = self.deliver(dict(entry.record), entry.idempotency_key)
            if ack is None:
                raise RuntimeError("deliver returned no acknowledgement")
        except Exception as exc:
            error = redact(str(exc) or type(exc).__name__)
            attempts = entry.attempts + 1
            permanent = getattr(exc, "retryable", True) is False
            give_up = permanent or (self.max_attempts is not None
                                    and attempts >= self.max_attempts)
            # the port's code (CMS_RETURN_CONFLICT, ...), never the CMS's own wire code
            code = (exc.code if isinstance(exc, CmsError) else "REFUSED") if permanent else ""
            next_at = self.clock() + self.delay(attempts)
            self.outbox.mark_attempt_failed(entry.id, error, next_at, give_up=give_up,
                                            code=code)
            log.warning(
                "return delivery for issuance %s failed (attempt %d%s): %s",
                entry.issuance_id,
                attempts,
                ", giving up" if give_up else "",
                error,
            )
            self._callback(self.on_failed, entry.id)
            return False
        self.outbox.mark_delivered(entry.id, str(ack))
        log.info("return for issuance %s delivered", entry.issuance_id)
        self._callback(self.on_delivered, entry.id)
        return True

    def _callback(self, fn: Callable[[OutboxEntry], object] | None, entry_id: int) -> None:
        if fn is None:
            return
        try:
            fn(self.outbox.entry(entry_id))
        except Exception:
            log.exception("outbox callback failed")

    # -- background thread --------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (no-op if running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        """Ask the thread to stop after the delivery in progress and wait up to `timeout`."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("return worker did not stop within %.1f s", timeout)
            else:
                self._thread = None

    def wake(self) -> None:
        """Look for due entries now (after an enqueue or retry_now)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            wait = self.poll_interval
            try:
                self.run_once()
                next_due = self.outbox.next_due_at()
                if next_due is not None:
                    wait = min(self.poll_interval, max(0.01, next_due - self.clock()))
            except StorageFault as exc:  # a full or locked journal: the next pass tries again
                log.warning("return worker waits for the journal: %s", exc)
            except Exception:
                log.exception("return worker pass failed")
            self._wake.wait(wait)
