"""Log record and formatter classes that apply the pattern net (definitions only).

Nothing here is installed on import: cardstation.logs (the command line) sets the record
factory and the formatter on the root handler.
"""

from __future__ import annotations

import logging

from .patterns import redact


class RedactingLogRecord(logging.LogRecord):
    """A record whose message is masked however it is handled (pytest's caplog, a file)."""

    def getMessage(self) -> str:
        return redact(super().getMessage())


class RedactingFormatter(logging.Formatter):
    """Masks the whole formatted text, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
