"""The durable issuance journal: one SQLite file (WAL), one row per card job, an event per change.

Every state of an issuance is committed here before the next step starts, so after a crash
(kill -9, power loss) the pipeline resumes from `Journal.unfinished()`. The return outbox lives
in the same file (`outbox` table, see `cardstation.personalization.outbox`) so that the
VERIFIED -> RETURN_QUEUED transition and the outbox row are one SQLite transaction: either both
exist or neither does.

States and transitions (`ALLOWED` / `Journal.transition`):

* forward, one step at a time: FETCHED -> PREVIEWED -> FED -> CHIP_WRITTEN -> VERIFIED ->
  RETURN_QUEUED -> PRINTED -> EJECTED -> DONE;
* any non-terminal state (FAILED included) -> REJECTED, with a reason;
* any non-terminal state except FAILED itself -> FAILED, with a reason; the state it failed
  from is kept (`Issuance.failed_from`);
* resume: FAILED -> S, where S is a forward state (FETCHED .. EJECTED) no later than the state
  it failed from. Once a return is queued (failed from RETURN_QUEUED or later) S must be
  RETURN_QUEUED or later: the chip of that card is bound to the queued return record, and
  going back to write again would need a second, different record (refused);
* DONE and REJECTED are terminal.

Entering RETURN_QUEUED from VERIFIED requires `return_record`; `return_record` is refused
anywhere else. A return is never enqueued twice for one issuance (UNIQUE issuance_id and
idempotency_key in the outbox).

Writes run under `BEGIN IMMEDIATE` (the SQLite write lock is taken before the current state is
read), so a check-then-update cannot interleave with another writer, in this process or another.
One connection per database object, shared by threads behind a lock.

Personal fields are sealed per row (schema 4): the ID number, the application, the data, the
events' data and the return records are stored sealed under the station data key (`datakey`,
`sealed_rows` says what stays in clear); an applicant's jobs are found by `id_lookup`, an HMAC
of the number. What this class returns is always opened: callers never see a sealed value.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.datakey import (
    REMEDY_KEY,
    DataKeyError,
    DataKeys,
    DataKeySource,
    KeyFile,
    SealedValueError,
    aad,
    open_text,
    seal_object,
    seal_text,
)
from cardstation.personalization.model import ReturnRecord
from cardstation.personalization.sealed_rows import (
    APPLICATION_CLEAR,
    DATA_CLEAR,
    KEY_CHECK,
    KEY_CHECK_META,
    RECORD_CLEAR,
    decode_object,
    event_row,
    reseal_pass,
)
from cardstation.personalization.storage import (
    StorageKind,
    free_bytes,
    os_kind,
    sqlite_cause,
    sqlite_kind,
)

SCHEMA_VERSION = 4
SCHEMA_APPLICATION = "cardstation-journal"


class State(StrEnum):
    """The states of one issuance (one card job)."""

    FETCHED = "FETCHED"
    PREVIEWED = "PREVIEWED"
    FED = "FED"
    CHIP_WRITTEN = "CHIP_WRITTEN"
    VERIFIED = "VERIFIED"
    RETURN_QUEUED = "RETURN_QUEUED"
    PRINTED = "PRINTED"
    EJECTED = "EJECTED"
    DONE = "DONE"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


FORWARD: tuple[State, ...] = (
    State.FETCHED,
    State.PREVIEWED,
    State.FED,
    State.CHIP_WRITTEN,
    State.VERIFIED,
    State.RETURN_QUEUED,
    State.PRINTED,
    State.EJECTED,
    State.DONE,
)
TERMINAL: frozenset[State] = frozenset({State.DONE, State.REJECTED})
#: States the pipeline may resume to from FAILED (bounded by the state it failed from).
RESUMABLE: tuple[State, ...] = FORWARD[:-1]
_RANK = {state: i for i, state in enumerate(FORWARD)}


def _allowed() -> dict[State, frozenset[State]]:
    table: dict[State, set[State]] = {s: set() for s in State}
    for a, b in itertools.pairwise(FORWARD):
        table[a].add(b)
    for s in State:
        if s not in TERMINAL:
            table[s].add(State.REJECTED)
            if s is not State.FAILED:
                table[s].add(State.FAILED)
    table[State.FAILED].update(RESUMABLE)  # further bounded by failed_from, see _check
    return {s: frozenset(t) for s, t in table.items()}


#: Every transition the journal accepts before the per-issuance checks (failed_from, outbox).
ALLOWED: dict[State, frozenset[State]] = _allowed()


class JournalError(Exception):
    """Base class of the journal's and outbox's errors."""


class IssuanceNotFound(JournalError, KeyError):
    """No issuance with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "issuance not found"


class IllegalTransition(JournalError):
    """The issuance's current state does not allow the requested transition."""

    def __init__(
        self, issuance_id: str, from_state: State | None, to_state: State, detail: str = ""
    ) -> None:
        self.issuance_id = issuance_id
        self.from_state = from_state
        self.to_state = to_state
        self.detail = detail
        text = f"illegal transition {from_state} -> {to_state} for issuance {issuance_id}"
        super().__init__(f"{text}: {detail}" if detail else text)


class ReturnAlreadyQueued(IllegalTransition):
    """A return record exists for this issuance (or its idempotency key is taken)."""


class RequestIdConflict(JournalError, ValueError):
    """A client request id reused for a different ID number."""


class LiveIssuanceExists(JournalError):
    """The applicant already has a live issuance (not DONE or REJECTED): one card per person."""

    def __init__(self, existing: Issuance) -> None:
        self.existing = existing
        super().__init__(f"issuance {existing.id} ({existing.state.value}) is already making "
                         "this applicant's card")


class JournalCorrupt(JournalError):
    """The file is not a journal this version understands (corrupt, foreign or newer schema),
    or cannot be opened at all. The message names the file and what to do."""


class JournalKeyRefused(JournalError):
    """The station data key is missing, open to others, or not this journal's, or a sealed
    value does not open (tampered, moved to another row): the message names file and remedy."""


class JournalInUse(JournalError):
    """Another program (the station's server, a `cardstation run`) has the journal open, so it
    cannot be restored or compacted now."""


