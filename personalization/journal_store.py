"""The journal's SQLite store: the schema and its migrations, one connection per file shared by
threads behind a lock, `BEGIN IMMEDIATE` writes, storage errors turned into `StorageFault`, the
file's creation (atomic, 0600) and the checks that refuse an empty, foreign or busy file. It
knows rows, not card jobs: the repository (`journal.Journal`) reads and writes them.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cardstation.personalization.datakey import (
    REMEDY_KEY,
    DataKeyError,
    DataKeys,
    DataKeySource,
    KeyFile,
    SealedValueError,
    aad,
    open_text,
    seal_text,
)
from cardstation.personalization.journal_states import (
    REMEDY_JOURNAL_FILE,
    JournalCorrupt,
    JournalError,
    JournalInUse,
    JournalKeyRefused,
    State,
    StorageFault,
)
from cardstation.personalization.sealed_rows import (
    KEY_CHECK,
    KEY_CHECK_META,
    reseal_pass,
)
from cardstation.personalization.storage import (
    StorageKind,
    free_bytes,
    sqlite_cause,
    sqlite_kind,
)

SCHEMA_VERSION = 4
SCHEMA_APPLICATION = "cardstation-journal"


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


