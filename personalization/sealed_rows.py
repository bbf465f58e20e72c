"""Which parts of the journal's rows are sealed, and the pass that (re)seals rows in place.

The personal fields are sealed per row under the station data key (`datakey`): the ID number,
the application (name, photo, bank, birth data), the facts the steps gather (chip facts with
the bank account, certificates, findings, causes in words), the events' data and the queued
return record. What stays in clear is listed here by name, so a field nobody thought about is
sealed, not shown: the card's own facts (number, batch, dates) and the pipeline's bookkeeping
that the day's report and reconciliation read straight from the file without the key (reason
codes, spoiled, reprints, the printer counter, timings).

`reseal_pass` walks a table in rowid order from a cursor kept in the journal's meta table,
a batch per transaction: after a kill it continues where the last committed batch ended. It
serves the migration to schema 4 (clear rows -> sealed) and a key rotation (sealed under an
old key -> sealed under the current one) alike: every row it passes ends sealed under the
current key.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.datakey import (
    DataKeys,
    aad,
    open_object,
    open_text,
    seal_object,
    seal_text,
    sealed_kids,
)

#: The card's facts: not the holder's (and what a purged job keeps of its application).
APPLICATION_CLEAR = frozenset({"card_number", "batch", "issue_date", "expiry_date"})
#: The pipeline's bookkeeping the reports read without the key (never a holder's value).
DATA_CLEAR = frozenset({"reason_code", "actions", "resume_from", "spoiled", "reprints",
                        "print_count_before", "timings_ms", "awaiting_return", "remake_of",
                        "lane"})  # the printer (lane) a job used, where a station has several
RECORD_CLEAR = frozenset({"card_number", "batch", "issue_date", "expiry_date"})

#: table -> (rowid column, the columns `reseal_pass` reads, in order)
_TABLES: dict[str, tuple[str, str]] = {
    "issuances": ("rowid", "id, id_number, application, data, purged_at, id_lookup"),
    "events": ("rowid", "issuance_id, seq, data"),
    "outbox": ("id", "issuance_id, record"),
}
PASS_ORDER = ("issuances", "events", "outbox")
RESEAL_META = "reseal"
#: The meta value that proves a key file is this journal's: KEY_CHECK sealed under the key
#: in use (a file from another station, or a new key made over a sealed journal, fails it).
KEY_CHECK_META = "data_key_check"
KEY_CHECK = "cardstation journal data key"


def event_row(issuance_id: str, seq: int) -> str:
    return f"{issuance_id}/{seq}"


def decode_object(keys: DataKeys | None, text: str, table: str, column: str, row: str,
                  loads: Callable[[str, str], Any]) -> Any:
    """A stored JSON column, its sealed member opened (anything not a JSON object is returned
    as parsed, for the caller to refuse)."""
    value = loads(text, f"{table} {row} {column}")
    if not isinstance(value, dict):
        return value
    return open_object(keys, value, aad(table, column, row))


def _needs(stored: str, keys: DataKeys, clear: frozenset[str]) -> bool:
    """True when a stored object holds a personal member in clear, or one sealed under a key
    that is not the current one."""
    kid = sealed_kids(stored)
    if kid is not None and kid != keys.current:
        return True
    obj = json.loads(stored)
    return isinstance(obj, dict) and any(k not in clear and k != "sealed" for k in obj)


def _reseal_object(keys: DataKeys, stored: str, clear: frozenset[str], table: str,
                   column: str, row: str) -> str | None:
    """The column sealed under the current key, or None when it already is."""
    if not _needs(stored, keys, clear):
        return None
    where = aad(table, column, row)
    return seal_object(keys, open_object(keys, json.loads(stored), where), clear, where)


def _issuance(conn: sqlite3.Connection, keys: DataKeys, row: tuple[Any, ...]) -> None:
    issuance_id, stored_id, application, data, purged_at, lookup = row
    updates: dict[str, Any] = {}
    # a purged job has no number left; one sealed under the current key with its lookup is
    # done (a pass started again after a kill skips it without opening anything)
    if purged_at is None and not (lookup and sealed_kids(stored_id) == keys.current):
        id_aad = aad("issuances", "id_number", issuance_id)
        id_number = open_text(keys, stored_id, id_aad)
        if sealed_kids(stored_id) != keys.current:
            updates["id_number"] = seal_text(keys, id_number, id_aad)
        updates["id_lookup"] = keys.lookup(id_number)
        updates["id_masked"] = mask_id_number(id_number)
    for column, stored, clear in (("application", application, APPLICATION_CLEAR),
                                  ("data", data, DATA_CLEAR)):
        sealed = _reseal_object(keys, stored, clear, "issuances", column, issuance_id)
        if sealed is not None:
            updates[column] = sealed
    if updates:
        sets = ", ".join(f"{c} = ?" for c in updates)
        conn.execute(f"UPDATE issuances SET {sets} WHERE id = ?", (*updates.values(),
                                                                     issuance_id))


def _event(conn: sqlite3.Connection, keys: DataKeys, row: tuple[Any, ...]) -> None:
    issuance_id, seq, data = row
    sealed = _reseal_object(keys, data, DATA_CLEAR, "events", "data",
                            event_row(issuance_id, seq))
    if sealed is not None:
        conn.execute("UPDATE events SET data = ? WHERE issuance_id = ? AND seq = ?",
                     (sealed, issuance_id, seq))


def _record(conn: sqlite3.Connection, keys: DataKeys, row: tuple[Any, ...]) -> None:
    issuance_id, record = row
    sealed = _reseal_object(keys, record, RECORD_CLEAR, "outbox", "record", issuance_id)
    if sealed is not None:
        conn.execute("UPDATE outbox SET record = ? WHERE issuance_id = ?", (sealed, issuance_id))


_ROW = {"issuances": _issuance, "events": _event, "outbox": _record}


def start_pass(conn: sqlite3.Connection) -> None:
    """Mark every row as to be (re)sealed from the start (in the caller's transaction)."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                 "SET value = excluded.value",
                 (RESEAL_META, json.dumps({"table": PASS_ORDER[0], "after": 0})))


