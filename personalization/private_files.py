"""Files only the station's own user may read: the data folder, the journal, keys.

The data folder holds every holder's personal data (journal, outbox, previews) and the audit
key, so it is kept 0700 and the journal's files 0600. Those belong to the station, so a looser
mode found at start is tightened and said in the log (a copy restored from a backup or made
under a permissive umask). A private key the station is given (TLS, HSM client) is the
operator's file: one readable by group or others is refused, naming the file and the remedy,
because it may already have been read.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class PrivateFileError(ValueError):
    """A file that must be private is readable by others, or cannot be made private."""


def _loose(mode: int) -> bool:
    return bool(stat.S_IMODE(mode) & 0o077)


def check_private_file(path: str | Path, what: str) -> None:
    """Refuse `path` when group or others may read, write or run it (PrivateFileError).

    A missing file is not refused here; reading it reports that.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PrivateFileError(f"{what} {path} cannot be checked: {exc.strerror}") from None
    if _loose(mode):
        raise PrivateFileError(
            f"{what} {path} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}` (and consider the key exposed: replace it) and start again"
        )


def _tighten(path: Path, mode: int, what: str) -> str | None:
    try:
        current = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    if not current & 0o077:
        return None
    try:
        os.chmod(path, mode)
    except OSError as exc:
        raise PrivateFileError(
            f"{what} {path} is open to other users (mode {current:04o}) and cannot be made "
            f"private: {exc.strerror}; run `chmod {mode:o} {path}` as its owner"
        ) from None
    note = f"{what} {path} was mode {current:04o}; made {mode:04o}"
    log.warning("%s", note)
    return note


def make_private_dir(path: str | Path) -> list[str]:
    """Create `path` 0700, or tighten an existing one; return what was changed (also logged)."""
    folder = Path(path)
    if not folder.exists():
        folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode is masked by the umask; say it exactly
        return []
    note = _tighten(folder, PRIVATE_DIR, "data folder")
    return [note] if note else []


def make_private_files(paths: Iterable[str | Path]) -> list[str]:
    """Tighten each existing file to 0600; return what was changed (also logged)."""
    notes = []
    for path in paths:
        note = _tighten(Path(path), PRIVATE_FILE, "file")
        if note:
            notes.append(note)
    return notes
