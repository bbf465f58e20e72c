"""`Ga467Reader`: the host side of the GA 467 resident-ID-card reader (ssc-chip.md §12).

The reader hangs on a serial line (115200 8N1 by default, ssc-chip.md §12); any pyserial URL
works (`/dev/ttyUSB0`, `/dev/pts/N` of the simulator, `socket://host:port`, `loop://`).
One command, one reply: the driver clears stale input, writes the frame, then reads exactly
one reply, checking preamble, LEN, CHK and the data length the command implies.

Logging: frames are logged at DEBUG as spaced hex (`AA AA AA 96 69 ...`, which the log
redaction leaves alone), except card-data replies (read text/photo and the
appended address), which are logged by size and status only, so no ID number (not even in its
UCS-2 encoding) reaches a log.
"""

from __future__ import annotations

import logging
import struct
from types import TracebackType

import serial
from construct import ChecksumError, ConstructError

from cardstation.drivers.idreader import frames as fr
from cardstation.drivers.idreader.card import IdCard, UnknownCardTypeFlag
from cardstation.drivers.idreader.errors import (
    FrameError,
    NoCard,
    PortUnavailable,
    ReaderNotResponding,
    ReplyStatusError,
    UnknownCardType,
    error_for,
)
from cardstation.drivers.redaction import redact

log = logging.getLogger(__name__)

_TermiosError: type[Exception]
try:  # termios errors (tcflush on a vanished pty) are not OSError subclasses
    from termios import error as _TermiosError
except ImportError:  # pragma: no cover - Windows
    _TermiosError = OSError

#: What a serial line raises when the device is gone or the line fails.
_LINE_ERRORS = (serial.SerialException, OSError, _TermiosError)

#: Default time to wait for a reply. A real reader answers a read-card in well under a second.
DEFAULT_TIMEOUT = 3.0
#: Commands whose reply data is card data: logged by size only.
_SENSITIVE = {fr.Command.READ_TEXT_PHOTO, fr.Command.READ_TEXT_PHOTO_FP,
              fr.Command.READ_APPENDED_ADDRESS, fr.Command.READ_MANAGEMENT_INFO}


def format_sam_id(raw: bytes) -> str:
    """Format the 16-byte SAM ID as printed by vendor tools: `05.01-20101022-0003085766-...`.

    [I] The byte layout (two little-endian 16-bit fields, three little-endian 32-bit fields) is
    inferred from vendor tool output, not stated in ssc-chip.md §12, which only confirms the
    command `12 FF`.
    """
    if len(raw) != fr.SAM_ID_SIZE:
        raise ValueError(f"SAM ID has {len(raw)} bytes, expected {fr.SAM_ID_SIZE}")
    a, b, c, d, e = struct.unpack("<HHIII", raw)
    return f"{a:02d}.{b:02d}-{c:08d}-{d:010d}-{e:010d}"


