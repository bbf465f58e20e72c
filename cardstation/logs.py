"""Logging for the command line: the one place that installs redaction on the framework.

Called by the entry points (cardstation.cli) only; importing it does nothing. The masking
itself lives in cardstation.drivers.redaction, low in the stack and free of side effects, so drivers
and the domain use it without importing the composition root. Once installed, masking happens
where a record's message is built (the record factory) and again on the formatted text
(tracebacks), so a handler added later (pytest's caplog, a file handler) cannot see an
unmasked ID number or account number. Names, PIN blocks and keys have no shape a pattern could
find: the code that logs them masks them by structure (the APDU trace, the PIN pad trace).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
from datetime import UTC, datetime
from pathlib import Path

from cardstation.drivers.redaction import (  # re-exported for the composition root's callers
    RedactingFormatter,
    RedactingLogRecord,
    mask_id_number,
    redact,
)

__all__ = ["JsonLinesFormatter", "RedactingFormatter", "install_redaction", "mask_id_number",
           "redact", "setup_logging"]


def install_redaction() -> None:
    """Make every LogRecord created from now on mask sensitive numbers. Idempotent."""
    if logging.getLogRecordFactory() is not RedactingLogRecord:
        logging.setLogRecordFactory(RedactingLogRecord)


LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: a log file rotates at this size, keeping this many old files (100 MB at most on disk)
ROTATE_BYTES = 10 * 1024 * 1024
ROTATE_KEEP = 9


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: at (UTC, ISO 8601), level, logger, message, and the traceback
    when there is one. Masked like the text lines (the whole line)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False))


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that only the station's user may read (0600): even masked, the
    logs say who came to the window and when."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.baseFilename, 0o600)  # an older file made under another umask
        return os.fdopen(fd, "a", encoding=self.encoding,
                         errors=self.errors)


def setup_logging(level: str | int = "WARNING", *, file: str | None = None,
                  json_lines: bool = False) -> None:
    """Configure the root logger once: stderr, and a rotating `file` when given, redacted, at
    `level`; `json_lines` writes JSON objects instead of text lines (both outputs)."""
    install_redaction()
    root = logging.getLogger()
    root.setLevel(level.upper() if isinstance(level, str) else level)
    formatter: logging.Formatter = JsonLinesFormatter() if json_lines else \
        RedactingFormatter(LINE_FORMAT)
    ours = [h for h in root.handlers if getattr(h, "_cardstation", False)]
    for handler in ours:  # configured again (tests, embedded use): replace, never duplicate
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if file:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(PrivateRotatingFileHandler(file, maxBytes=ROTATE_BYTES,
                                                   backupCount=ROTATE_KEEP, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._cardstation = True  # type: ignore[attr-defined]
        root.addHandler(handler)
