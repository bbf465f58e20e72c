"""Errors of the PC/SC layer: reader and card-presence failures, and card status words.

PC/SC return codes (winscard) become `PcscError` subclasses; status words the card answers
(ssc-chip.md section 2) become `CardStatusError` subclasses that carry the SW. Both carry a
`cause` and a `remedy` for the operator (str() is "cause — remedy"): a damaged chip says so, a
wrong-way or dirty card says how to put it in and how to clean it, an unplugged reader names the
cable (the printer's chip encoder has a second USB cable of its own). The tables live here, once.
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


# What the operator does about a reader that cannot be reached, said once: the printer's chip
# encoder is a reader of its own, on a second USB cable (business-flows.md section 2).
CHECK_READER_CABLE = (
    "check the reader's USB cable (the printer's chip encoder has its own, second, USB cable) "
    "and that `cardstation card readers` lists it, then try again"
)
REREAD_CARD = "read the card again before doing anything else to it"
CLEAN_CHIP = (
    "put the card in chip first and facing up; if it still fails, wipe the chip contacts with a "
    "clean dry cloth and try again; a card that still fails has a broken chip"
)


class PcscError(Exception):
    """A PC/SC-level failure. `code` is the winscard return code when there is one.

    `cause` says what went wrong, `remedy` what the operator does about it; str() is
    "cause — remedy". Each class has a default remedy; the table below gives one per code."""

    default_remedy = (
        "try again; if it persists, restart the PC/SC service (pcscd) and report the error code "
        "to the station supplier"
    )

    def __init__(self, message: str, *, code: int | None = None, reader: str | None = None,
                 remedy: str | None = None) -> None:
        # keyword-only: a reader name passed where the code belongs once went unnoticed
        super().__init__(message)
        self.cause = message
        self.code = code
        self.reader = reader
        self.remedy = type(self).default_remedy if remedy is None else remedy

    def __str__(self) -> str:
        return f"{self.cause} — {self.remedy}" if self.remedy else self.cause


class PcscServiceUnavailable(PcscError):
    """pcscd is not running or not reachable."""

    default_remedy = ("start the PC/SC service (`systemctl start pcscd.socket`) or restart the "
                      "station PC, then try again")


class NoReadersAvailable(PcscError):
    """No PC/SC reader is connected (for the encoder: check the printer's second USB cable)."""

    default_remedy = CHECK_READER_CABLE


class ReaderNotFound(PcscError):
    """No reader matches the configured name or pattern."""

    default_remedy = (
        "check the reader's USB cable (the printer's chip encoder has its own, second, USB "
        "cable) and the reader names under [readers] in cardstation.toml"
    )


class ReaderUnavailable(PcscError):
    """The reader went away (unplugged) while in use."""

    default_remedy = CHECK_READER_CABLE


class NoCard(PcscError):
    """No card in the reader."""

    default_remedy = (
        "insert the card, chip first and facing up; if a card is already in (or the printer "
        "has just fed one to its encoder), " + CHECK_READER_CABLE
    )


class UnresponsiveCard(PcscError):
    """A card is present but gives no answer to reset: inserted the wrong way, or a dirty or
    damaged chip."""

    default_remedy = CLEAN_CHIP


class CardRemoved(PcscError):
    """The card was removed (or reset by another program) in the middle of a command."""

    default_remedy = ("put the card back and " + REREAD_CARD + "; if the card was not touched, "
                      "the chip contacts may be dirty: clean them")


class CardWaitTimeout(PcscError):
    """Waiting for a card to be inserted or removed timed out."""

    default_remedy = (
        "insert or take out the card as asked; if the card is where it should be, "
        + CHECK_READER_CABLE
    )


_PCSC_CLASSES: dict[int, tuple[type[PcscError], str, str | None]] = {
    SCARD_E_NO_SERVICE: (PcscServiceUnavailable, "the PC/SC service (pcscd) is not running",
                         None),
    SCARD_E_NO_READERS_AVAILABLE: (NoReadersAvailable, "no card reader is connected", None),
    SCARD_E_UNKNOWN_READER: (ReaderUnavailable,
                             "the reader is not known to PC/SC: it is unplugged or switched off",
                             None),
    SCARD_E_READER_UNAVAILABLE: (ReaderUnavailable,
                                 "the reader is unavailable: it was unplugged or its driver "
                                 "stopped", None),
    SCARD_E_NO_SMARTCARD: (NoCard, "no card in the reader", None),
    SCARD_W_UNRESPONSIVE_CARD: (
        UnresponsiveCard,
        "no answer to reset: the card is in the wrong way round, or its chip is dirty or damaged",
        None,
    ),
    SCARD_W_UNPOWERED_CARD: (
        UnresponsiveCard,
        "the chip could not be powered: the card is in the wrong way round, or its chip is "
        "dirty or damaged",
        None,
    ),
    SCARD_W_UNSUPPORTED_CARD: (
        UnresponsiveCard,
        "the card's answer to reset is not one this reader supports: the card is in the wrong "
        "way round, its chip is dirty, or it is not a social security card",
        None,
    ),
    SCARD_E_PROTO_MISMATCH: (
        UnresponsiveCard,
        "the card's answer to reset could not be used: the card is in the wrong way round, or "
        "its chip is dirty",
        None,
    ),
    SCARD_W_REMOVED_CARD: (CardRemoved, "the card was removed during the operation", None),
    SCARD_W_RESET_CARD: (
        CardRemoved, "the card was reset by another program",
        "close any other card program on this PC (only the station may use the reader), then "
        + REREAD_CARD,
    ),
    # what pcscd answers when the card goes away in the middle of an exchange
    SCARD_E_NOT_TRANSACTED: (
        CardRemoved,
        "the command did not complete: the card was removed or stopped answering",
        None,
    ),
    SCARD_E_COMM_DATA_LOST: (
        CardRemoved,
        "communication with the card was lost: the card moved, or the chip contacts are dirty",
        None,
    ),
    SCARD_E_TIMEOUT: (CardWaitTimeout, "the reader did not answer in time", None),
}


def pcsc_error(code: int, context: str, reader: str | None = None) -> PcscError:
    """The exception for winscard return `code`, its message prefixed with `context`."""
    code &= 0xFFFFFFFF
    cls, meaning, remedy = _PCSC_CLASSES.get(code, (PcscError, "PC/SC error", None))
    where = f" [{reader}]" if reader else ""
    return cls(f"{context}{where}: {meaning} (0x{code:08X})", code=code, reader=reader,
               remedy=remedy)


def winscard_codes() -> dict[int, type[PcscError]]:
    """Every winscard code this module names, with its class (for tests and docs)."""
    return {code: entry[0] for code, entry in _PCSC_CLASSES.items()}


# --------------------------------------------------------------------------------------------
# Card status words (ssc-chip.md section 2, confirmed from reader code)


CARD_MISMATCH = (
    "the station and this card do not fit together: check that it is a social security card "
    "of a supported generation from this region; if it is, report the SW to the station "
    "supplier"
)
CHECK_CARD_STATUS = (
    "check the card's status in the CMS (locked, cancelled or reported lost); a card that is "
    "fine there but keeps refusing is treated as broken (replacement, 补换卡)"
)


class CardStatusError(Exception):
    """The card refused a command; `sw` is the status word, `meaning` the spec's text.

    `cause` is "command: meaning (SW xxxx)", `remedy` what the operator does about it (from
    SW_TABLE); str() is "cause — remedy"."""

    default_remedy = REREAD_CARD + "; if the card keeps refusing, " + CARD_MISMATCH

    def __init__(self, sw: int, meaning: str, command: str = "", *,
                 remedy: str | None = None, reader: str | None = None) -> None:
        where = f"{command}: " if command else ""
        self.cause = f"{where}{meaning} (SW {sw:04X})"
        super().__init__(self.cause)
        self.sw = sw
        self.meaning = meaning
        self.command = command
        self.reader = reader  # which reader's card answered (the card or the PSAM)
        self.remedy = type(self).default_remedy if remedy is None else remedy

    def __str__(self) -> str:
        return f"{self.cause} — {self.remedy}" if self.remedy else self.cause


class WrongLength(CardStatusError):
    default_remedy = CARD_MISMATCH


class SecurityNotSatisfied(CardStatusError):
    default_remedy = (
        "the card did not accept the station's key for this step: check that the key module "
        "(PSAM) is this city's and the card is from this region, then " + REREAD_CARD
    )


class AuthenticationBlocked(CardStatusError):
    """6983: the PIN or key is blocked (too many wrong tries)."""

    default_remedy = (
        "a PIN locked after 6 wrong tries is unblocked (解锁) at the window with the card and "
        "the holder's ID; a blocked card key cannot be unblocked: the card is broken "
        "(replacement, 补换卡)"
    )


class VerificationFailed(CardStatusError):
    """63Cx: wrong PIN or cryptogram; `tries_left` more attempts before it blocks."""

    default_remedy = (
        "check the PIN (or, for a card key, that the key module (PSAM) is this city's); every "
        "wrong try counts and the last one locks it"
    )

    @property
    def tries_left(self) -> int:
        return self.sw & 0x0F


class ReferenceDataInvalid(CardStatusError):
    default_remedy = "the card's challenge was used up or missing: try again; " + \
        "if it persists, " + REREAD_CARD


class ConditionsNotSatisfied(CardStatusError):
    default_remedy = "the card refused the command in its present state: " + REREAD_CARD + \
        " and repeat the operation; if it persists, " + CHECK_CARD_STATUS


class FileNotFound(CardStatusError):
    default_remedy = (
        "the card lacks a file the station needs (a temporary card has no bank application): "
        "check that this is the right kind of card for the operation"
    )


class RecordNotFound(CardStatusError):
    default_remedy = (
        "the card lacks a record the station needs (a blank card holds no holder data yet): "
        "check that this is the right card for the operation"
    )


class IncorrectParameters(CardStatusError):
    default_remedy = CARD_MISMATCH


class FunctionNotSupported(CardStatusError):
    default_remedy = (
        "the card does not offer this function or its application is locked: " +
        CHECK_CARD_STATUS
    )


class ApplicationLocked(CardStatusError):
    default_remedy = (
        "the card cannot be used any more: it is treated as broken (replacement, 补换卡); "
        "check its status in the CMS"
    )


class MemoryFailure(CardStatusError):
    default_remedy = (
        "the chip is damaged: do not issue or hand out this card; a blank card goes to the "
        "reject box and a new one is used; a holder's card is treated as broken (replacement, "
        "补换卡)"
    )


# sw -> (class, meaning, remedy or None for the class's default)
SW_TABLE: dict[int, tuple[type[CardStatusError], str, str | None]] = {
    0x6581: (MemoryFailure, "memory failure", None),
    0x6700: (WrongLength, "wrong length", None),
    0x6981: (ConditionsNotSatisfied, "command incompatible with file structure", CARD_MISMATCH),
    0x6982: (SecurityNotSatisfied, "security status not satisfied", None),
    0x6983: (AuthenticationBlocked, "authentication method blocked", None),
    0x6984: (ReferenceDataInvalid, "reference data invalid (random number used or missing)",
             None),
    0x6985: (ConditionsNotSatisfied, "conditions of use not satisfied", None),
    0x6986: (ConditionsNotSatisfied, "command not allowed: no current EF",
             "station and card got out of step: " + REREAD_CARD + " and repeat the operation"),
    0x6988: (SecurityNotSatisfied, "secure messaging data or MAC incorrect",
             "the card did not accept the key module's MAC: check that the key module (PSAM) "
             "is this city's, then try again"),
    0x6A80: (IncorrectParameters, "incorrect data field",
             "the card refused the data sent (for a PIN: 4 to 16 digits, not 123456): check "
             "it and try again; if it persists, " + CARD_MISMATCH),
    0x6A81: (FunctionNotSupported, "function not supported or application locked", None),
    0x6A82: (FileNotFound, "file not found", None),
    0x6A83: (RecordNotFound, "record not found", None),
    0x6A86: (IncorrectParameters, "incorrect P1 P2", None),
    0x6A88: (ReferenceDataInvalid, "referenced key not found",
             "the card lacks the key the station uses: " + CARD_MISMATCH),
    0x6D00: (FunctionNotSupported, "instruction not supported",
             "the card does not know this command: " + CARD_MISMATCH),
    0x6E00: (FunctionNotSupported, "class not supported",
             "the card does not know this command: " + CARD_MISMATCH),
    0x9303: (ApplicationLocked, "application permanently locked", None),
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
    return SW_TABLE.get(sw, (CardStatusError, "unknown status", None))[1]


def raise_for_sw(sw: int, command: str = "", reader: str | None = None) -> None:
    """Raise the typed error for a non-9000 status word."""
    if sw == 0x9000:
        return
    if sw & 0xFFF0 == 0x63C0:
        raise VerificationFailed(sw, sw_meaning(sw), command, reader=reader)
    cls, _, remedy = SW_TABLE.get(sw, (CardStatusError, "", None))
    raise cls(sw, sw_meaning(sw), command, remedy=remedy, reader=reader)
