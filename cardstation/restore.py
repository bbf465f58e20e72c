"""Restoring a backup (`cardstation restore --from DIR`) and compacting the journal
(`cardstation compact`): the two operations that need the station's server stopped.

Restore checks the backup first (`verify_backup`), then the current journal
(`journal.sole_connection`: refused while another program, the server, has it open). A return
the current journal has not delivered yet and the backup does not hold would be lost with it —
the CMS would never receive that card's data — so restore refuses then, naming how many, unless
`force` is given. The replaced files are moved into `<data_dir>/replaced-<UTC time>/` (0700),
never deleted: what they hold may still be needed. The restored files are checked again in
place.

Compact runs VACUUM on the journal (no other program may have it open): the file shrinks to its
rows, and the rows are the same before and after — every table's count and every unacknowledged
return are compared, and the integrity check must pass.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cardstation.backup import (
    AUDIT_KEY,
    AUDIT_LOG,
    DATA_KEY,
    JOURNAL,
    UNACKNOWLEDGED,
    BackupError,
    StationFiles,
    integrity,
    snapshot_of,
    verify_backup,
)
from cardstation.config import Config
from cardstation.personalization.journal import (
    open_read_only,
    refuse_if_open_elsewhere,
    sole_connection,
)
from cardstation.personalization.outbox import WITHDRAWN
from cardstation.personalization.private_files import (
    PRIVATE_FILE,
    make_private_dir,
    make_private_files,
)


class RestoreRefused(BackupError):
    """Restoring would lose something (or the backup is bad); nothing was changed."""


@dataclass
class RestoreResult:
    restored: list[str]
    kept_aside: str | None
    pending_returns: int
    lost_returns: list[str] = field(default_factory=list)  # given up knowingly (force)


def _unacknowledged(conn: sqlite3.Connection) -> list[str]:
    """Returns still owed to the CMS (a withdrawn one, of a rejected card, is never sent)."""
    marks = ", ".join("?" for _ in UNACKNOWLEDGED)
    return [row[0] for row in conn.execute(
        f"SELECT idempotency_key FROM outbox WHERE status IN ({marks}) "
        "AND last_error_code != ?", (*UNACKNOWLEDGED, WITHDRAWN))]


def restore(config: Config, source: Path, *, force: bool = False,
            clock: Callable[[], float] = time.time) -> RestoreResult:
    """Put the backup in `source` in place of the station's journal, audit log and keys."""
    report = verify_backup(Path(source))
    if not report.ok:
        raise RestoreRefused(f"the backup {source} does not verify, nothing was restored: "
                             + "; ".join(report.problems))
    theirs = str(report.manifest.get("station_id", ""))
    if theirs and theirs != config.station.id and not force:
        raise RestoreRefused(
            f"the backup {source} is of station {theirs}, this one is {config.station.id}: "
            "its jobs were claimed at the CMS in that station's name. Restore it on that "
            "station, or with --force if this PC really takes that station's place (then set "
            "[station] id to it); nothing was changed")
    files = StationFiles.of(config)
    make_private_dir(files.data_dir)
    backed_up = set(report.manifest.get("pending_returns", []))
    lost: list[str] = []
    stamp = datetime.fromtimestamp(clock(), tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = files.data_dir / f"replaced-{stamp}"
    if files.journal.exists():
        with sole_connection(files.journal) as conn:  # JournalInUse while the server runs
            lost = [key for key in _unacknowledged(conn) if key not in backed_up]
        if lost and not force:
            raise RestoreRefused(
                f"the current journal holds {len(lost)} return(s) not yet acknowledged by the "
                f"CMS that the backup {source} does not have: restoring would lose them. Let "
                "the station deliver them first (start it and wait until 回盘 shows none "
                "pending), or restore with --force knowing that those cards' data must then "
                "be returned again by hand; nothing was changed")
    current = [files.journal, *(files.journal.with_name(files.journal.name + s)
                                for s in ("-wal", "-shm")), files.audit_log, files.audit_key,
               files.data_key]
    present = [p for p in current if p.exists()]
    if files.journal.exists():
        refuse_if_open_elsewhere(files.journal)  # again: nothing started since the check
    if present:
        make_private_dir(aside)
        for path in present:
            os.rename(path, aside / path.name)  # kept, never deleted
    # the data key with its journal: the restored rows are sealed under the backup's key
    targets = {JOURNAL: files.journal, AUDIT_LOG: files.audit_log, AUDIT_KEY: files.audit_key,
               DATA_KEY: files.data_key}
    restored = []
    for name, target in targets.items():
        if (Path(source) / name).is_file():
            _place(Path(source) / name, target)
            restored.append(str(target))
    _check_in_place(files, report.manifest)
    return RestoreResult(restored, str(aside) if present else None,
                         len(report.manifest.get("pending_returns", [])), lost)


def _place(source: Path, target: Path) -> None:
    """Copy under a temporary name (0600) and rename into place, so a crash leaves either no
    file or a whole one."""
    make_private_dir(target.parent)
    partial = target.with_name(target.name + ".restoring")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out)
        out.flush()
        os.fsync(out.fileno())
    os.rename(partial, target)
    make_private_files([target])


def _check_in_place(files: StationFiles, manifest: dict[str, object]) -> None:
    conn = open_read_only(files.journal)
    try:
        found = integrity(conn)
        snap = snapshot_of(conn)
    finally:
        conn.close()
    if found != "ok" or snap.counts != manifest.get("counts"):
        raise BackupError(f"the restored journal {files.journal} does not match the backup "
                          f"({found}; rows {snap.counts}): the replaced files are kept beside "
                          "it; check the disk and restore again")


@dataclass
class CompactResult:
    bytes_before: int
    bytes_after: int
    counts: dict[str, int]
    pending_returns: int


def compact(config: Config) -> CompactResult:
    """VACUUM the station's journal, proving that no row (no pending return) is lost."""
    path = StationFiles.of(config).journal
    if not path.is_file():
        raise BackupError(f"there is no journal at {path}: check [station] data_dir")
    with sole_connection(path) as conn:  # JournalInUse while the server runs
        before = snapshot_of(conn)
        size_before = path.stat().st_size
        conn.execute("VACUUM")  # all or nothing: a failed VACUUM leaves the file as it was
        found = integrity(conn)
        after = snapshot_of(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if found != "ok" or after.counts != before.counts \
            or after.pending_returns != before.pending_returns:
        raise BackupError(f"the journal {path} changed while compacting ({found}; rows "
                          f"{before.counts} -> {after.counts}): restore it from the backup")
    return CompactResult(size_before, path.stat().st_size, after.counts,
                         len(after.pending_returns))
