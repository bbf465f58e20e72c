"""Errors of the PC/SC layer: reader and card-presence failures, and card status words.

PC/SC return codes (winscard) become `PcscError` subclasses with an operator-facing message;
status words the card answers (ssc-chip.md section 2) become `CardStatusError` subclasses that
carry the SW. The SW table lives here, once.
"""

from __future__ import annotations

# winscard return codes the station meets (hiti-cs220e.md section 4, pcsc-lite pcsclite.h)
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_PROTO_MISMATCH = 0x8010000F
SCARD_E_READER_UNAVAILABLE = 0x80100017
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_UNKNOWN_READER = 0x80100009
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_W_UNSUPPORTED_CARD = 0x80100065
SCARD_W_UNRESPONSIVE_CARD = 0x80100066
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_W_RESET_CARD = 0x80100068
SCARD_W_REMOVED_CARD = 0x80100069
SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_E_COMM_DATA_LOST = 0x8010002F


class PcscError(Exception):
    """A PC/SC-level failure. `code` is the winscard return code when there is one."""

    def __init__(self, message: str, code: int | None = None, reader: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reader = reader


class PcscServiceUnavailable(PcscError):
    """pcscd is not running or not reachable."""


class NoReadersAvailable(PcscError):
    """No PC/SC reader is connected (for the encoder: check the printer's second USB cable)."""


class ReaderNotFound(PcscError):
    """No reader matches the configured name or pattern."""


class ReaderUnavailable(PcscError):
    """The reader went away (unplugged) while in use."""


class NoCard(PcscError):
    """No card in the reader."""


class UnresponsiveCard(PcscError):
    """A card is present but gives no answer to reset: likely inserted the wrong way."""


class CardRemoved(PcscError):
    """The card was removed (or reset by another program) in the middle of a command."""


class CardWaitTimeout(PcscError):
    """Waiting for a card to be inserted or removed timed out."""


_PCSC_CLASSES: dict[int, tuple[type[PcscError], str]] = {
    SCARD_E_NO_SERVICE: (PcscServiceUnavailable, "the PC/SC service (pcscd) is not running"),
    SCARD_E_NO_READERS_AVAILABLE: (
        NoReadersAvailable,
        "no card reader is connected: check the reader's USB cable "
        "(the printer's chip encoder has its own, second, USB cable)",
    ),
    SCARD_E_UNKNOWN_READER: (ReaderUnavailable, "the reader is not known to PC/SC (unplugged?)"),
    SCARD_E_READER_UNAVAILABLE: (
        ReaderUnavailable,
        "the reader is unavailable: it was unplugged or its driver stopped",
    ),
    SCARD_E_NO_SMARTCARD: (NoCard, "no card in the reader"),
    SCARD_W_UNRESPONSIVE_CARD: (
        UnresponsiveCard,
        "no answer to reset — card inserted the wrong way? "
        "(chip must face up and go in first; otherwise the chip may be dirty or broken)",
    ),
    SCARD_W_UNPOWERED_CARD: (
        UnresponsiveCard,
        "the chip could not be powered — card inserted the wrong way? "
        "(chip must face up and go in first; otherwise the chip may be dirty or broken)",
    ),
    SCARD_W_UNSUPPORTED_CARD: (UnresponsiveCard, "the card's answer to reset is not supported"),
    SCARD_E_PROTO_MISMATCH: (
        UnresponsiveCard,
        "the card's answer to reset could not be used — card inserted the wrong way?",
    ),
    SCARD_W_REMOVED_CARD: (CardRemoved, "the card was removed during the operation"),
    SCARD_W_RESET_CARD: (CardRemoved, "the card was reset by another program"),
    # what pcscd answers when the card goes away in the middle of an exchange
    SCARD_E_NOT_TRANSACTED: (
        CardRemoved,
        "the command did not complete: the card was removed or stopped answering "
        "(read the card again before doing anything else to it)",
    ),
    SCARD_E_COMM_DATA_LOST: (CardRemoved, "communication with the card was lost"),
    SCARD_E_TIMEOUT: (CardWaitTimeout, "timed out"),
}


def pcsc_error(code: int, context: str, reader: str | None = None) -> PcscError:
    """The exception for winscard return `code`, its message prefixed with `context`."""
    code &= 0xFFFFFFFF
    cls, meaning = _PCSC_CLASSES.get(code, (PcscError, "PC/SC error"))
    where = f" [{reader}]" if reader else ""
    return cls(f"{context}{where}: {meaning} (0x{code:08X})", code=code, reader=reader)


# --------------------------------------------------------------------------------------------
# Card status words (ssc-chip.md section 2, confirmed from reader code)


class CardStatusError(Exception):
    """The card refused a command; `sw` is the status word, `meaning` the spec's text."""

    def __init__(self, sw: int, meaning: str, command: str = "") -> None:
        where = f"{command}: " if command else ""
        super().__init__(f"{where}{meaning} (SW {sw:04X})")
        self.sw = sw
        self.meaning = meaning
        self.command = command


class WrongLength(CardStatusError):
    pass


class SecurityNotSatisfied(CardStatusError):
    pass


class AuthenticationBlocked(CardStatusError):
    """6983: the PIN or key is blocked (too many wrong tries)."""


class VerificationFailed(CardStatusError):
    """63Cx: wrong PIN or cryptogram; `tries_left` more attempts before it blocks."""

    @property
    def tries_left(self) -> int:
        return self.sw & 0x0F


class ReferenceDataInvalid(CardStatusError):
    pass


class ConditionsNotSatisfied(CardStatusError):
    pass


class FileNotFound(CardStatusError):
    pass


class RecordNotFound(CardStatusError):
    pass


class IncorrectParameters(CardStatusError):
    pass


class FunctionNotSupported(CardStatusError):
    pass


class ApplicationLocked(CardStatusError):
    pass


class MemoryFailure(CardStatusError):
    pass


SW_TABLE: dict[int, tuple[type[CardStatusError], str]] = {
    0x6581: (MemoryFailure, "memory failure"),
    0x6700: (WrongLength, "wrong length"),
    0x6981: (ConditionsNotSatisfied, "command incompatible with file structure"),
    0x6982: (SecurityNotSatisfied, "security status not satisfied"),
    0x6983: (AuthenticationBlocked, "authentication method blocked"),
    0x6984: (ReferenceDataInvalid, "reference data invalid (random number used or missing)"),
    0x6985: (ConditionsNotSatisfied, "conditions of use not satisfied"),
    0x6986: (ConditionsNotSatisfied, "command not allowed: no current EF"),
    0x6988: (SecurityNotSatisfied, "secure messaging data or MAC incorrect"),
    0x6A80: (IncorrectParameters, "incorrect data field"),
    0x6A81: (FunctionNotSupported, "function not supported or application locked"),
    0x6A82: (FileNotFound, "file not found"),
    0x6A83: (RecordNotFound, "record not found"),
    0x6A86: (IncorrectParameters, "incorrect P1 P2"),
    0x6A88: (ReferenceDataInvalid, "referenced key not found"),
    0x6D00: (FunctionNotSupported, "instruction not supported"),
    0x6E00: (FunctionNotSupported, "class not supported"),
    0x9303: (ApplicationLocked, "application permanently locked"),
}


def sw_meaning(sw: int) -> str:
    if sw == 0x9000:
        return "success"
    if sw & 0xFFF0 == 0x63C0:
        return f"verification failed, {sw & 0x0F} tries left"
    if sw & 0xFF00 == 0x6100:
        return f"{sw & 0xFF} response bytes available"
    if sw & 0xFF00 == 0x6C00:
        return f"wrong Le, exact length is {sw & 0xFF}"
    return SW_TABLE.get(sw, (CardStatusError, "unknown status"))[1]


def raise_for_sw(sw: int, command: str = "") -> None:
    """Raise the typed error for a non-9000 status word."""
    if sw == 0x9000:
        return
    if sw & 0xFFF0 == 0x63C0:
        raise VerificationFailed(sw, sw_meaning(sw), command)
    cls = SW_TABLE.get(sw, (CardStatusError, ""))[0]
    raise cls(sw, sw_meaning(sw), command)
