"""GA 467 resident-ID-card reader framing, declared with `construct` (ssc-chip.md §12).

Confirmed by ssc-chip.md §12 [C2 S14]:

* host -> reader: ``AA AA AA 96 69 | LEN (2, big-endian) | CMD | PARA | data | CHK`` with
  LEN = 1 (CMD) + 1 (PARA) + len(data) + 1 (CHK);
* reader -> host: ``AA AA AA 96 69 | LEN (2) | SW1 SW2 SW3 | data | CHK`` with
  LEN = 3 + len(data) + 1;
* CHK = XOR of every byte from the first LEN byte through the last data byte;
* the read-card reply data is ``text length (2) | photo length (2) [| fingerprint length (2)]``
  followed by the 256-byte text block, the 1024-byte WLT photo [and 1024 bytes of fingerprint].
"""

from __future__ import annotations

from enum import IntEnum
from functools import reduce

from construct import (
    Bytes,
    Const,
    Int8ub,
    Int16ub,
    RawCopy,
    Rebuild,
    Struct,
    len_,
    this,
)
from construct import Checksum as _Checksum

#: The five-byte frame preamble of both directions (ssc-chip.md §12).
PREAMBLE = bytes.fromhex("AAAAAA9669")
#: Bytes before the part counted by LEN: preamble + LEN itself.
HEADER_SIZE = len(PREAMBLE) + 2
#: LEN of a command without data: CMD + PARA + CHK.
COMMAND_MIN_LEN = 3
#: LEN of a reply without data: SW1 + SW2 + SW3 + CHK.
REPLY_MIN_LEN = 4
#: Largest LEN a reply can carry: text + photo + fingerprint (0x090A, ssc-chip.md §12).
REPLY_MAX_LEN = 0x090A
#: Largest LEN a host frame carries (commands have at most a one-byte parameter; margin kept).
COMMAND_MAX_LEN = 0x0040

TEXT_SIZE = 256
PHOTO_SIZE = 1024
FINGERPRINT_SIZE = 1024
SELECT_SN_SIZE = 8
FIND_DATA_SIZE = 4
SAM_ID_SIZE = 16
APPENDED_ADDRESS_SIZE = 70
#: `30 03` answers up to four appended addresses of 70 bytes (ssc-chip.md corrections, from
#: public GA 467 SDK reimplementations; the reference's §12 said one address of 70).
APPENDED_ADDRESS_MAX = 4 * APPENDED_ADDRESS_SIZE
#: `30 05` card management information (ssc-chip.md corrections): 28 bytes, content opaque.
MANAGEMENT_INFO_SIZE = 28


def xor8(data: bytes) -> int:
    """XOR of all bytes: the GA 467 check byte (ssc-chip.md §12)."""
    return reduce(lambda acc, b: acc ^ b, data, 0)


class Command(IntEnum):
    """CMD byte followed by PARA byte, as one 16-bit value (ssc-chip.md §12)."""

    RESET_SAM = 0x10FF
    SAM_STATUS = 0x11FF
    READ_SAM_ID = 0x12FF
    FIND_CARD = 0x2001
    SELECT_CARD = 0x2002
    READ_TEXT_PHOTO = 0x3001
    READ_TEXT_PHOTO_FP = 0x3010
    READ_APPENDED_ADDRESS = 0x3003
    READ_MANAGEMENT_INFO = 0x3005
    #: `61 FF xx`: set the maximum RF frame bytes (data: one byte), sent by real SDKs when they
    #: initialise the reader; success SW3 90 (ssc-chip.md corrections).
    SET_MAX_RF_FRAME = 0x61FF
    SET_BAUD = 0x6000  # the PARA byte carries the rate code, see BAUD_CODES

    @property
    def cmd(self) -> int:
        return self.value >> 8

    @property
    def para(self) -> int:
        return self.value & 0xFF


#: Set-baud PARA values (ssc-chip.md §12).
BAUD_CODES: dict[int, int] = {115200: 0x00, 57600: 0x01, 38400: 0x02, 19200: 0x03, 9600: 0x04}


