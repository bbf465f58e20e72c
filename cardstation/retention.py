"""Retention: previews, and the personal data of finished jobs.

Preview retention: a card's preview (<data_dir>/previews/<issuance id>.jpg, written by the
pipeline's preview step; <issuance id>.png from stations before the preview became a JPEG,
pruned the same way) is the holder's photo and data, needed only while the card is being
made. Once the card is DONE or REJECTED and that is older than `[station]
preview_retention_days`, the file is deleted. A preview whose job is not in the journal (a
journal restored from an older backup) is deleted once the file itself is that old. A job that
is not finished keeps its preview, however old.

This runs with `cardstation backup --prune` (and so from the same daily timer as the backup),
not in the server's monitor: it is a sweep of the file system that has nothing to do with the
devices the monitor watches every second, it needs no lock the server holds (a finished card's
preview is never read again; the journal is only read), and it is then done once a day at a
time the station chooses, with its result printed for whoever runs it.

Personal data (`[station] personal_data_days`, `purge_personal`): the journal keeps a finished
job's name, photo, ID number and bank account only that long. The purge runs in the server
(`PurgeTimer`, once a day: unlike the preview sweep it is the journal's own rows, and a station
that is never backed up must still forget) and by `cardstation retention purge`. A purged job
keeps what the day's report and the reconciliation need: the masked ID number, the card number,
batch and dates, the states and their times, the reason codes; its face can no longer be
reprinted (REPRINT_DATA_PURGED).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cardstation.personalization.journal import Journal, dumps, open_read_only
from cardstation.personalization.outbox import WITHDRAWN
from cardstation.personalization.sealed_rows import (
    APPLICATION_CLEAR,
    DATA_CLEAR,
    RECORD_CLEAR,
)

log = logging.getLogger(__name__)

FINISHED = ("DONE", "REJECTED")
DAY = 86400.0
#: the pipeline's previews, and the PNGs of earlier versions still on a station's disk
PREVIEW_SUFFIXES = (".jpg", ".png")


@dataclass
class PruneResult:
    deleted: int = 0
    orphans_deleted: int = 0
    kept: int = 0
    bytes_freed: int = 0


def prune_previews(data_dir: Path, retention_days: int,
                   clock: Callable[[], float] = time.time) -> PruneResult:
    """Delete the previews that are past retention (see the module docstring)."""
    if retention_days < 0:
        raise ValueError("preview_retention_days must be >= 0")
    folder = Path(data_dir) / "previews"
    result = PruneResult()
    files = sorted(p for suffix in PREVIEW_SUFFIXES for p in folder.glob(f"*{suffix}")) \
        if folder.is_dir() else []
    if not files:
        return result
    cutoff = clock() - retention_days * DAY
    conn = open_read_only(Path(data_dir) / "journal.sqlite")
    try:
        jobs = {row[0]: (row[1], row[2]) for row in conn.execute(
            "SELECT id, state, updated_at FROM issuances")}
    finally:
        conn.close()
    for path in files:
        job = jobs.get(path.stem)
        try:
            size = path.stat().st_size
            if job is None:
                expired = path.stat().st_mtime <= cutoff
            else:
                expired = job[0] in FINISHED and job[1] <= cutoff
            if not expired:
                result.kept += 1
                continue
            os.unlink(path)
        except FileNotFoundError:  # deleted meanwhile by another prune
            continue
        result.bytes_freed += size
        if job is None:
            result.orphans_deleted += 1
        else:
            result.deleted += 1
    return result


# -- personal data of finished jobs ----------------------------------------------------------

#: How often the server looks for jobs past `[station] personal_data_days`.
PURGE_INTERVAL = DAY


@dataclass
class PurgeResult:
    jobs: int = 0
    events: int = 0
    returns: int = 0


def _keep(stored: str, clear: frozenset[str]) -> str | None:
    """A stored JSON object cut down to its `clear` members (None when nothing goes): no key is
    needed, what is kept was never sealed."""
    obj = json.loads(stored)
    if not isinstance(obj, dict):
        return None
    kept = {k: v for k, v in obj.items() if k in clear}
    return None if kept == obj else dumps(kept, "purged column")


def purge_personal(journal: Journal, days: int, *, clock: Callable[[], float] = time.time,
                   batch: int = 100) -> PurgeResult:
    """Remove the personal fields of jobs DONE or REJECTED more than `days` days ago (0:
    nothing is purged): the ID number (sealed value and lookup; the masked number stays), the
    application but its card facts (number, batch, dates), the gathered facts but the clear
    bookkeeping (reason codes, spoiled, reprints, the printer counter), the same in the job's
    events, and the record of its return once delivered or withdrawn. What `report day` and
    the reconciliation read is kept. A batch of jobs per transaction."""
    if days < 0:
        raise ValueError("personal_data_days must be >= 0")
    result = PurgeResult()
    if days == 0:
        return result
    cutoff = clock() - days * DAY
    with journal.database.zeroing_freed_pages():
        _purge_batches(journal, cutoff, clock, batch, result)
    if result.jobs:  # the replaced pages leave the write-ahead log too (best effort)
        with journal.database.lock:
            journal.database.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return result


def _purge_batches(journal: Journal, cutoff: float, clock: Callable[[], float], batch: int,
                   result: PurgeResult) -> None:
    while True:
        with journal.database.write() as conn:
            jobs = conn.execute(
                "SELECT id, application, data FROM issuances WHERE purged_at IS NULL AND "
                "state IN ('DONE', 'REJECTED') AND updated_at <= ? ORDER BY updated_at "
                "LIMIT ?", (cutoff, batch)).fetchall()
            for issuance_id, application, data in jobs:
                _purge_job(conn, issuance_id, application, data, clock(), result)
        if len(jobs) < batch:
            break


def _purge_job(conn: sqlite3.Connection, issuance_id: str, application: str, data: str,
               now: float, result: PurgeResult) -> None:
    conn.execute(
        "UPDATE issuances SET id_number = '', id_lookup = NULL, application = ?, data = ?, "
        "purged_at = ? WHERE id = ?",
        (_keep(application, APPLICATION_CLEAR) or application,
         _keep(data, DATA_CLEAR) or data, now, issuance_id))
    result.jobs += 1
    for seq, stored in conn.execute("SELECT seq, data FROM events WHERE issuance_id = ?",
                                    (issuance_id,)).fetchall():
        kept = _keep(stored, DATA_CLEAR)
        if kept is not None:
            conn.execute("UPDATE events SET data = ? WHERE issuance_id = ? AND seq = ?",
                         (kept, issuance_id, seq))
            result.events += 1
    row = conn.execute("SELECT id, record FROM outbox WHERE issuance_id = ? AND (status = "
                       "'delivered' OR last_error_code = ?)", (issuance_id, WITHDRAWN)).fetchone()
    if row is not None:
        kept = _keep(row[1], RECORD_CLEAR)
        if kept is not None:
            conn.execute("UPDATE outbox SET record = ? WHERE id = ?", (kept, row[0]))
            result.returns += 1


class PurgeTimer:
    """The server's daily purge (`purge_personal`) in a thread of its own, on its own
    connection: the first pass soon after start, then every `interval` seconds. A pass that
    fails (the journal locked or full) is logged and tried at the next one."""

    def __init__(self, journal_path: Path, days: int, *, interval: float = PURGE_INTERVAL,
                 first_after: float = 60.0) -> None:
        self.journal_path = journal_path
        self.days = days
        self.interval = interval
        self.first_after = first_after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="personal-data-purge",
                                        daemon=True)

    def __enter__(self) -> PurgeTimer:
        if self.days > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        wait = self.first_after
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                with Journal(self.journal_path, timeout=2.0) as journal:
                    done = purge_personal(journal, self.days)
                if done.jobs:
                    log.info("purged the personal data of %d finished job(s) older than %d "
                             "days", done.jobs, self.days)
            except Exception as exc:  # the next pass tries again; never the server's end
                log.warning("personal data purge did not run: %s", exc)