#: What an operator does about a journal that cannot be opened (never re-created over).
REMEDY_JOURNAL_FILE = ("restore the journal from the station's backup, or, knowing that its "
                       "history (jobs, events, queued returns) is lost, move the file away so "
                       "that a new journal is made; then start the station again")


class StorageFault(JournalError):
    """The journal (or the data folder) cannot be written now: `kind` FULL (no room) or
    UNAVAILABLE (locked by another program, an I/O error, read-only). Transient: the same
    write succeeds once the cause is gone. `cause` is in plain words, `path` the file."""

    def __init__(self, kind: StorageKind, path: Path, cause: str) -> None:
        self.kind = kind
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{cause} ({self.path})")

    @classmethod
    def from_os_error(cls, exc: OSError, path: Path) -> StorageFault:
        return cls(os_kind(exc), Path(exc.filename or path), exc.strerror or str(exc))


@dataclass
class Issuance:
    """One card job as the journal holds it. `data` holds facts gathered by the steps."""

    id: str
    client_request_id: str | None
    id_number: str
    state: State
    application: dict[str, Any]
    data: dict[str, Any]
    created_at: float
    updated_at: float
    reason: str = ""
    failed_from: State | None = None
    #: When retention removed its personal fields (`id_number` is then the masked number).
    purged_at: float | None = None

    def __repr__(self) -> str:  # never the full ID number, never the photo
        return (
            f"Issuance(id={self.id!r}, state={self.state.value}, "
            f"id_number={mask_id_number(self.id_number)!r}, "
            f"client_request_id={self.client_request_id!r}, reason={self.reason!r})"
        )


@dataclass
class Event:
    """One committed change: a transition, or a data update (`from_state == to_state`).
    The first event of every issuance has `from_state` None and `to_state` FETCHED."""

    issuance_id: str
    seq: int
    at: float
    from_state: State | None
    to_state: State
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One transition of `Journal.transitions` (the arguments of `Journal.transition`)."""

    to: State
    reason: str = ""
    data: dict[str, Any] | None = None
    return_record: dict[str, Any] | None = None
    idempotency_key: str | None = None


_STATES_SQL = ", ".join(f"'{s.value}'" for s in State)

_SCHEMA_V3 = f"""
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE issuances (
    id TEXT PRIMARY KEY,
    client_request_id TEXT UNIQUE,
    id_number TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({_STATES_SQL})),
    application TEXT NOT NULL CHECK (json_valid(application)),
    data TEXT NOT NULL CHECK (json_valid(data)),
    reason TEXT NOT NULL DEFAULT '',
    failed_from TEXT CHECK (failed_from IS NULL OR failed_from IN ({_STATES_SQL})),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX issuances_order ON issuances (created_at, id);
