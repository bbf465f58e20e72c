"""The durable issuance journal: one SQLite file (WAL), one row per card job, an event per change.

This module is the repository (`Journal`); the states and records are in `journal_states`, the
SQLite store in `journal_store`.

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

import sqlite3
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.datakey import (
    DataKeyError,
    DataKeys,
    DataKeySource,
    aad,
    open_text,
    seal_object,
    seal_text,
)
from cardstation.personalization.journal_states import (
    _RANK,
    ALLOWED,
    FORWARD,
    RESUMABLE,
    TERMINAL,
    Event,
    IllegalTransition,
    Issuance,
    IssuanceNotFound,
    JournalCorrupt,
    JournalError,
    JournalInUse,
    JournalKeyRefused,
    LiveIssuanceExists,
    RequestIdConflict,
    ReturnAlreadyQueued,
    State,
    Step,
    StorageFault,
)
from cardstation.personalization.journal_store import (
    _RESERVED_META,
    SCHEMA_VERSION,
    Database,
    _json_object,
    dumps,
    loads,
    open_elsewhere,
    open_read_only,
    read_meta,
    refuse_if_open_elsewhere,
    sole_connection,
)
from cardstation.personalization.model import ReturnRecord
from cardstation.personalization.sealed_rows import (
    APPLICATION_CLEAR,
    DATA_CLEAR,
    RECORD_CLEAR,
    decode_object,
    event_row,
)

#: What the journal offers: the repository, and the states, records, errors and file
#: helpers it is built of (journal_states, journal_store), re-exported for its callers.
__all__ = [
    "ALLOWED", "FORWARD", "RESUMABLE", "SCHEMA_VERSION", "TERMINAL", "Database", "Event",
    "IllegalTransition", "Issuance", "IssuanceNotFound", "Journal", "JournalCorrupt",
    "JournalError", "JournalInUse", "JournalKeyRefused", "LiveIssuanceExists",
    "RequestIdConflict", "ReturnAlreadyQueued", "State", "Step", "StorageFault", "dumps",
    "loads", "open_elsewhere", "open_read_only", "read_meta", "refuse_if_open_elsewhere",
    "sole_connection",
]


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
