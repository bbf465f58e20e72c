"""Errors of the GA 467 ID-card reader: one class per SW3 status code of ssc-chip.md §12.

Every message is written for the operator at the desk. None carries card data: an ID number
never appears in an error (callers that add context pass it through
`cardstation.drivers.redaction.redact`).
"""

from __future__ import annotations

from cardstation.drivers.idreader.frames import Sw3


class IdReaderError(Exception):
    """Base of every ID-card reader error."""

    #: What the operator reads; subclasses give a default.
    operator_message = "the ID-card reader reported an error"


class ReaderNotResponding(IdReaderError):
    """No reply (or the serial line failed) within the timeout."""

    operator_message = (
        "the ID-card reader does not answer: check its cable and power, then try again"
    )


class PortUnavailable(ReaderNotResponding):
    """The serial port or URL cannot be opened."""

    operator_message = "the ID-card reader's serial port cannot be opened: check the cable"


class FrameError(IdReaderError):
    """A reply that is not a well-formed GA 467 frame (checksum, length, preamble, layout)."""

    operator_message = (
        "garbled reply from the ID-card reader: try again; if it repeats, check the cable"
    )


class ReaderStatusError(IdReaderError):
    """The reader answered with an SW3 status other than success."""

    sw3: int = -1
    operator_message = "the ID-card reader reported an unexpected status"

    def __init__(self, message: str | None = None, *, sw3: int | None = None,
                 command: str | None = None) -> None:
        if sw3 is not None:
            self.sw3 = sw3
        self.command = command
        text = message or self.operator_message
        where = f" ({command}: SW3={self.sw3:02X})" if command else f" (SW3={self.sw3:02X})"
        super().__init__(text + where)


class ReplyStatusError(ReaderStatusError):
    """A reply whose SW1 SW2 are not 00 00: the reader failed the command, whatever SW3 says
    (ssc-chip.md corrections, from public GA 467 SDK reimplementations)."""

    operator_message = (
        "the ID-card reader reported a failure: take the card off, put it back and try again"
    )

    def __init__(self, sw1: int, sw2: int, sw3: int, *, command: str | None = None) -> None:
        self.sw1, self.sw2 = sw1, sw2
        super().__init__(f"{self.operator_message} (SW1 SW2 = {sw1:02X} {sw2:02X})", sw3=sw3,
                         command=command)


class NoSuchItem(ReaderStatusError):
    sw3 = Sw3.NO_SUCH_ITEM
    operator_message = "the card holds no such item (for example no appended address)"


class HostChecksumError(ReaderStatusError):
    sw3 = Sw3.CHECKSUM_ERROR
    operator_message = (
        "the reader received a command with a bad checksum (line noise?): try again"
    )


class HostLengthError(ReaderStatusError):
    sw3 = Sw3.LENGTH_ERROR
    operator_message = "the reader received a command with a bad length field"


class CommandRejected(ReaderStatusError):
    sw3 = Sw3.COMMAND_ERROR
    operator_message = "the reader does not know this command (wrong reader model?)"


class Unauthorized(ReaderStatusError):
    sw3 = Sw3.UNAUTHORIZED
    operator_message = "the reader refused the command as unauthorized"


class UnknownReaderError(ReaderStatusError):
    sw3 = Sw3.UNKNOWN_ERROR
    operator_message = "the reader reported an unknown error: try again"


class CardAuthFailed(ReaderStatusError):
    sw3 = Sw3.CARD_TO_SAM_AUTH_FAIL
    operator_message = (
        "card-to-SAM authentication failed: the card may not be genuine or it moved; "
        "put it back flat on the reader and try again"
    )


class SamAuthFailed(ReaderStatusError):
    sw3 = Sw3.SAM_TO_CARD_AUTH_FAIL
    operator_message = (
        "SAM-to-card authentication failed: put the card back flat on the reader and try again"
    )


class InfoVerifyFailed(ReaderStatusError):
    sw3 = Sw3.INFO_VERIFY_FAIL
    operator_message = "the card's information failed verification: the card may be damaged"


class FingerprintVerifyError(ReaderStatusError):
    sw3 = Sw3.FINGERPRINT_VERIFY_ERROR
    operator_message = "fingerprint verification error"


class InfoLengthError(ReaderStatusError):
    sw3 = Sw3.INFO_LENGTH_ERROR
    operator_message = "the card's information has a wrong length: the card may be damaged"


class UnknownCardType(ReaderStatusError):
    sw3 = Sw3.UNKNOWN_CARD_TYPE
    operator_message = (
        "unknown card type: this is not a second-generation resident ID card"
    )


class ReadFailed(ReaderStatusError):
    sw3 = Sw3.READ_FAIL
    operator_message = "reading the card failed: keep the ID card still on the reader and retry"


class RandomFailed(ReaderStatusError):
    sw3 = Sw3.RANDOM_FAIL
    operator_message = "the reader could not get a random number from the card: try again"


class SamSelfTestFailed(ReaderStatusError):
    sw3 = Sw3.SAM_SELF_TEST_FAIL
    operator_message = (
        "the reader's security module (SAM) failed its self-test: the reader needs service"
    )


class SamNotAuthorized(ReaderStatusError):
    sw3 = Sw3.SAM_NOT_AUTHORIZED
    operator_message = (
        "the reader's security module (SAM) is not authorized: the reader needs activation "
        "by its supplier"
    )


class NoCard(ReaderStatusError):
    sw3 = Sw3.FIND_FAIL
    operator_message = "no ID card found: put the ID card on the reader"


class SelectFailed(ReaderStatusError):
    sw3 = Sw3.SELECT_FAIL
    operator_message = "selecting the ID card failed: put the card flat on the reader and retry"


#: SW3 -> exception class, for every non-success code of ssc-chip.md §12.
SW3_ERRORS: dict[int, type[ReaderStatusError]] = {
    cls.sw3: cls
    for cls in (
        NoSuchItem, HostChecksumError, HostLengthError, CommandRejected, Unauthorized,
        UnknownReaderError, CardAuthFailed, SamAuthFailed, InfoVerifyFailed,
        FingerprintVerifyError, InfoLengthError, UnknownCardType, ReadFailed, RandomFailed,
        SamSelfTestFailed, SamNotAuthorized, NoCard, SelectFailed,
    )
}


def error_for(sw3: int, command: str | None = None) -> ReaderStatusError:
    """The exception for a non-success SW3 (a generic ReaderStatusError for an unlisted code)."""
    cls = SW3_ERRORS.get(sw3)
    if cls is None:
        return ReaderStatusError(
            f"the ID-card reader answered with unknown status 0x{sw3:02X}", sw3=sw3,
            command=command,
        )
    return cls(command=command)
