"""Rotating the station data key and saying where it stands (`cardstation datakey ...`).

A rotation, with the server stopped (a running server holds the keys it loaded):

1. a new key is added to `data.key` and made current; the old ones stay in the file;
2. every row is resealed under the new key, in batches, a transaction each, the cursor kept in
   the journal (`sealed_rows.reseal_pass`), progress on stderr;
3. once no row is sealed under an old key (checked by a full scan), the old keys are dropped.

A kill anywhere leaves a journal every row of which opens with the file's keys; running
`rotate` again continues (it adds no second key while an old one is still in the file).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cardstation.personalization.datakey import KeyFile, with_new_key, without
from cardstation.personalization.journal import (
    Journal,
    open_read_only,
    refuse_if_open_elsewhere,
)
from cardstation.personalization.sealed_rows import kids_in_use, pending_pass, start_pass

Progress = Callable[[str, int, int], None]


@dataclass
class Rotation:
    current: str
    dropped: list[str] = field(default_factory=list)
    rows: int = 0
    resumed: bool = False


def rotate(journal_path: Path, *, progress: Progress | None = None,
           batch: int = 200) -> Rotation:
    """Rotate the data key of the journal at `journal_path` (see the module docstring)."""
    if not journal_path.is_file():
        raise FileNotFoundError(str(journal_path))
    refuse_if_open_elsewhere(journal_path)
    source = KeyFile.beside(journal_path)
    keys = source.load()
    resumed = bool(keys.old)
    if not resumed:
        keys = with_new_key(keys)
        source.save(keys)  # first: from here on every row opens with the file's keys
    with Journal(journal_path, data_keys=source) as journal:
        db = journal.database
        with db.write() as conn:
            if pending_pass(conn) is None:  # a new rotation, or one killed before its pass
                start_pass(conn)
        rows = db.reseal(progress, batch=batch)
        with db.read() as conn:
            left = set(kids_in_use(conn)) - {keys.current}
        if left:  # cannot happen after a finished pass; never drop a key still needed
            raise ValueError(f"rows are still sealed under {', '.join(sorted(left))}: run "
                             "`cardstation datakey rotate` again")
    dropped = keys.old
    source.save(without(keys, dropped))
    return Rotation(keys.current, dropped, rows, resumed)


def status(journal_path: Path) -> dict[str, object]:
    """The key file (mode, current and old keys) and, when the journal exists, which keys its
    rows use and whether a (re)seal pass is unfinished."""
    source = KeyFile.beside(journal_path)
    out: dict[str, object] = {"key_file": str(source.path), "present": source.exists()}
    if not source.exists():
        return out
    out["mode"] = f"{stat.S_IMODE(os.stat(source.path).st_mode):04o}"
    keys = source.load()
    out.update(current=keys.current, old=keys.old)
    if journal_path.is_file():  # read only: it runs while the station works
        conn = open_read_only(journal_path)
        try:
            conn.execute("BEGIN")
            out["unfinished_pass"] = pending_pass(conn) is not None
            out["keys_in_use"] = sorted(kids_in_use(conn))
        finally:
            conn.close()
        out["rotation_unfinished"] = bool(keys.old)
    return out
