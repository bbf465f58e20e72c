"""Preview retention: a card's preview (<data_dir>/previews/<issuance id>.jpg, written by the
pipeline's preview step; <issuance id>.png from stations before the preview became a JPEG, pruned
the same way) is the holder's photo and data, needed only while the card is being
made. Once the card is DONE or REJECTED and that is older than `[station]
preview_retention_days`, the file is deleted. A preview whose job is not in the journal (a
journal restored from an older backup) is deleted once the file itself is that old. A job that
is not finished keeps its preview, however old.

This runs with `cardstation backup --prune` (and so from the same daily timer as the backup),
not in the server's monitor: it is a sweep of the file system that has nothing to do with the
devices the monitor watches every second, it needs no lock the server holds (a finished card's
preview is never read again; the journal is only read), and it is then done once a day at a
time the station chooses, with its result printed for whoever runs it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cardstation.personalization.journal import open_read_only

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