class Sw3(IntEnum):
    """Every SW3 status code of ssc-chip.md §12."""

    OK = 0x90
    NO_SUCH_ITEM = 0x91
    FIND_OK = 0x9F
    CHECKSUM_ERROR = 0x10
    LENGTH_ERROR = 0x11
    COMMAND_ERROR = 0x21
    UNAUTHORIZED = 0x23
    UNKNOWN_ERROR = 0x24
    CARD_TO_SAM_AUTH_FAIL = 0x31
    SAM_TO_CARD_AUTH_FAIL = 0x32
    INFO_VERIFY_FAIL = 0x33
    FINGERPRINT_VERIFY_ERROR = 0x37
    INFO_LENGTH_ERROR = 0x3F
    UNKNOWN_CARD_TYPE = 0x40
    READ_FAIL = 0x41
    RANDOM_FAIL = 0x47
    SAM_SELF_TEST_FAIL = 0x60
    SAM_NOT_AUTHORIZED = 0x66
    FIND_FAIL = 0x80
    SELECT_FAIL = 0x81


_CommandBody = Struct(
    "length" / Rebuild(Int16ub, len_(this.data) + COMMAND_MIN_LEN),
    "cmd" / Int8ub,
    "para" / Int8ub,
    "data" / Bytes(this.length - COMMAND_MIN_LEN),
)

#: Host -> reader frame. Parsing raises construct's ChecksumError on a bad CHK.
CommandFrame = Struct(
    "preamble" / Const(PREAMBLE),
    "body" / RawCopy(_CommandBody),
    "chk" / _Checksum(Int8ub, xor8, this.body.data),
)

_ReplyBody = Struct(
    "length" / Rebuild(Int16ub, len_(this.data) + REPLY_MIN_LEN),
    "sw1" / Int8ub,
    "sw2" / Int8ub,
    "sw3" / Int8ub,
    "data" / Bytes(this.length - REPLY_MIN_LEN),
)

#: Reader -> host frame. Parsing raises construct's ChecksumError on a bad CHK.
ReplyFrame = Struct(
    "preamble" / Const(PREAMBLE),
    "body" / RawCopy(_ReplyBody),
    "chk" / _Checksum(Int8ub, xor8, this.body.data),
)

#: Data of a successful read text+photo (30 01) reply: 0100 0400 <256> <1024>.
CardData = Struct(
    "text_len" / Rebuild(Int16ub, len_(this.text)),
    "photo_len" / Rebuild(Int16ub, len_(this.photo)),
    "text" / Bytes(this.text_len),
    "photo" / Bytes(this.photo_len),
)

#: Data of a successful read text+photo+fingerprint (30 10) reply: 0100 0400 0400 <...>.
CardDataFp = Struct(
    "text_len" / Rebuild(Int16ub, len_(this.text)),
    "photo_len" / Rebuild(Int16ub, len_(this.photo)),
    "fp_len" / Rebuild(Int16ub, len_(this.fingerprint)),
    "text" / Bytes(this.text_len),
    "photo" / Bytes(this.photo_len),
    "fingerprint" / Bytes(this.fp_len),
)


def build_command(command: Command | int, para: int | None = None, data: bytes = b"") -> bytes:
    """Encode a host frame. `command` is a Command (CMD and PARA) or a bare CMD byte with `para`.

    >>> build_command(Command.FIND_CARD).hex().upper()
    'AAAAAA96690003200122'
    """
    if isinstance(command, Command):
        cmd, par = command.cmd, command.para if para is None else para
    else:
        cmd, par = command, 0 if para is None else para
    body = {"cmd": cmd, "para": par, "data": data}
    return CommandFrame.build({"body": {"value": body}})


def build_reply(sw3: int, data: bytes = b"", sw1: int = 0, sw2: int = 0) -> bytes:
    """Encode a reader reply (the simulator's side). SW1 SW2 are 00 00 in every §12 sample;
    a reply whose SW1 SW2 are anything else has failed (ssc-chip.md corrections).

    >>> build_reply(Sw3.FIND_FAIL).hex().upper()
    'AAAAAA9669000400008084'
    """
    body = {"sw1": sw1, "sw2": sw2, "sw3": sw3, "data": data}
    return ReplyFrame.build({"body": {"value": body}})


def build_card_data(text: bytes, photo: bytes, fingerprint: bytes | None = None) -> bytes:
    """Encode the data part of a read-card reply (text, photo, optional fingerprint)."""
    if fingerprint is None:
        return CardData.build({"text": text, "photo": photo})
    return CardDataFp.build({"text": text, "photo": photo, "fingerprint": fingerprint})
