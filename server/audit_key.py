"""The audit log's key: 32 random bytes in a 0600 file the server creates on first start.

The file holds the key as hex on one line. It is created with O_EXCL (two starts at once cannot
make two keys) and fsync'ed with its folder; one readable by group or others is refused (the
key may have been copied, so a forger could rewrite the log). Losing the key means old lines can
no longer be verified: back it up with the audit log.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cardstation.personalization.private_files import PrivateFileError, check_private_file

KEY_BYTES = 32


class AuditKeyError(ValueError):
    """The audit key file is unusable."""


def _create(path: Path) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.hex().encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return key


def read_key(path: str | Path) -> bytes:
    """The key in `path`; AuditKeyError when it is missing, open to others or malformed."""
    p = Path(path)
    try:
        check_private_file(p, "audit key file")
        text = p.read_text(encoding="ascii").strip()
    except PrivateFileError as exc:
        raise AuditKeyError(str(exc)) from None
    except FileNotFoundError:
        raise AuditKeyError(f"audit key file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditKeyError(f"audit key file {p} cannot be read: {exc}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise AuditKeyError(f"audit key file {p} does not hold a {KEY_BYTES}-byte hex key; "
                            "restore it from the backup made with the audit log")
    return key


def load_or_create_key(path: str | Path) -> bytes:
    """The key in `path`, creating the file (0600) when it does not exist yet."""
    p = Path(path)
    try:
        return _create(p)
    except FileExistsError:
        return read_key(p)
    except OSError as exc:
        raise AuditKeyError(f"audit key file {p} cannot be created: {exc.strerror}") from None
