"""The simulated GA 467 ID-card reader: a device model answering §12 frames byte for byte.

Confirmed wire facts come from ssc-chip.md §12 (frame layout, command bytes, SW3 codes, the
find/select/read replies and their lengths). Where §12 is silent the simulator makes a choice,
marked [P]: the select serial number is 8 zero bytes (this gives the checksum 9C shown in §12);
a read without a selected card answers 41; a card without fingerprint data answers 91 to 30 10;
a card without an appended address answers 91 to 30 03; the 28 bytes of card management
information (30 05) are deterministic filler; the maximum RF frame size set by 61 FF xx is
kept but changes nothing. From the reference's corrections (public GA 467 SDK
reimplementations): 30 03 answers up to four addresses of 70 bytes; 61 FF xx answers SW3 90.
Permits (HK/Macao/Taiwan 'J', foreigner 'I' 2017 and 'Y' 2023) are placed like any card: the
text block carries their layout (drivers/idreader/card.py).

The sample card is a GENERATED person, never a real one: the ID number is the GB 11643 worked
example 11010519491231002X and the photo is deterministic filler, not WLT.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
from dataclasses import replace

from cardstation.drivers.idreader import frames as fr
from cardstation.drivers.idreader.card import IdCard
from cardstation.drivers.redaction import mask_id_number

log = logging.getLogger(__name__)

#: Faults `inject` accepts. All stay until `clear_faults`, except corrupt_frame (next reply only).
FAULTS = frozenset(
    {"no_card", "sam_failure", "corrupt_frame", "auth_fail", "read_fail", "sam_not_authorized",
     "no_reply"}
)

SAMPLE_ID_NUMBER = "11010519491231002X"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_check_char(first17: str) -> str:
    """GB 11643 check character of the first 17 digits."""
    return "10X98765432"[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def filler(seed: str, size: int) -> bytes:
    """Deterministic filler bytes (a SHA-256 chain of `seed`); stands in for WLT/fingerprint."""
    out = bytearray()
    block = seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def make_permit(card_type: str, number: str | None = None) -> IdCard:
    """A generated permit of `card_type` ('J', 'I' or 'Y'), never a real person.

    J: an 18-character number with an 81/82/83 address code; I: a 15-character number (three
    letters of the nationality, then 12 digits); Y: an 18-character number starting with 9.
    """
    base = make_card()
    if card_type == "J":
        number = number or _with_check("81000019900101002")
        return replace(base, card_type="J", id_number=number, nation="",
                       birth_date=number[6:14], sex=_sex_of(number),
                       issuer="公安部出入境管理局", pass_number="H01234567", issue_count="01")
    if card_type == "I":
        number = number or "USA110090010100"
        return replace(base, card_type="I", id_number=number, name="李约翰", nation="",
                       address="", issuer="", english_name="SMITH, JOHN", nationality="USA",
                       birth_date="19900101", card_version="01", authority_code="1100")
    if card_type == "Y":
        number = number or _with_check("91184019900101002")
        return replace(base, card_type="Y", id_number=number, name="李约翰", nation="",
                       address="", issuer="", birth_date=number[6:14], sex=_sex_of(number),
                       english_name="SMITH, JOHN WILLIAM ALEXANDER MAXIMILIAN",
                       nationality="USA", renewal_count="00", previous_number_link="")
    raise ValueError(f"unknown permit type {card_type!r}; choose J, I or Y")


def _with_check(body17: str) -> str:
    return body17 + id_check_char(body17)


def _sex_of(number: str) -> str:
    return "1" if int(number[16]) % 2 else "2"


def make_card(id_number: str = SAMPLE_ID_NUMBER, name: str = "李秀英") -> IdCard:
    """A generated card for `id_number`: birth date and sex follow from the number itself.

    Raises ValueError for a number that is not 17 digits plus a correct check character.
    """
    id_number = id_number.upper()
    if len(id_number) != 18 or not id_number[:17].isdigit():
        raise ValueError(f"not an 18-character ID number: {mask_id_number(id_number)}")
    if id_check_char(id_number[:17]) != id_number[17]:
        raise ValueError(f"wrong check character in ID number {mask_id_number(id_number)}")
    return IdCard(
        name=name,
        sex="1" if int(id_number[16]) % 2 else "2",
        nation="01",
        birth_date=id_number[6:14],
        address="北京市朝阳区示例路1号院2号楼3单元401室",
        id_number=id_number,
        issuer="北京市公安局朝阳分局",
        valid_from="20150101",
        valid_to="长期",
        photo_wlt=filler("photo:" + id_number, fr.PHOTO_SIZE),
        fingerprint=filler("fingerprint:" + id_number, fr.FINGERPRINT_SIZE),
    )


#: The default card on the simulated reader (generated person, GB 11643 example number).
SAMPLE_CARD = make_card()

#: [P] SAM ID bytes: formats as 05.01-20150101-0000123456-0000654321.
SAMPLE_SAM_ID = struct.pack("<HHIII", 5, 1, 20150101, 123456, 654321)


class IdReaderModel:
    """Device state plus `handle(frame) -> reply`. Thread-safe: tests poke it while it serves."""

    def __init__(self, card: IdCard | None = SAMPLE_CARD,
                 appended_address: str | list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.card = card
        self.appended_address = appended_address
        self.max_rf_frame: int | None = None
        self.management_info = filler("management", fr.MANAGEMENT_INFO_SIZE)
        self.faults: set[str] = set()
        self.baudrate = 115200
        self.selected = False
        self.found = False
        self.sam_id = SAMPLE_SAM_ID
        #: Every complete host frame received, in order (for tests to check what was sent).
        self.received: list[bytes] = []
        #: Every reply written, in order.
        self.sent: list[bytes] = []

    # -- control (the simulator's own API, never device opcodes) ---------------------------

    def place(self, card: IdCard, appended_address: str | list[str] | None = None) -> None:
        """Put `card` on the reader; `appended_address` is one address or up to four."""
        with self._lock:
            self.card = card
            self.appended_address = appended_address
            self.found = self.selected = False

    def remove(self) -> None:
        with self._lock:
            self.card = None
            self.appended_address = None
            self.found = self.selected = False

    def inject(self, fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {sorted(FAULTS)}")
        with self._lock:
            self.faults.add(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    # -- protocol ------------------------------------------------------------------------

    def handle(self, frame: bytes) -> bytes | None:
        """Answer one complete host frame (preamble through CHK); None = stay silent."""
        with self._lock:
            self.received.append(bytes(frame))
            if "no_reply" in self.faults:
                return None
            reply = self._answer(frame)
            if "corrupt_frame" in self.faults:
                self.faults.discard("corrupt_frame")
                reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
            self.sent.append(reply)
            return reply

    def length_error(self) -> bytes:
        """The reply to a frame whose LEN cannot be right (SW3 11)."""
        with self._lock:
            reply = fr.build_reply(fr.Sw3.LENGTH_ERROR)
            self.sent.append(reply)
            return reply

    def _answer(self, frame: bytes) -> bytes:
        body = frame[len(fr.PREAMBLE):-1]
        if fr.xor8(body) != frame[-1]:
            return fr.build_reply(fr.Sw3.CHECKSUM_ERROR)
        cmd, para, data = frame[7], frame[8], frame[9:-1]
        if (cmd << 8) | para == fr.Command.SET_MAX_RF_FRAME:
            if len(data) != 1:
                return fr.build_reply(fr.Sw3.LENGTH_ERROR)
            self.max_rf_frame = data[0]
            return fr.build_reply(fr.Sw3.OK)
        if cmd == fr.Command.SET_BAUD.cmd:
            rates = {code: rate for rate, code in fr.BAUD_CODES.items()}
            if para not in rates:
                return fr.build_reply(fr.Sw3.COMMAND_ERROR)
            if data:
                return fr.build_reply(fr.Sw3.LENGTH_ERROR)
            self.baudrate = rates[para]
            return fr.build_reply(fr.Sw3.OK)
        try:
            command = fr.Command((cmd << 8) | para)
        except ValueError:
            return fr.build_reply(fr.Sw3.COMMAND_ERROR)
        if data:
            return fr.build_reply(fr.Sw3.LENGTH_ERROR)
        return self._dispatch(command)

    def _sam_fault(self, include_not_authorized: bool = True) -> int | None:
        if "sam_failure" in self.faults:
            return fr.Sw3.SAM_SELF_TEST_FAIL
        if include_not_authorized and "sam_not_authorized" in self.faults:
            return fr.Sw3.SAM_NOT_AUTHORIZED
        return None

    def _dispatch(self, command: fr.Command) -> bytes:
        C, S = fr.Command, fr.Sw3
        card = None if "no_card" in self.faults else self.card
        if command in (C.RESET_SAM, C.SAM_STATUS, C.READ_SAM_ID):
            fault = self._sam_fault(include_not_authorized=command is not C.RESET_SAM)
            if fault is not None:
                return fr.build_reply(fault)
            if command is C.RESET_SAM:
                self.found = self.selected = False
            return fr.build_reply(S.OK, self.sam_id if command is C.READ_SAM_ID else b"")
        if command is C.FIND_CARD:
            if card is None:
                self.found = self.selected = False
                return fr.build_reply(S.FIND_FAIL)
            self.found = True
            return fr.build_reply(S.FIND_OK, bytes(fr.FIND_DATA_SIZE))
        if command is C.SELECT_CARD:
            if card is None or not self.found:
                self.selected = False
                return fr.build_reply(S.SELECT_FAIL)
            self.selected = True
            return fr.build_reply(S.OK, bytes(fr.SELECT_SN_SIZE))
        # Reads: text+photo, text+photo+fingerprint, appended address.
        fault = self._sam_fault()
        if fault is not None:
            return fr.build_reply(fault)
        if "auth_fail" in self.faults:
            return fr.build_reply(S.CARD_TO_SAM_AUTH_FAIL)
        if "read_fail" in self.faults or card is None or not self.selected:
            return fr.build_reply(S.READ_FAIL)
        if command is C.READ_MANAGEMENT_INFO:
            return fr.build_reply(S.OK, self.management_info)
        if command is C.READ_APPENDED_ADDRESS:
            if not self.appended_address:
                return fr.build_reply(S.NO_SUCH_ITEM)
            addresses = ([self.appended_address] if isinstance(self.appended_address, str)
                         else list(self.appended_address))
            raw = b""
            for address in addresses[:4]:  # up to four of 70 bytes
                one = address.encode("utf-16-le")[: fr.APPENDED_ADDRESS_SIZE]
                raw += one + " ".encode("utf-16-le") * ((fr.APPENDED_ADDRESS_SIZE - len(one)) // 2)
            return fr.build_reply(S.OK, raw)
        photo = card.photo_wlt.ljust(fr.PHOTO_SIZE, b"\x00")[: fr.PHOTO_SIZE]
        if command is C.READ_TEXT_PHOTO_FP:
            if card.fingerprint is None:
                return fr.build_reply(S.NO_SUCH_ITEM)
            fp = card.fingerprint.ljust(fr.FINGERPRINT_SIZE, b"\x00")[: fr.FINGERPRINT_SIZE]
            return fr.build_reply(S.OK, fr.build_card_data(card.to_text_block(), photo, fp))
        return fr.build_reply(S.OK, fr.build_card_data(card.to_text_block(), photo))


def card_without_fingerprint(card: IdCard) -> IdCard:
    """The same card with no fingerprint data (its 30 10 read answers 91)."""
    return replace(card, fingerprint=None)
