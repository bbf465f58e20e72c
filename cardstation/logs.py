"""Logging for the command line: the one place that installs redaction on the framework.

Called by the entry points (cardstation.cli) only; importing it does nothing. The masking
itself lives in cardstation.redaction, low in the stack and free of side effects, so drivers
and the domain use it without importing the composition root. Once installed, masking happens
where a record's message is built (the record factory) and again on the formatted text
(tracebacks), so a handler added later (pytest's caplog, a file handler) cannot see an
unmasked ID number or account number. Names, PIN blocks and keys have no shape a pattern could
find: the code that logs them masks them by structure (the APDU trace, the PIN pad trace).
"""

from __future__ import annotations

import logging

from cardstation.redaction import (  # re-exported for the composition root's callers
    RedactingFormatter,
    RedactingLogRecord,
    mask_id_number,
    redact,
)

__all__ = ["RedactingFormatter", "install_redaction", "mask_id_number", "redact",
           "setup_logging"]


def install_redaction() -> None:
    """Make every LogRecord created from now on mask sensitive numbers. Idempotent."""
    if logging.getLogRecordFactory() is not RedactingLogRecord:
        logging.setLogRecordFactory(RedactingLogRecord)


def setup_logging(level: str | int = "WARNING") -> None:
    """Configure the root logger once: stderr, redacted, at `level`."""
    install_redaction()
    root = logging.getLogger()
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if not any(isinstance(h.formatter, RedactingFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