class Ga467Reader:
    """A GA 467 ID-card reader on a serial line. Use as a context manager or call close()."""

    def __init__(self, port_or_url: str, baudrate: int = 115200,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.port = port_or_url
        self.timeout = timeout
        try:
            self._serial = serial.serial_for_url(
                port_or_url, baudrate=baudrate, timeout=timeout, write_timeout=timeout
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortUnavailable(
                f"{PortUnavailable.operator_message} ({port_or_url}: {redact(str(exc))})"
            ) from None
        log.debug("opened ID-card reader on %s at %d baud", port_or_url, baudrate)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the serial line."""
        self._serial.close()

    def __enter__(self) -> Ga467Reader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def baudrate(self) -> int:
        return int(self._serial.baudrate)

    # -- commands --------------------------------------------------------------------------

    def reset_sam(self) -> None:
        """Reset the SAM (`10 FF`, success SW3 90, ssc-chip.md §12)."""
        self._transact(fr.Command.RESET_SAM, expect_len=0)

    def sam_status(self) -> None:
        """SAM self-check (`11 FF`): returns on SW3 90, raises SamSelfTestFailed on 60 (§12)."""
        self._transact(fr.Command.SAM_STATUS, expect_len=0)

    def sam_id(self) -> str:
        """Read the SAM ID (`12 FF`, §12) and format it (see format_sam_id)."""
        return format_sam_id(self._transact(fr.Command.READ_SAM_ID, expect_len=fr.SAM_ID_SIZE))

    def find_card(self) -> bool:
        """Find card (`20 01`): True on SW3 9F, False on 80 (no card), §12."""
        try:
            self._transact(fr.Command.FIND_CARD, ok=fr.Sw3.FIND_OK, expect_len=fr.FIND_DATA_SIZE)
        except NoCard:
            return False
        return True

    def select_card(self) -> bytes:
        """Select card (`20 02`): the 8-byte serial number on SW3 90; SelectFailed on 81 (§12)."""
        return self._transact(fr.Command.SELECT_CARD, expect_len=fr.SELECT_SN_SIZE)

    def read_card(self, with_fingerprint: bool = False) -> IdCard:
        """Read text + photo (`30 01`) or text + photo + fingerprint (`30 10`), §12.

        The reply data is `0100 0400 [0400] <256 text> <1024 WLT photo> [<1024 fingerprint>]`;
        declared lengths that disagree with the layout raise FrameError.
        """
        command = fr.Command.READ_TEXT_PHOTO_FP if with_fingerprint else fr.Command.READ_TEXT_PHOTO
        data = self._transact(command)
        layout = fr.CardDataFp if with_fingerprint else fr.CardData
        sizes = [fr.TEXT_SIZE, fr.PHOTO_SIZE] + ([fr.FINGERPRINT_SIZE] if with_fingerprint else [])
        header = 2 * len(sizes)
        if len(data) < header:
            raise FrameError(f"read-card reply carries {len(data)} data bytes, too short for its "
                             f"{header}-byte length header")
        declared = list(struct.unpack(f">{len(sizes)}H", data[:header]))
        if declared != sizes:
            raise FrameError(
                "read-card reply declares block lengths "
                + "/".join(f"{n:04X}" for n in declared)
                + ", expected " + "/".join(f"{n:04X}" for n in sizes)
            )
        if len(data) != header + sum(sizes):
            raise FrameError(f"read-card reply carries {len(data)} data bytes, "
                             f"expected {header + sum(sizes)}")
        parsed = layout.parse(data)
        try:
            card = IdCard.from_blocks(parsed.text, parsed.photo,
                                      parsed.fingerprint if with_fingerprint else None)
        except UnknownCardTypeFlag as exc:
            raise UnknownCardType(f"{UnknownCardType.operator_message} ({exc})",
                                  command="read card") from None
        log.info("read ID card %s", card.masked_id_number)
        return card

    def read_appended_addresses(self) -> list[str]:
        """Read the appended (changed) addresses (`30 03`): up to four of 70 bytes UCS-2 LE,
        oldest first (ssc-chip.md corrections: up to 280 bytes; §12 said 70).

        A card without one answers SW3 91 (NoSuchItem).
        """
        data = self._transact(fr.Command.READ_APPENDED_ADDRESS)
        size = fr.APPENDED_ADDRESS_SIZE
        if not data or len(data) > fr.APPENDED_ADDRESS_MAX or len(data) % size:
            raise FrameError(f"appended-address reply carries {len(data)} data bytes, expected "
                             f"{size}, {2 * size}, {3 * size} or {4 * size}")
        texts = (data[i : i + size].decode("utf-16-le", errors="replace").rstrip(" \x00")
                 for i in range(0, len(data), size))
        return [text for text in texts if text]

    def read_appended_address(self) -> str:
        """The current appended address: the last of `read_appended_addresses` ("" if all
        are blank). A card without one answers SW3 91 (NoSuchItem)."""
        addresses = self.read_appended_addresses()
        return addresses[-1] if addresses else ""

    def read_management_info(self) -> bytes:
        """Read the card management information (`30 05`, 28 bytes, content opaque;
        ssc-chip.md corrections)."""
        return self._transact(fr.Command.READ_MANAGEMENT_INFO,
                              expect_len=fr.MANAGEMENT_INFO_SIZE)

    def set_max_rf_frame(self, size: int) -> None:
        """`61 FF xx`: set the reader's maximum RF frame bytes, as real SDKs do when they
        initialise the reader (ssc-chip.md corrections). Success is SW3 90."""
        if not 0 <= size <= 0xFF:
            raise ValueError("the maximum RF frame size is one byte")
        self._transact(fr.Command.SET_MAX_RF_FRAME, data=bytes([size]), expect_len=0)

    def set_baud(self, rate: int) -> None:
        """Switch the reader's line speed (`60 xx`, §12) and then this port's to match."""
        if rate not in fr.BAUD_CODES:
            raise ValueError(f"unsupported rate {rate}; choose one of {sorted(fr.BAUD_CODES)}")
        self._transact(fr.Command.SET_BAUD, para=fr.BAUD_CODES[rate], expect_len=0)
        self._serial.baudrate = rate
        log.debug("ID-card reader now at %d baud", rate)

    def read_id_card(self, with_fingerprint: bool = False) -> IdCard:
        """The usual sequence: find card, select card, read. NoCard if nothing is on the reader."""
        if not self.find_card():
            raise NoCard(command="find card")
        self.select_card()
        return self.read_card(with_fingerprint=with_fingerprint)

    # -- framing ---------------------------------------------------------------------------

    def _transact(self, command: fr.Command, para: int | None = None, ok: int = fr.Sw3.OK,
                  expect_len: int | None = None, data: bytes = b"") -> bytes:
        name = command.name.lower().replace("_", " ")
        frame = fr.build_command(command, para, data)
        try:
            self._serial.reset_input_buffer()
            self._serial.write(frame)
            self._serial.flush()
        except _LINE_ERRORS as exc:
            raise ReaderNotResponding(
                f"{ReaderNotResponding.operator_message} (sending {name} on {self.port} "
                f"failed: {redact(str(exc))})"
            ) from None
        log.debug("-> %s %s", name, frame.hex(" ").upper())
        sw1, sw2, sw3, data, raw = self._read_reply(name)
        if command in _SENSITIVE:
            log.debug("<- %s %d bytes SW=%02X%02X%02X (card data not logged)",
                      name, len(raw), sw1, sw2, sw3)
        else:
            log.debug("<- %s %s", name, raw.hex(" ").upper())
        if (sw1, sw2) != (0, 0):  # SW1 SW2 are 00 00 in every good reply (ssc-chip.md corr.)
            raise ReplyStatusError(sw1, sw2, sw3, command=name)
        if sw3 != ok:
            raise error_for(sw3, command=name)
        if expect_len is not None and len(data) != expect_len:
            raise FrameError(
                f"reply to {name} carries {len(data)} data bytes, expected {expect_len}"
            )
        return data

    def _read(self, n: int, name: str) -> bytes:
        try:
            return bytes(self._serial.read(n))
        except _LINE_ERRORS as exc:
            raise ReaderNotResponding(
                f"{ReaderNotResponding.operator_message} (waiting for the reply to {name} on "
                f"{self.port}: {redact(str(exc))})"
            ) from None

    def _read_reply(self, name: str) -> tuple[int, int, int, bytes, bytes]:
        # Hunt for the preamble; bytes before it are line noise and skipped.
        window = self._read(len(fr.PREAMBLE), name)
        skipped = 0
        while window != fr.PREAMBLE:
            if len(window) < len(fr.PREAMBLE):
                if not window and not skipped:
                    raise ReaderNotResponding(
                        f"{ReaderNotResponding.operator_message} (no reply to {name} on "
                        f"{self.port} within {self.timeout:g} s)"
                    )
                raise FrameError(
                    f"reply to {name}: no frame preamble AAAAAA9669 in "
                    f"{skipped + len(window)} bytes received before the timeout"
                )
            if skipped > fr.REPLY_MAX_LEN:
                raise FrameError(f"reply to {name}: no frame preamble in {skipped} bytes")
            window = window[1:] + self._read(1, name)
            skipped += 1
        if skipped:
            log.debug("skipped %d bytes of noise before the reply to %s", skipped, name)
        head = self._read(2, name)
        if len(head) < 2:
            raise FrameError(f"reply to {name} truncated after the preamble (no LEN field)")
        (length,) = struct.unpack(">H", head)
        if length < fr.REPLY_MIN_LEN:
            raise FrameError(f"reply to {name} has length field {length}, below the minimum "
                             f"{fr.REPLY_MIN_LEN} (SW1 SW2 SW3 CHK)")
        if length > fr.REPLY_MAX_LEN:
            raise FrameError(f"reply to {name} has length field {length}, above the maximum "
                             f"{fr.REPLY_MAX_LEN} of any GA 467 reply")
        rest = self._read(length, name)
        if len(rest) < length:
            raise FrameError(f"reply to {name} truncated: length field says {length} bytes, "
                             f"{len(rest)} arrived before the timeout")
        raw = fr.PREAMBLE + head + rest
        try:
            reply = fr.ReplyFrame.parse(raw)
        except ChecksumError:
            computed = fr.xor8(raw[len(fr.PREAMBLE):-1])
            raise FrameError(f"reply to {name} has checksum {raw[-1]:02X}, computed "
                             f"{computed:02X} (corrupted on the line?)") from None
        except ConstructError as exc:  # pragma: no cover - the checks above catch the rest
            raise FrameError(f"reply to {name} malformed: {type(exc).__name__}") from None
        body = reply.body.value
        return body.sw1, body.sw2, body.sw3, bytes(body.data), raw
