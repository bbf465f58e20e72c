"""PIN pad errors. Every error derives from :class:`PinPadException`.

None of them ever carries a PIN, a PIN block or key material in its message or attributes.
"""

from __future__ import annotations


class PinPadException(Exception):
    """Base of every PIN pad error raised by the driver or the protocol layer."""


class FrameError(PinPadException):
    """A frame on the line is malformed: bad STX/ETX, impossible length, LRC mismatch, truncated.

    Raised on both sides of the line (driver and simulator use the same parser). ``reason`` is
    the NAK reason a receiver answers with (a ``NakReason`` value); ``seq`` is the frame's
    sequence number when it could be read, else None.
    """

    def __init__(self, message: str, reason: int = 0x03, seq: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.seq = seq


class PinPadNotResponding(PinPadException):
    """The pad sent nothing (or no frame for the pending command) within the time allowed."""


class PinPadCancelled(PinPadException):
    """The PIN entry ended with CANCELLED.

    ``by_holder`` is True when the cardholder pressed CANCEL on the pad, False when the host
    cancelled the prompt (:meth:`PinPad.cancel`).
    """

    def __init__(self, by_holder: bool = True) -> None:
        super().__init__("cancelled by the cardholder" if by_holder else "cancelled by the host")
        self.by_holder = by_holder


class PinPadTimeout(PinPadException):
    """The cardholder did not complete the entry within the prompt's ``timeout_s``."""


class PinPadError(PinPadException):
    """The pad reported a failure: an ERROR frame (``code`` is an ``ErrorCode``) or, for the
    subclass :class:`PinPadRejected`, a NAK (``code`` is a ``NakReason``)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        super().__init__(message or f"PIN pad error 0x{code:02X}")


class PinPadRejected(PinPadError):
    """The pad answered a command with NAK; ``code`` is the NAK reason."""
