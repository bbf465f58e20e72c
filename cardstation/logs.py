"""Logging set up once, with redaction applied to every record however it is handled.

Masking happens where a record's message is built (a LogRecord factory) and again on the final
formatted text (tracebacks), so a handler added later (pytest's caplog, a file handler) cannot
see an unmasked ID number or account number. PIN blocks and key material never reach a logger:
the APDU trace masks them before logging (see cardstation.drivers.pcsc.trace).
"""

from __future__ import annotations

import logging
import re

# 18-character resident ID: 6 region digits, 8 birth-date digits, 3 sequence digits, check char.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
# Bank account numbers (PAN): 16 to 19 digits.
_ACCOUNT = re.compile(r"(?<!\d)(\d{6})(\d{6,9})(\d{4})(?!\d)")


def mask_id_number(text: str) -> str:
    """Mask an ID number to its first 6 and last 4 characters: 110105********002X."""
    if len(text) <= 10:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10) + text[-4:]


def redact(text: str) -> str:
    """Mask every ID number and account number in `text` (keep first 6 and last 4)."""
    text = _ID_NUMBER.sub(lambda m: m.group(1) + "*" * 8 + m.group(2), text)
    return _ACCOUNT.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)


class RedactingLogRecord(logging.LogRecord):
    def getMessage(self) -> str:
        return redact(super().getMessage())


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_installed = False


def install_redaction() -> None:
    """Make every LogRecord created from now on mask sensitive numbers. Idempotent."""
    global _installed
    if not _installed:
        logging.setLogRecordFactory(RedactingLogRecord)
        _installed = True


def setup_logging(level: str | int = "WARNING") -> None:
    """Configure the root logger once: stderr, redacted, at `level`."""
    install_redaction()
    root = logging.getLogger()
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if not any(isinstance(h.formatter, RedactingFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)


install_redaction()