CREATE INDEX issuances_applicant ON issuances (id_number, created_at);
CREATE INDEX issuances_state ON issuances (state, created_at, id);
CREATE TABLE events (
    issuance_id TEXT NOT NULL REFERENCES issuances (id),
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    from_state TEXT CHECK (from_state IS NULL OR from_state IN ({_STATES_SQL})),
    to_state TEXT NOT NULL CHECK (to_state IN ({_STATES_SQL})),
    reason TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL CHECK (json_valid(data)),
    PRIMARY KEY (issuance_id, seq)
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    issuance_id TEXT NOT NULL UNIQUE REFERENCES issuances (id),
    idempotency_key TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL CHECK (json_valid(record)),
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    total_attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL,
    claimed_by TEXT,
    last_error TEXT NOT NULL DEFAULT '',
    last_error_code TEXT NOT NULL DEFAULT '',
    ack TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
"""

# Version 3: rows per issuance state and per outbox status, kept by triggers in the same
# transaction as the change, so `state_counts` and `Outbox.summary` read a few rows instead of
# counting a million; and the oldest entry of a status found from an index.
_COUNTS_TEMPLATE = """
CREATE TABLE counts (
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID;
INSERT INTO counts (tbl, key, n) SELECT 'issuances', state, COUNT(*) FROM issuances
    GROUP BY state;
INSERT INTO counts (tbl, key, n) SELECT 'outbox', status, COUNT(*) FROM outbox GROUP BY status;
CREATE INDEX outbox_oldest ON outbox (status, created_at);
{triggers}
"""


def _count_triggers(table: str, column: str) -> str:
    """The triggers that keep `counts` for `table` by `column`: +1 on insert, moved on a
    change of `column`, -1 on delete."""
    up = (f"INSERT INTO counts (tbl, key, n) VALUES ('{table}', NEW.{column}, 1)\n"
          "        ON CONFLICT (tbl, key) DO UPDATE SET n = n + 1;")
    down = f"UPDATE counts SET n = n - 1 WHERE tbl = '{table}' AND key = OLD.{column};"
    return (f"CREATE TRIGGER {table}_counted AFTER INSERT ON {table} BEGIN\n    {up}\nEND;\n"
            f"CREATE TRIGGER {table}_recounted AFTER UPDATE OF {column} ON {table}\n"
            f"    WHEN OLD.{column} IS NOT NEW.{column} BEGIN\n    {down}\n    {up}\nEND;\n"
            f"CREATE TRIGGER {table}_uncounted AFTER DELETE ON {table} BEGIN\n    {down}\nEND")


_COUNTS = _COUNTS_TEMPLATE.format(
    triggers=_count_triggers("issuances", "state") + ";\n" + _count_triggers("outbox", "status"))
_SCHEMA_V3 += _COUNTS

# Version 4: the personal fields sealed per row under the station data key (datakey,
# sealed_rows). The ID number is kept sealed, with a keyed lookup (HMAC) to find an applicant's
# jobs and the masked number the reports show; `purged_at` marks a job whose personal fields
# retention removed. The index on the clear number goes (secure_delete overwrites its pages).
# The rows are sealed after this, in batches (`sealed_rows.reseal_pass`, resumable).
_SEALING = """
ALTER TABLE issuances ADD COLUMN id_lookup TEXT;
ALTER TABLE issuances ADD COLUMN id_masked TEXT NOT NULL DEFAULT '';
ALTER TABLE issuances ADD COLUMN purged_at REAL;
DROP INDEX IF EXISTS issuances_applicant;
CREATE INDEX issuances_lookup ON issuances (id_lookup, created_at);
INSERT INTO meta (key, value) VALUES ('reseal', '{"table": "issuances", "after": 0}')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""
#: A new journal: version 3 and the step to 4, so a new and a migrated journal are the same.
_SCHEMA = _SCHEMA_V3 + ";\n" + _SEALING

_EXPECTED_TABLES = {"meta", "issuances", "events", "outbox", "counts"}
#: Migrations from version N to N+1, run in one transaction each.
_MIGRATIONS: dict[int, str] = {
    # 2: applicant look-ups (one live issuance per applicant); the CMS's reason code of a
    # failed return attempt
    1: """
CREATE INDEX issuances_applicant ON issuances (id_number, created_at);
ALTER TABLE outbox ADD COLUMN last_error_code TEXT NOT NULL DEFAULT ''
""",
    # 3: counts kept by triggers; the oldest outbox entry per status by index
    2: _COUNTS,
    # 4: personal fields sealed (the rows themselves by the pass that follows)
    3: _SEALING,
}


_RESERVED_META = {"application", "schema_version", KEY_CHECK_META, "reseal"}


def read_meta(path: str | Path, key: str) -> str | None:
    """A `meta` value of the journal at `path`, opened read-only (never created).

    Raises FileNotFoundError when there is no journal, JournalCorrupt when it is not one.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(str(path))
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise JournalCorrupt(f"{path} is not a readable journal: {exc}") from exc
    return row[0] if row else None


def open_read_only(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to the journal at `path` (never created, never migrated), for
    tools that read a journal while the station runs (reports, backups, retention).

    Raises FileNotFoundError when there is no file, JournalCorrupt when it is not a journal.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(str(path))
    _check_file(path)
    try:
        conn = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True, timeout=10.0)
        application = conn.execute("SELECT value FROM meta WHERE key = 'application'").fetchone()
    except sqlite3.Error as exc:
        raise JournalCorrupt(f"{path} is not a readable journal: {exc} — "
                             f"{REMEDY_JOURNAL_FILE}") from exc
    if application is None or application[0] != SCHEMA_APPLICATION:
        conn.close()
        raise JournalCorrupt(f"{path} is not a journal — {REMEDY_JOURNAL_FILE}")
    return conn


#: Every SQLite connection to a WAL database holds a shared POSIX lock on this byte of the
#: -shm file for as long as it is open (the unix VFS's "dead man switch": WALINDEX_LOCK_OFFSET
#: 120 plus 8 lock bytes), idle or not; the database file itself is locked only during
#: transactions, so it cannot show an idle server.
_SHM_DMS_BYTE = 128


def open_elsewhere(path: str | Path) -> bool:
    """True when another process has the journal at `path` open (a running server, a
    `cardstation run`). POSIX locks belong to a process, so this process's own connections are
    not seen; and closing the probe's descriptor drops this process's locks on the -shm file:
    call it before this process opens the journal."""
    shm = Path(path).with_name(Path(path).name + "-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:  # the last connection to close removes it
        return False
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _SHM_DMS_BYTE, os.SEEK_SET)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return True
            raise
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _SHM_DMS_BYTE, os.SEEK_SET)
        return False
    finally:
        os.close(fd)


def refuse_if_open_elsewhere(path: str | Path) -> None:
    """JournalInUse when another program has the journal open (see `open_elsewhere`)."""
    if open_elsewhere(path):
        raise JournalInUse(
            f"journal {path} is open in another program (the station's server?): stop it "
            "first (systemctl stop cardstation, or Ctrl-C the `cardstation serve`), then run "
            "this again")


@contextmanager
def sole_connection(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A connection to the journal at `path` once no other program has it open (restore,
    compact); JournalInUse otherwise. It is an ordinary WAL connection, so a server started
    meanwhile only waits for its lock and sees every change whole. The WAL is checkpointed
    into the file first, so the file alone holds every commit."""
    path = Path(path)
    _check_file(path)
    refuse_if_open_elsewhere(path)
    try:
        conn = sqlite3.connect(f"file:{_uri_path(path)}?mode=rw", uri=True, timeout=10.0,
                               isolation_level=None)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as exc:
        kind = sqlite_kind(exc)
        if kind is not None:  # a program that opened it just now holds its lock
            raise StorageFault(kind, path, sqlite_cause(exc)) from exc
        raise JournalCorrupt(f"{path} is not a usable journal: {exc} — "
                             f"{REMEDY_JOURNAL_FILE}") from exc
    try:
        yield conn
    finally:
        conn.close()


def dumps(value: Any, what: str) -> str:
    """JSON-encode `value` strictly (no NaN, no non-JSON types); ValueError naming `what`."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from None


def loads(text: str, what: str) -> Any:
    """Decode a JSON column; a bad value means a damaged file (JournalCorrupt)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise JournalCorrupt(f"{what} holds invalid JSON: {exc}") from None


def _json_object(value: Any, what: str) -> str:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict, not {type(value).__name__}")
    return dumps(value, what)


class Database:
    """One SQLite connection to a journal file, shared by threads behind a lock.

    Internal to the journal and outbox: `Journal` and `Outbox` on the same object share the
    connection, so the outbox insert joins the journal's transaction.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
        durable: bool = True,
        keys: DataKeys | DataKeySource | None = None,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        #: where the data keys come from (default: data.key beside the journal)
        self.key_source: DataKeys | DataKeySource = keys or KeyFile.beside(self.path)
        self.keys: DataKeys | None = None
        self.timeout = timeout
        self.lock = threading.RLock()
        self.closed = False
        self.durable = durable
        if not self.path.exists():
            _create_atomically(self.path, lambda p: self._connect(p, durable, create=True))
        _check_file(self.path)
        self.conn = self._connect(self.path, durable)
        self.reseal()  # the rest of a migration or rotation killed halfway, if any

    def reseal(self, progress: Callable[[str, int, int], None] | None = None, *,
               batch: int = 200) -> int:
        """Seal under the current key every row the pass marked in meta has not reached yet
        (nothing when no pass is pending), `batch` rows a transaction; rows looked at."""
        assert self.keys is not None
        try:
            with self.zeroing_freed_pages():
                return reseal_pass(self.write, self.keys, batch=batch, progress=progress)
        except DataKeyError as exc:
            raise JournalKeyRefused(str(exc)) from None

    def _connect(self, path: Path, durable: bool, create: bool = False) -> sqlite3.Connection:
        """An open, checked connection to the journal at `path` (schema made or migrated)."""
        try:
            # mode=rw for the journal itself: SQLite must never make an empty file where the
            # journal should be (only the temporary file of a new journal is created)
            conn = sqlite3.connect(f"file:{_uri_path(path)}?mode={'rwc' if create else 'rw'}",
                                   timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False, uri=True)
        except sqlite3.Error as exc:
            raise JournalCorrupt(f"cannot open journal {path}: {exc} — "
                                 f"{REMEDY_JOURNAL_FILE}") from exc
        self.conn = conn  # _prepare_schema writes through self.write(), on this connection
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            # FULL: a commit is on disk before it returns (power loss included). NORMAL (in WAL)
            # survives a process crash but may lose the last commits on power loss.
            conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            conn.execute("PRAGMA foreign_keys = ON")
            # FAST: what a step frees is ciphertext already, and zeroing every freed page would
            # write it again at each commit; the passes that replace clear values (sealing in
            # place, a purge) turn it fully ON (`zeroing_freed_pages`)
            conn.execute("PRAGMA secure_delete = FAST")
            self._prepare_schema()
        except sqlite3.DatabaseError as exc:
            conn.close()
            kind = sqlite_kind(exc)
            if kind is not None:  # locked by another program (a restore), full: not damage
                raise StorageFault(kind, path, sqlite_cause(exc)) from exc
            raise JournalCorrupt(f"{path} is not a usable journal: {exc} — "
                                 f"{REMEDY_JOURNAL_FILE}") from exc
        except JournalError:
            conn.close()
            raise
        except DataKeyError as exc:
            conn.close()
            raise JournalKeyRefused(str(exc)) from None
        return conn

    def _prepare_schema(self) -> None:
        with self.write() as conn:
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'"
                )
            }
            if not tables:
                for statement in _split_sql(_SCHEMA):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('application', ?), "
                    "('schema_version', ?)",
                    (SCHEMA_APPLICATION, str(SCHEMA_VERSION)),
                )
                self._bind_keys(conn)
                return
            if "meta" not in tables:
                raise JournalCorrupt(
                    f"{self.path} is an SQLite file without a journal schema "
                    f"(tables: {', '.join(sorted(tables))})"
                )
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("application") != SCHEMA_APPLICATION:
                raise JournalCorrupt(
                    f"{self.path} belongs to {meta.get('application')!r}, not the journal"
                )
            try:
                version = int(meta.get("schema_version", ""))
            except ValueError:
                raise JournalCorrupt(f"{self.path} has no valid schema version") from None
            if version > SCHEMA_VERSION:
                raise JournalCorrupt(
                    f"{self.path} has journal schema version {version}; this software "
                    f"understands up to {SCHEMA_VERSION} (downgrade refused)"
                )
            while version < SCHEMA_VERSION:
                if version not in _MIGRATIONS:
                    raise JournalCorrupt(f"no migration from journal schema version {version}")
                for statement in _split_sql(_MIGRATIONS[version]):
                    conn.execute(statement)
                version += 1
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
                )
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            missing = _EXPECTED_TABLES - tables
            if missing:
                raise JournalCorrupt(
                    f"{self.path} lacks journal tables: {', '.join(sorted(missing))}"
                )
            self._bind_keys(conn)

    def _bind_keys(self, conn: sqlite3.Connection) -> None:
        """Load the data keys and prove they are this journal's: a value sealed under the
        key in use (`KEY_CHECK_META`) must open. A journal that has one refuses a missing key
        file (never makes a new key over sealed rows); one that has none yet (new, or from
        before schema 4) gets the key file made and its check written."""
        check = conn.execute("SELECT value FROM meta WHERE key = ?",
                             (KEY_CHECK_META,)).fetchone()
        source = self.key_source
        if isinstance(source, DataKeys):
            keys = source
        elif check is None:
            keys = getattr(source, "load_or_create", source.load)()
        else:
            keys = source.load()
        where = aad("meta", "value", KEY_CHECK_META)
        if check is None:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)",
                         (KEY_CHECK_META, seal_text(keys, KEY_CHECK, where)))
        else:
            try:
                open_text(keys, check[0], where)
            except SealedValueError:
                raise DataKeyError(
                    f"the data key file {keys.path} is not this journal's: {self.path} was "
                    f"sealed with another key — {REMEDY_KEY}") from None
        self.keys = keys

    @contextmanager
    def zeroing_freed_pages(self) -> Iterator[None]:
        """secure_delete ON while clear values are replaced: no clear copy stays in a freed
        page."""
        with self.lock:
            self.conn.execute("PRAGMA secure_delete = ON")
            try:
                yield
            finally:
                self.conn.execute("PRAGMA secure_delete = FAST")

    def _check_open(self) -> None:
        if self.closed:
            raise JournalError(f"journal {self.path} is closed")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE): commit on success, roll back on any error.
        A lock held too long by another program, a full disk or an I/O error is StorageFault."""
        with self.lock, self._storage_errors():
            self._check_open()
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self._rollback()
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self._rollback()  # SQLite may have rolled back itself (a full disk does)
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read (one deferred transaction over all statements inside)."""
        with self.lock, self._storage_errors():
            self._check_open()
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:  # the connection is unusable; the next BEGIN says so
                pass

    @contextmanager
    def _storage_errors(self) -> Iterator[None]:
        """SQLite errors that mean "the store cannot be used now" as StorageFault; the rest
        (constraints, programming errors) pass unchanged."""
        try:
            yield
        except sqlite3.Error as exc:
            kind = sqlite_kind(exc)
            if kind is None:
                raise
            raise StorageFault(kind, self.path, sqlite_cause(exc)) from exc

    def check_space(self, reserve_bytes: int) -> None:
        """StorageFault (FULL) unless `reserve_bytes` are free on the journal's disk."""
        try:
            free = free_bytes(self.path.parent)
        except OSError as exc:
            raise StorageFault.from_os_error(exc, self.path) from exc
        if free < reserve_bytes:
            raise StorageFault(StorageKind.FULL, self.path, f"the disk is nearly full "
                               f"({free // 1_000_000} MB free, a job needs "
                               f"{reserve_bytes // 1_000_000} MB)")

    def check_writable(self, reserve_bytes: int = 0, timeout: float = 1.0) -> None:
        """Prove that a commit succeeds now, or raise StorageFault: at least `reserve_bytes`
        are free on the journal's disk (a card job needs room for its rows and preview), and
        a real write transaction commits within `timeout` seconds (no other program holds
        the lock, the disk takes the write). Leaves nothing behind (the row it writes is
        deleted in the same transaction)."""
        self.check_space(reserve_bytes)
        with self.lock:
            self._check_open()
            self.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            try:
                with self.write() as conn:
                    conn.execute("INSERT OR REPLACE INTO meta (key, value) "
                                 "VALUES ('write_probe', ?)", (str(self.clock()),))
                    conn.execute("DELETE FROM meta WHERE key = 'write_probe'")
            finally:
                self.conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.conn.close()


def _split_sql(script: str) -> list[str]:
    """The statements of a script, a trigger's body (with its own semicolons) kept whole."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip().removesuffix(";"))
            pending = ""
    if pending.strip(" \n;"):
        statements.append(pending.strip().removesuffix(";"))
    return statements


def _uri_path(path: Path) -> str:
    return quote(str(path.resolve()))


def _check_file(path: Path) -> None:
    """Refuse a journal file that cannot be one: SQLite would take an empty file for a new
    database and write a fresh schema over it, and the history would be gone unnoticed."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise JournalCorrupt(f"journal {path} is a folder, not a file — "
                                 f"{REMEDY_JOURNAL_FILE}")
        with open(path, "rb") as fh:
            header = fh.read(16)
    except OSError as exc:
        raise JournalCorrupt(f"journal {path} cannot be read ({exc.strerror or exc}) — check "
                             "the file's owner and permissions; if it is damaged, "
                             f"{REMEDY_JOURNAL_FILE}") from exc
    if size == 0:
        raise JournalCorrupt(f"journal {path} is empty (0 bytes): its history is missing, and "
                             f"the station does not start over it — {REMEDY_JOURNAL_FILE}")
    if header != b"SQLite format 3\x00":
        raise JournalCorrupt(f"journal {path} is not a usable journal: it is not an SQLite "
                             f"database (damaged, or another file) — {REMEDY_JOURNAL_FILE}")


def _create_atomically(path: Path, connect: Callable[[Path], sqlite3.Connection]) -> None:
    """Make a new journal under a temporary name and link it into place only once its schema
    is committed, so a crash while creating never leaves an empty file at `path` (which the
    next start would refuse) and two processes creating at once end with one journal."""
    partial = path.with_name(f"{path.name}.new-{os.getpid()}-{threading.get_ident()}")
    files = (partial, *(partial.with_name(partial.name + s) for s in ("-wal", "-shm")))
    for leftover in files:
        leftover.unlink(missing_ok=True)
    try:
        # 0600 from the start (SQLite gives its -wal and -shm files the database's mode): the
        # journal holds personal data, and a new one needs no tightening afterwards
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        connect(partial).close()  # the last close checkpoints the WAL into the file
        with open(partial, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(partial, path)  # never replaces a journal another process made meanwhile
        except FileExistsError:
            pass
        _fsync_folder(path.parent)
    except OSError as exc:
        raise StorageFault.from_os_error(exc, path) from exc
    finally:
        for leftover in files:
            leftover.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Opened applications kept (`Journal._row`): the jobs a station has in progress, and more.
_APPLICATIONS_KEPT = 32

_ISSUANCE_COLUMNS = (
    "id, client_request_id, id_number, state, application, data, reason, failed_from, "
    "created_at, updated_at, id_masked, purged_at"
)


def _issuance(row: tuple[Any, ...], keys: DataKeys | None,
              application: dict[str, Any] | None = None) -> Issuance:
    try:
        state = State(row[3])
        failed_from = State(row[7]) if row[7] is not None else None
    except ValueError as exc:
        raise JournalCorrupt(f"issuance {row[0]} has an unknown state: {exc}") from None
    try:
        if application is None:
            application = decode_object(keys, row[4], "issuances", "application", row[0],
                                        loads)
        data = decode_object(keys, row[5], "issuances", "data", row[0], loads)
        purged = row[11] is not None
        id_number = row[10] if purged else open_text(
            keys, row[2], aad("issuances", "id_number", row[0]))
    except DataKeyError as exc:
        raise JournalKeyRefused(str(exc)) from None
    if not isinstance(application, dict) or not isinstance(data, dict):
        raise JournalCorrupt(f"issuance {row[0]} application/data is not a JSON object")
    return Issuance(
        id=row[0],
        client_request_id=row[1],
        id_number=id_number,
        state=state,
        application=application,
        data=data,
        reason=row[6],
        failed_from=failed_from,
        created_at=row[8],
        updated_at=row[9],
        purged_at=row[11],
    )


class Journal:
    """The issuance journal on an SQLite file. Thread-safe; several processes may share the file.

    `clock` (epoch seconds) stamps every row and event; tests inject a fake one. `timeout` is
    how long a write waits for another process's write lock. `durable=False` (synchronous=NORMAL)
    keeps crash safety against kill -9 but not against power loss; it is for tests and
    benchmarks, a station keeps the default. `data_keys` seal the personal fields (default:
    the key file `data.key` beside the journal, made with a new journal); what comes out is
    always opened.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
        durable: bool = True,
        data_keys: DataKeys | DataKeySource | None = None,
    ) -> None:
        self._db = Database(path, clock=clock, timeout=timeout, durable=durable,
                            keys=data_keys)
        self._applications: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()

    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def database(self) -> Database:
        """The shared connection (for `Outbox`)."""
        return self._db

    def check_space(self, reserve_bytes: int) -> None:
        """StorageFault (FULL) unless `reserve_bytes` are free on the journal's disk."""
        self._db.check_space(reserve_bytes)

    def check_writable(self, reserve_bytes: int = 0, timeout: float = 1.0) -> None:
        """StorageFault unless a commit succeeds now with `reserve_bytes` to spare (see
        `Database.check_writable`)."""
        self._db.check_writable(reserve_bytes, timeout)

    def __enter__(self) -> Journal:
        return self

    @property
    def keys(self) -> DataKeys:
        assert self._db.keys is not None  # bound when the journal opened
        return self._db.keys

    def _row(self, row: tuple[Any, ...]) -> Issuance:
        """The issuance of a row. Its application (photo included: the largest value, read at
        every step) is opened once and kept for the few jobs in progress, as long as the stored
        text is the same; every step of a card would otherwise decrypt and decode it again."""
        with self._db.lock:  # threads share the journal (and so this cache)
            cached = self._applications.get(row[0])
            if cached is not None and cached[0] == row[4]:
                self._applications.move_to_end(row[0])
                return _issuance(row, self._db.keys, dict(cached[1]))
        issuance = _issuance(row, self._db.keys)
        with self._db.lock:
            self._applications[row[0]] = (row[4], dict(issuance.application))
            while len(self._applications) > _APPLICATIONS_KEPT:
                self._applications.popitem(last=False)
        return issuance

    def _lookups(self, id_number: str) -> tuple[str, list[str]]:
        """The SQL condition finding an applicant's rows and its parameters: the lookup under
        every key held (rows not yet resealed after a rotation keep the old key's)."""
        lookups = self.keys.lookups(id_number)
        return f"id_lookup IN ({', '.join('?' * len(lookups))})", lookups

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- creation and lookup -------------------------------------------------------------------

    def create(
        self, application: dict[str, Any], id_number: str, client_request_id: str | None = None
    ) -> Issuance:
        """A new issuance in FETCHED, or the one the request id names — WITHOUT the
        one-live-issuance-per-applicant rule: for tests of the state machine and for tools.
        The station opens jobs with `open_issuance`."""
        return self.open_issuance(application, id_number, client_request_id,
                                  one_per_applicant=False)[0]

    def open_issuance(
        self, application: dict[str, Any], id_number: str, client_request_id: str | None = None,
        *, one_per_applicant: bool = True,
    ) -> tuple[Issuance, bool]:
        """A new issuance in FETCHED with its first event, and True; in one transaction.

        With a `client_request_id` already used: that issuance and False (nothing written), or
        RequestIdConflict if it was used for another ID number. Otherwise, if the applicant has
        a live issuance (not DONE or REJECTED): LiveIssuanceExists naming it — one card per
        person, however many callers ask at once (the check and the insert are one
        BEGIN IMMEDIATE transaction, so this holds across processes too). Without a request
        id one is derived (`auto-<issuance id>`), so every issuance has one.
        """
        if not isinstance(id_number, str) or not id_number:
            raise ValueError("id_number must be a non-empty string")
        if client_request_id is not None and (
            not isinstance(client_request_id, str) or not client_request_id
        ):
            raise ValueError("client_request_id must be a non-empty string or None")
        _json_object(application, "application")
        with self._db.write() as conn:
            if client_request_id is not None:
                row = conn.execute(
                    f"SELECT {_ISSUANCE_COLUMNS} FROM issuances WHERE client_request_id = ?",
                    (client_request_id,),
                ).fetchone()
                if row is not None:
                    existing = self._row(row)
                    same = id_number if existing.purged_at is None else mask_id_number(id_number)
                    if existing.id_number != same:
                        raise RequestIdConflict(
                            f"client request id {client_request_id!r} is already used by "
                            f"issuance {existing.id} for another ID number"
                        )
                    return existing, False
            live = self._live(conn, id_number) if one_per_applicant else None
            if live is not None:
                raise LiveIssuanceExists(live)
            now = self._db.clock()
            issuance_id = uuid.uuid4().hex
            keys = self.keys
            conn.execute(
                "INSERT INTO issuances (id, client_request_id, id_number, state, application, "
                "data, reason, failed_from, created_at, updated_at, id_lookup, id_masked) "
                "VALUES (?, ?, ?, ?, ?, '{}', '', NULL, ?, ?, ?, ?)",
                (
                    issuance_id,
                    client_request_id or f"auto-{issuance_id}",
                    seal_text(keys, id_number, aad("issuances", "id_number", issuance_id)),
                    State.FETCHED.value,
                    seal_object(keys, application, APPLICATION_CLEAR,
                                aad("issuances", "application", issuance_id)),
                    now,
                    now,
                    keys.lookup(id_number),
                    mask_id_number(id_number),
                ),
            )
            self._append_event(conn, issuance_id, now, None, State.FETCHED, "", {})
            return self._get(conn, issuance_id), True

    def live_for(self, id_number: str) -> Issuance | None:
        """The applicant's live issuance (not DONE or REJECTED), if any."""
        with self._db.read() as conn:
            return self._live(conn, id_number)

    def history_for(self, id_number: str, limit: int = 20) -> list[Issuance]:
        """The applicant's issuances, newest first."""
        where, params = self._lookups(id_number)
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_ISSUANCE_COLUMNS} FROM issuances WHERE {where} "
                "ORDER BY created_at DESC, id DESC LIMIT ?", (*params, int(limit)),
            ).fetchall()
        return [self._row(r) for r in rows]

    def _live(self, conn: sqlite3.Connection, id_number: str) -> Issuance | None:
        where, params = self._lookups(id_number)
        row = conn.execute(
            f"SELECT {_ISSUANCE_COLUMNS} FROM issuances WHERE {where} "
            "AND state NOT IN ('DONE', 'REJECTED') ORDER BY created_at LIMIT 1", params,
        ).fetchone()
        return self._row(row) if row is not None else None

    def get(self, issuance_id: str) -> Issuance:
        """The issuance; IssuanceNotFound (a KeyError) if there is none."""
        with self._db.read() as conn:
            return self._get(conn, issuance_id)

    def find_by_request_id(self, client_request_id: str) -> Issuance | None:
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_ISSUANCE_COLUMNS} FROM issuances WHERE client_request_id = ?",
                (client_request_id,),
            ).fetchone()
        return self._row(row) if row is not None else None

    def issuances(
        self, state: State | None = None, limit: int = 50, after: str | None = None, *,
        id_number: str | None = None, newest_first: bool = False,
    ) -> list[Issuance]:
        """Issuances in (created_at, id) order (or the reverse), optionally in one state or of
        one applicant. `after` is the id of the last issuance of the previous page (a cursor);
        IssuanceNotFound if it does not exist."""
        if limit <= 0:
            return []
        where: list[str] = []
        params: list[Any] = []
        with self._db.read() as conn:
            if state is not None:
                where.append("state = ?")
                params.append(State(state).value)
            if id_number is not None:
                condition, lookups = self._lookups(id_number)
                where.append(condition)
                params.extend(lookups)
            if after is not None:
                cursor = conn.execute(
                    "SELECT created_at, id FROM issuances WHERE id = ?", (after,)
                ).fetchone()
                if cursor is None:
                    raise IssuanceNotFound(f"cursor issuance {after} not found")
                where.append(f"(created_at, id) {'<' if newest_first else '>'} (?, ?)")
                params.extend(cursor)
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            order = "created_at DESC, id DESC" if newest_first else "created_at, id"
            rows = conn.execute(
                f"SELECT {_ISSUANCE_COLUMNS} FROM issuances {clause} ORDER BY {order} LIMIT ?",
                (*params, int(limit)),
            ).fetchall()
        return [self._row(r) for r in rows]

    def state_counts(self) -> dict[State, int]:
        """How many issuances are in each state (states with none are left out)."""
        with self._db.read() as conn:
            # kept by triggers (schema 3): a few rows, however many issuances there are
            rows = conn.execute(
                "SELECT key, n FROM counts WHERE tbl = 'issuances' AND n > 0").fetchall()
        return {State(state): int(n) for state, n in rows}

    def unfinished(self) -> list[Issuance]:
        """Every issuance not DONE or REJECTED (FAILED included), oldest first: the input of
        restart recovery."""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_ISSUANCE_COLUMNS} FROM issuances WHERE state NOT IN (?, ?) "
                "ORDER BY created_at, id",
                (State.DONE.value, State.REJECTED.value),
            ).fetchall()
        return [self._row(r) for r in rows]

    def events(self, issuance_id: str) -> list[Event]:
        """The issuance's events in order; IssuanceNotFound if there is no such issuance."""
        with self._db.read() as conn:
            self._get(conn, issuance_id)
            rows = conn.execute(
                "SELECT issuance_id, seq, at, from_state, to_state, reason, data FROM events "
                "WHERE issuance_id = ? ORDER BY seq",
                (issuance_id,),
            ).fetchall()
        events = []
        for r in rows:
            try:
                data = decode_object(self._db.keys, r[6], "events", "data",
                                     event_row(r[0], r[1]), loads)
            except DataKeyError as exc:
                raise JournalKeyRefused(str(exc)) from None
            try:
                from_state = State(r[3]) if r[3] is not None else None
                to_state = State(r[4])
            except ValueError as exc:
                raise JournalCorrupt(f"event {r[0]}/{r[1]} has an unknown state: {exc}") from None
            events.append(Event(r[0], r[1], r[2], from_state, to_state, r[5], data))
        return events

    # -- changes -----------------------------------------------------------------------------

    def transition(
        self,
        issuance_id: str,
        to: State,
        reason: str = "",
        data: dict[str, Any] | None = None,
        return_record: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        *,
        expect: State | None = None,
    ) -> Issuance:
        """Move the issuance to `to` in one SQLite transaction: check the transition, merge `data`
        (shallow) into issuance.data, append an event and, for VERIFIED -> RETURN_QUEUED, insert
        the outbox row for `return_record` (idempotency key default f"{issuance_id}:return").

        `expect` (optional): the state the caller believes the issuance is in; if another
        writer moved it, IllegalTransition. REJECTED and FAILED need a non-empty reason.
        """
        step = Step(State(to), reason, data, return_record, idempotency_key)
        return self.transitions(issuance_id, [step], expect=expect)[-1]

    def transitions(self, issuance_id: str, steps: list[Step], *,
                    expect: State | None = None) -> list[Issuance]:
        """Several transitions in one SQLite transaction (one commit), each checked, recorded
        and merged as `transition` does, in order: the issuance after each. All of them are
        committed, or none."""
        prepared = [self._prepare(issuance_id, step) for step in steps]
        after: list[Issuance] = []
        with self._db.write() as conn:
            current = self._get(conn, issuance_id)
            if expect is not None and current.state != State(expect):
                raise IllegalTransition(
                    issuance_id,
                    current.state,
                    steps[0].to if steps else current.state,
                    f"expected it in {State(expect)}; another writer moved it",
                )
            for step, record_json in prepared:
                current = self._apply(conn, current, step, record_json)
                after.append(current)
        return after

    def _prepare(self, issuance_id: str, step: Step) -> tuple[Step, str | None]:
        """A step's checks that need no database, and its return record sealed."""
        step = replace(step, to=State(step.to), reason=step.reason or "")
        _json_object({} if step.data is None else step.data, "data")
        if step.to in (State.REJECTED, State.FAILED) and not step.reason.strip():
            raise ValueError(f"a transition to {step.to} needs a reason")
        if step.return_record is None:
            return step, None
        _json_object(step.return_record, "return_record")
        record_json = seal_object(self.keys, step.return_record, RECORD_CLEAR,
                                  aad("outbox", "record", issuance_id))
        try:
            ReturnRecord.from_dict(step.return_record)
        except ValueError as exc:
            raise ValueError(f"return_record is not a valid return record: {exc}") from None
        return step, record_json

    def _apply(self, conn: sqlite3.Connection, current: Issuance, step: Step,
               record_json: str | None) -> Issuance:
        """One checked transition inside the caller's write transaction: the issuance after."""
        issuance_id, to, reason = current.id, step.to, step.reason
        delta = {} if step.data is None else step.data
        self._check(conn, current, to, step.return_record)
        now = self._db.clock()
        merged = {**current.data, **delta}
        # a failure's reason goes with the failure: leaving FAILED (or finishing) clears it
        if to in (State.REJECTED, State.FAILED):
            new_reason = reason
        elif current.state is State.FAILED or to is State.DONE:
            new_reason = ""
        else:
            new_reason = current.reason
        failed_from = current.state if to is State.FAILED else None
        merged_json = dumps(merged, "data")
        cur = conn.execute(
            "UPDATE issuances SET state = ?, data = ?, reason = ?, failed_from = ?, "
            "updated_at = ? WHERE id = ? AND state = ?",
            (
                to.value,
                self._seal_data(issuance_id, merged),
                new_reason,
                failed_from.value if failed_from else None,
                now,
                issuance_id,
                current.state.value,
            ),
        )
        if cur.rowcount != 1:  # cannot happen under BEGIN IMMEDIATE; kept as a guard
            raise IllegalTransition(issuance_id, current.state, to, "state changed underneath")
        self._append_event(conn, issuance_id, now, current.state, to, reason, delta)
        if record_json is not None:
            key = step.idempotency_key or f"{issuance_id}:return"
            self._insert_return(conn, issuance_id, key, record_json, now, current.state, to)
        # what the row now holds, without reading (and re-decoding the photo) again
        return replace(current, state=to, data=loads(merged_json, "data"), reason=new_reason,
                       failed_from=failed_from, updated_at=now)

    def update_data(self, issuance_id: str, data: dict[str, Any], reason: str = "", *,
                    expect: State | None = None) -> Issuance:
        """Merge facts (shallow) without a state change; recorded as an event with
        to_state == from_state. Allowed on finished issuances too: what happens to a card
        after it is made (a reprint of its face) belongs to its history. With `expect`, only
        while the issuance is in that state (IllegalTransition otherwise)."""
        _json_object(data, "data")
        with self._db.write() as conn:
            current = self._get(conn, issuance_id)
            if expect is not None and current.state != State(expect):
                raise IllegalTransition(issuance_id, current.state, current.state,
                                        f"expected it in {State(expect)}; it moved")
            now = self._db.clock()
            merged = {**current.data, **data}
            merged_json = dumps(merged, "data")
            conn.execute(
                "UPDATE issuances SET data = ?, updated_at = ? WHERE id = ?",
                (self._seal_data(issuance_id, merged), now, issuance_id),
            )
            self._append_event(
                conn, issuance_id, now, current.state, current.state, reason, data
            )
            return replace(current, data=loads(merged_json, "data"), updated_at=now)

    def meta(self, key: str) -> str | None:
        """A value of the `meta` table (e.g. the audit log's head), None when absent."""
        with self._db.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or, with None, delete) a `meta` value; the schema's own keys are refused."""
        if key in _RESERVED_META:
            raise ValueError(f"meta key {key!r} belongs to the journal schema")
        with self._db.write() as conn:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             (key, value))

    def close(self) -> None:
        """Close the connection (an Outbox sharing it is closed too). Idempotent."""
        self._db.close()

    # -- internals -------------------------------------------------------------------------

    def _seal_data(self, issuance_id: str, data: dict[str, Any]) -> str:
        return seal_object(self.keys, data, DATA_CLEAR, aad("issuances", "data", issuance_id))

    def _get(self, conn: sqlite3.Connection, issuance_id: str) -> Issuance:
        row = conn.execute(
            f"SELECT {_ISSUANCE_COLUMNS} FROM issuances WHERE id = ?", (issuance_id,)
        ).fetchone()
        if row is None:
            raise IssuanceNotFound(f"issuance {issuance_id} not found")
        return self._row(row)

    @staticmethod
    def _check(
        conn: sqlite3.Connection,
        current: Issuance,
        to: State,
        return_record: dict[str, Any] | None,
    ) -> None:
        frm = current.state
        if to not in ALLOWED[frm]:
            detail = "the issuance is finished" if frm in TERMINAL else "not an allowed step"
            raise IllegalTransition(current.id, frm, to, detail)
        queued = (
            conn.execute("SELECT 1 FROM outbox WHERE issuance_id = ?", (current.id,)).fetchone()
            is not None
        )
        if frm is State.FAILED and to in RESUMABLE:
            limit = current.failed_from
            if limit is None or _RANK[to] > _RANK.get(limit, -1):
                raise IllegalTransition(
                    current.id, frm, to, f"cannot resume past the state it failed from ({limit})"
                )
            if queued and _RANK[to] < _RANK[State.RETURN_QUEUED]:
                raise IllegalTransition(
                    current.id,
                    frm,
                    to,
                    "a return record is queued for this card; resume at RETURN_QUEUED or later",
                )
            if not queued and _RANK[to] >= _RANK[State.RETURN_QUEUED]:
                raise IllegalTransition(current.id, frm, to, "no return record is queued")
        if return_record is not None:
            if not (frm is State.VERIFIED and to is State.RETURN_QUEUED):
                raise IllegalTransition(
                    current.id,
                    frm,
                    to,
                    "a return record is only accepted with VERIFIED -> RETURN_QUEUED",
                )
            if queued:
                raise ReturnAlreadyQueued(current.id, frm, to, "a return record is already queued")
            if str(return_record.get("id_number")) != current.id_number:
                raise ValueError("the return record is for another ID number")
        elif frm is State.VERIFIED and to is State.RETURN_QUEUED:
            raise IllegalTransition(current.id, frm, to, "RETURN_QUEUED needs a return_record")

    def _insert_return(
        self,
        conn: sqlite3.Connection,
        issuance_id: str,
        key: str,
        record_json: str,
        now: float,
        frm: State,
        to: State,
    ) -> None:
        try:
            conn.execute(
                "INSERT INTO outbox (issuance_id, idempotency_key, record, status, attempts, "
                "total_attempts, next_attempt_at, last_error, created_at, updated_at) "
                "VALUES (?, ?, ?, 'pending', 0, 0, ?, '', ?, ?)",
                (issuance_id, key, record_json, now, now, now),
            )
        except sqlite3.IntegrityError as exc:
            raise ReturnAlreadyQueued(
                issuance_id, frm, to, f"idempotency key {key!r} is already used ({exc})"
            ) from None

    def _append_event(
        self,
        conn: sqlite3.Connection,
        issuance_id: str,
        at: float,
        frm: State | None,
        to: State,
        reason: str,
        data: dict[str, Any],
    ) -> None:
        # the sequence number first: it is part of what the sealed data is bound to
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE issuance_id = ?",
                           (issuance_id,)).fetchone()[0]
        conn.execute(
            "INSERT INTO events (issuance_id, seq, at, from_state, to_state, reason, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                issuance_id,
                seq,
                at,
                frm.value if frm else None,
                to.value,
                reason,
                seal_object(self.keys, data, DATA_CLEAR,
                            aad("events", "data", event_row(issuance_id, seq))),
            ),
        )
