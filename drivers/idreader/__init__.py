"""GA 467 resident-ID-card reader over a serial line (ssc-chip.md §12).

    from cardstation.drivers.idreader import Ga467Reader
    with Ga467Reader("/dev/ttyUSB0") as reader:
        card = reader.read_id_card()     # find + select + read text and photo
        print(card)                      # repr masks the ID number
"""

from cardstation.drivers.idreader.card import NATION_LABELS, SEX_LABELS, IdCard
from cardstation.drivers.idreader.errors import (
    SW3_ERRORS,
    CardAuthFailed,
    CommandRejected,
    FingerprintVerifyError,
    FrameError,
    HostChecksumError,
    HostLengthError,
    IdReaderError,
    InfoLengthError,
    InfoVerifyFailed,
    NoCard,
    NoSuchItem,
    PortUnavailable,
    RandomFailed,
    ReaderNotResponding,
    ReaderStatusError,
    ReadFailed,
    ReplyStatusError,
    SamAuthFailed,
    SamNotAuthorized,
    SamSelfTestFailed,
    SelectFailed,
    Unauthorized,
    UnknownCardType,
    UnknownReaderError,
)
from cardstation.drivers.idreader.frames import BAUD_CODES, Command, Sw3
from cardstation.drivers.idreader.reader import Ga467Reader

__all__ = [
    "BAUD_CODES",
    "NATION_LABELS",
    "SEX_LABELS",
    "SW3_ERRORS",
    "CardAuthFailed",
    "Command",
    "CommandRejected",
    "FingerprintVerifyError",
    "FrameError",
    "Ga467Reader",
    "HostChecksumError",
    "HostLengthError",
    "IdCard",
    "IdReaderError",
    "InfoLengthError",
    "InfoVerifyFailed",
    "NoCard",
    "NoSuchItem",
    "PortUnavailable",
    "RandomFailed",
    "ReadFailed",
    "ReaderNotResponding",
    "ReaderStatusError",
    "ReplyStatusError",
    "SamAuthFailed",
    "SamNotAuthorized",
    "SamSelfTestFailed",
    "SelectFailed",
    "Sw3",
    "Unauthorized",
    "UnknownCardType",
    "UnknownReaderError",
]
