"""Backups of a station's durable state: the journal, the audit log, its key (and so the head).

A backup is one folder `<to>/cardstation-<station id>-<UTC time>` (0700, files 0600):

* `journal.sqlite` — taken with SQLite's online backup API inside one read transaction, so it
  is one consistent state of the journal while the server keeps running, and row counts taken
  in that transaction are those of the copy;
* `audit.jsonl` — copied after the journal, up to its last complete line. The audit log is
  appended before its head is recorded in the journal, so a log copied after the journal holds
  at least the lines up to the copied head (lines past it verify as "after the head");
* `audit.key` — the key the chain is checked with (without it the old log proves nothing);
* `data.key` — the station data key the journal's personal fields are sealed under: a journal
  without it cannot show a single holder's data, so it goes with the journal. A backup folder
  is therefore as sensitive as the station itself (0700, files 0600): keep it so;
* `manifest.json` — written last: the station id, when, each file's size and SHA-256, the
  journal's row counts and pending returns, the audit records and head.

Each backup is verified before it is called done: `PRAGMA integrity_check` on the copy, its row
counts against those of the snapshot, the audit chain of the copy against the copy's head
(`cardstation.server.audit.verify`), the checksums. It is written under a `.partial` name and
renamed only then, so an interrupted or failed backup never looks like one. `verify_backup`
runs the same checks on a backup folder later (and `restore` runs it first), so a backup that
rotted or was tampered with on its disk is found before it is relied on.

Previews are not backed up: they are re-rendered from the journal's application data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cardstation.config import Config
from cardstation.personalization.datakey import KEY_FILE, DataKeyError, KeyFile, aad, open_text
from cardstation.personalization.journal import JournalError, open_read_only
from cardstation.personalization.private_files import PRIVATE_FILE, make_private_dir
from cardstation.personalization.sealed_rows import KEY_CHECK_META
from cardstation.server.audit import verify
from cardstation.server.audit_head import META_KEY, decode
from cardstation.server.audit_key import AuditKeyError, read_key

JOURNAL = "journal.sqlite"
AUDIT_LOG = "audit.jsonl"
AUDIT_KEY = "audit.key"
DATA_KEY = KEY_FILE
MANIFEST = "manifest.json"
#: The journal's tables whose row counts a backup must reproduce.
TABLES = ("meta", "issuances", "events", "outbox")
#: Outbox statuses of a return the CMS has not acknowledged yet (a pending return).
UNACKNOWLEDGED = ("pending", "delivering", "failed")


class BackupError(RuntimeError):
    """A backup could not be made, or a backup folder does not verify. The message names the
    file and what is wrong."""


@dataclass(frozen=True)
class StationFiles:
    """Where a station keeps what a backup holds (from its configuration)."""

    data_dir: Path
    journal: Path
    audit_log: Path
    audit_key: Path
    data_key: Path

    @classmethod
    def of(cls, config: Config) -> StationFiles:
        data = config.data_path
        return cls(data, data / JOURNAL,
                   Path(config.server.audit_log) if config.server.audit_log else data / AUDIT_LOG,
                   Path(config.server.audit_key) if config.server.audit_key else data / AUDIT_KEY,
                   data / DATA_KEY)


@dataclass
class Snapshot:
    """What the journal held at the moment of the backup."""

    counts: dict[str, int]
    pending_returns: list[str]  # idempotency keys of unacknowledged returns
    schema_version: str


@dataclass
class VerifyReport:
    """The result of checking a backup folder; `problems` is empty when it verifies."""

    folder: Path
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def snapshot_of(conn: sqlite3.Connection) -> Snapshot:
    """Row counts and unacknowledged returns of a journal connection (in its transaction)."""
    counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    marks = ", ".join("?" for _ in UNACKNOWLEDGED)
    pending = [row[0] for row in conn.execute(
        f"SELECT idempotency_key FROM outbox WHERE status IN ({marks}) ORDER BY id",
        UNACKNOWLEDGED)]
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return Snapshot(counts, pending, version[0] if version else "")


def integrity(conn: sqlite3.Connection) -> str:
    """"ok", or what SQLite's integrity check found wrong (its first lines)."""
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check(5)")]
    return "ok" if rows == ["ok"] else "; ".join(rows)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _private_copy_bytes(data: bytes, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _copy_journal(source: Path, target: Path) -> Snapshot:
    """The online backup of `source` into `target` in one read transaction of the source (the
    backup API uses a transaction already open on its source), and that state's snapshot."""
    src = open_read_only(source)
    try:
        src.execute("BEGIN")
        snap = snapshot_of(src)  # the first read fixes the state the copy is taken from
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        os.close(fd)  # made 0600 before SQLite writes personal data into it
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            dst.close()
        src.execute("COMMIT")
    finally:
        src.close()
    with open(target, "rb+") as fh:
        os.fsync(fh.fileno())
    return snap


def _copy_audit_log(source: Path, target: Path) -> None:
    """The log up to its last complete line (a line being appended right now is past the
    copied head, and a torn copy of it would not verify)."""
    data = source.read_bytes() if source.exists() else b""
    cut = data.rfind(b"\n") + 1
    _private_copy_bytes(data[:cut], target)


def _head_of(journal: Path) -> Any:
    conn = open_read_only(journal)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    finally:
        conn.close()
    return decode(row[0] if row else None)


def make_backup(config: Config, to: Path, clock: Callable[[], float] = time.time) -> VerifyReport:
    """Back up the station of `config` into a new folder under `to`; verified, or BackupError
    (and no folder that looks like a backup is left behind)."""
    files = StationFiles.of(config)
    if not files.journal.is_file():
        raise BackupError(f"there is no journal at {files.journal}: check [station] data_dir")
    stamp = datetime.fromtimestamp(clock(), tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    to = Path(to)
    to.mkdir(mode=0o700, parents=True, exist_ok=True)  # an existing folder keeps its mode:
    # each backup inside is 0700 itself
    final = to / f"cardstation-{config.station.id}-{stamp}"
    partial = final.with_name(final.name + ".partial")
    if final.exists() or partial.exists():
        raise BackupError(f"{final} already exists: wait a second and run the backup again")
    make_private_dir(partial)
    try:
        snap = _copy_journal(files.journal, partial / JOURNAL)
        _copy_audit_log(files.audit_log, partial / AUDIT_LOG)
        has_key = files.audit_key.exists()
        if has_key:
            try:
                key = read_key(files.audit_key)  # refuses a key file open to others
            except AuditKeyError as exc:
                raise BackupError(str(exc)) from None
            _private_copy_bytes(files.audit_key.read_bytes(), partial / AUDIT_KEY)
        has_data_key = _copy_data_key(files.data_key, partial / DATA_KEY)
        manifest = _manifest(config, clock(), partial, snap, has_key, has_data_key)
        if has_key:
            result = verify(partial / AUDIT_LOG, key, _head_of(partial / JOURNAL))
            manifest["audit"] = {"records": result.records, "head_seq": result.head_seq}
        _private_copy_bytes(json.dumps(manifest, indent=2, sort_keys=True).encode(),
                            partial / MANIFEST)
        report = verify_backup(partial)
        if not report.ok:
            raise BackupError(f"the backup did not verify after writing: "
                              f"{'; '.join(report.problems)} — check the disk of {to}")
        os.rename(partial, final)
    except BaseException:
        _discard(partial)
        raise
    report.folder = final
    return report


def _copy_data_key(source: Path, target: Path) -> bool:
    """Copy the data key (refused when open to others); False when the station has none (a
    journal from before sealing)."""
    if not source.exists():
        return False
    try:
        KeyFile(source).load()
    except DataKeyError as exc:
        raise BackupError(str(exc)) from None
    _private_copy_bytes(source.read_bytes(), target)
    return True


def _manifest(config: Config, at: float, folder: Path, snap: Snapshot,
              has_key: bool, has_data_key: bool = False) -> dict[str, Any]:
    names = [JOURNAL, AUDIT_LOG] + ([AUDIT_KEY] if has_key else []) \
        + ([DATA_KEY] if has_data_key else [])
    return {
        "format": 1,
        "station_id": config.station.id,
        "created_at": datetime.fromtimestamp(at, tz=UTC).isoformat(),
        "schema_version": snap.schema_version,
        "files": {name: {"bytes": (folder / name).stat().st_size,
                         "sha256": sha256_of(folder / name)} for name in names},
        "counts": snap.counts,
        "pending_returns": snap.pending_returns,
    }


def _discard(partial: Path) -> None:
    """Remove a half-made backup (a copy, never the station's own files)."""
    if partial.name.endswith(".partial"):
        shutil.rmtree(partial, ignore_errors=True)


def verify_backup(folder: Path) -> VerifyReport:
    """Every check a backup must pass (see the module docstring); problems listed, not raised."""
    folder = Path(folder)
    report = VerifyReport(folder)
    problems = report.problems
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        report.manifest = manifest
        listed = manifest["files"]
        counts = manifest["counts"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"{folder / MANIFEST} is missing or unreadable ({exc}): this is not a "
                        "complete backup")
        return report
    for name, entry in listed.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif sha256_of(path) != entry.get("sha256"):
            problems.append(f"{path} differs from the file that was backed up (checksum): the "
                            "backup is damaged")
    if not (folder / JOURNAL).is_file():
        return report
    problems += _check_journal_copy(folder / JOURNAL, counts, manifest.get("pending_returns"))
    if AUDIT_KEY in listed and (folder / AUDIT_KEY).is_file():
        problems += _check_audit_copy(folder)
    problems += _check_data_key_copy(folder, DATA_KEY in listed)
    return report


def _check_data_key_copy(folder: Path, listed: bool) -> list[str]:
    """A journal with sealed rows needs its data key in the backup, and the key must be the
    journal's (its check value opens)."""
    try:
        conn = open_read_only(folder / JOURNAL)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?",
                               (KEY_CHECK_META,)).fetchone()
        finally:
            conn.close()
    except (JournalError, sqlite3.Error) as exc:
        return [f"{folder / JOURNAL}: cannot be read: {exc}"]
    if row is None:  # from before sealing: nothing needs a key
        return []
    if not listed:
        return [f"{folder} has no {DATA_KEY}: its journal's personal data cannot be read "
                "without the key; make the backup again from the station"]
    try:
        open_text(KeyFile(folder / DATA_KEY).load(), row[0],
                  aad("meta", "value", KEY_CHECK_META))
    except DataKeyError as exc:
        return [f"{folder / DATA_KEY} does not open the journal of this backup: {exc}"]
    return []


def _check_journal_copy(path: Path, counts: dict[str, int],
                        pending: list[str] | None) -> list[str]:
    try:
        conn = open_read_only(path)
    except Exception as exc:  # a damaged copy can fail in many ways; each is a finding
        return [f"{path} cannot be opened as a journal: {exc}"]
    try:
        found = integrity(conn)
        if found != "ok":
            return [f"{path}: integrity check failed: {found}"]
        snap = snapshot_of(conn)
    except sqlite3.Error as exc:
        return [f"{path}: cannot be read: {exc}"]
    finally:
        conn.close()
    problems = []
    if snap.counts != counts:
        problems.append(f"{path}: row counts {snap.counts} differ from the journal's at the "
                        f"backup {counts}")
    if pending is not None and snap.pending_returns != pending:
        problems.append(f"{path}: pending returns differ from those at the backup")
    return problems


def _check_audit_copy(folder: Path) -> list[str]:
    try:
        key = read_key(folder / AUDIT_KEY)
        result = verify(folder / AUDIT_LOG, key, _head_of(folder / JOURNAL))
    except (AuditKeyError, JournalError, OSError, ValueError) as exc:
        return [f"{folder / AUDIT_LOG}: cannot be verified: {exc}"]
    return [] if result.ok else [f"{folder / AUDIT_LOG}: the audit chain does not verify: "
                                 f"{result.message}"]