def pending_pass(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (RESEAL_META,)).fetchone()
    return json.loads(row[0]) if row else None


def reseal_pass(write: Callable[[], AbstractContextManager[sqlite3.Connection]],
                keys: DataKeys, *, batch: int = 200,
                progress: Callable[[str, int, int], None] | None = None) -> int:
    """Continue the pass marked in meta until every row is sealed under `keys.current`;
    returns the rows looked at. Each batch is one transaction that also moves the cursor.
    `progress(table, done, total)` after each batch."""
    seen = 0
    totals: dict[str, int] = {}
    done: dict[str, int] = {}
    while True:
        with write() as conn:
            state = pending_pass(conn)
            if state is None:
                return seen
            table = state["table"]
            key, columns = _TABLES[table]
            rows = conn.execute(f"SELECT {key}, {columns} FROM {table} WHERE {key} > ? "
                                f"ORDER BY {key} LIMIT ?", (state["after"], batch)).fetchall()
            for row in rows:
                _ROW[table](conn, keys, row[1:])
            seen += len(rows)
            if len(rows) == batch:
                state["after"] = rows[-1][0]
            else:  # this table is done: the next one, or the pass is over
                following = PASS_ORDER.index(table) + 1
                state = ({"table": PASS_ORDER[following], "after": 0}
                         if following < len(PASS_ORDER) else None)
            if state is None:  # done: the key check moves to the current key with it
                conn.execute("DELETE FROM meta WHERE key = ?", (RESEAL_META,))
                conn.execute("UPDATE meta SET value = ? WHERE key = ?", (seal_text(
                    keys, KEY_CHECK, aad("meta", "value", KEY_CHECK_META)), KEY_CHECK_META))
            else:
                conn.execute("UPDATE meta SET value = ? WHERE key = ?",
                             (json.dumps(state), RESEAL_META))
            if table not in totals:  # counted once: a count per batch would cost a scan
                totals[table] = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            done[table] = done.get(table, 0) + len(rows)
        if progress is not None:
            progress(table, done[table], totals[table])


def kids_in_use(conn: sqlite3.Connection) -> set[str]:
    """Every key id some row is sealed under (a full scan, in SQL: for `datakey status` and
    the check before an old key is dropped)."""
    kids: set[str] = set()
    for table, column in (("issuances", "id_number"), ("issuances", "application"),
                          ("issuances", "data"), ("events", "data"), ("outbox", "record")):
        # a clear ID number from before schema 4 is not JSON (or a JSON number): skipped
        token = f"json_extract({column}, '$.sealed')"
        kids.update(row[0] for row in conn.execute(
            f"SELECT DISTINCT substr({token}, 1, instr({token}, ':') - 1) FROM {table} "
            f"WHERE json_valid({column}) AND json_type({column}) = 'object' "
            f"AND {token} IS NOT NULL"))
    return kids
