"""Card-level API of the social security card (社会保障卡) over any ApduTransport.

Items of the SSSE files (ssc-chip.md sections 4-5): EF05 issuer data, EF06 holder data, each a
SIMPLE-TLV record read or written by tag with its SFI (`00 B2 <tag> <SFI<<3> Le`,
`00 DC <tag> <SFI<<3> Lc <tag> <len> <value>`). Authentication cryptograms are computed by the
caller's key service and handed in; this module never holds a key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .atr import historical_bytes
from .cardfiles import DEBIT_AID, ITEMS, PSE_NAME, SSSE_NAME, Format, Item
from .errors import RecordNotFound, SecurityNotSatisfied
from .security_state import SecurityState
from .tlv import find_ber, parse_simple_tlv
from .transport import ApduTransport

__all__ = ["ALGORITHM_NAMES", "DEBIT_AID", "ITEMS", "PSE_NAME", "SSSE_NAME", "BasicInfo",
           "Format", "Item", "SscCard", "bcd_pin", "decode_value", "encode_value"]
ALGORITHM_NAMES = {0x01: "3DES", 0x02: "SSF33", 0x03: "SM4"}  # meaning inferred (ssc-chip 3.1)

_DECIMAL = frozenset("0123456789")
_HEX = frozenset("0123456789ABCDEF")


def encode_value(item: Item, value: str | bytes) -> bytes:
    """Pad a value to the item's length: an -> GBK, 00-padded; cn -> BCD (fixed-length items
    exactly their digits, variable-length ones F-padded). Bytes are taken as they are."""
    if isinstance(value, bytes):
        raw = value
    elif item.fmt == "cn":
        raw = _encode_cn(item, value)
    elif item.fmt == "b":
        raw = bytes.fromhex(value)
    else:
        raw = value.encode("gbk")
    if len(raw) > item.length:
        raise ValueError(f"{item.name}: {len(raw)} bytes exceed the item's {item.length}")
    pad = b"\xff" if item.fmt == "cn" else b"\x00"
    return raw + pad * (item.length - len(raw))


def _encode_cn(item: Item, value: str) -> bytes:
    digits = value.upper()
    if item.nibbles is not None:
        allowed = _HEX if item.hex_digits else _DECIMAL
        if len(digits) != item.nibbles or not set(digits) <= allowed:
            kind = "hex digits" if item.hex_digits else "decimal digits"
            raise ValueError(f"{item.name}: needs exactly {item.nibbles} {kind}, got {value!r}")
        return bytes.fromhex(digits)
    if not set(digits) <= _DECIMAL:
        raise ValueError(f"{item.name}: a variable-length cn value is decimal, got {value!r}")
    return bytes.fromhex(digits + "F" * (len(digits) % 2))


def decode_value(item: Item, raw: bytes) -> str:
    """The item's value as text: an -> GBK without its 00 (or FF) padding; b -> hex; cn -> the
    digits. A fixed-length cn item is returned nibble for nibble (an all-F item is unwritten:
    ""); only a variable-length cn item has its trailing F padding removed."""
    if item.fmt == "cn":
        hexs = raw.hex().upper()
        if item.nibbles is None:
            return hexs.rstrip("F")  # declared padding of a decimal, variable-length item
        if not hexs.strip("F"):
            return ""  # never written (the card pads a blank cn item with F)
        return hexs
    if item.fmt == "b":
        return raw.hex().upper()
    return raw.rstrip(b"\x00\xff").decode("gbk", errors="replace")


def bcd_pin(pin: str) -> bytes:
    """PIN digits packed as BCD, F-padded when odd (ssc-chip.md section 7)."""
    if not pin.isdigit() or not 4 <= len(pin) <= 16:
        raise ValueError("a PIN is 4 to 16 digits")
    return bytes.fromhex(pin + ("F" if len(pin) % 2 else ""))


@dataclass
class BasicInfo:
    """The 11 fields of iReadCardBas (ssc-chip.md section 9), in order."""

    region: str
    id_number: str
    card_number: str
    card_id_code: str
    name: str
    atr_historical: str
    spec_version: str
    issue_date: str
    expiry_date: str
    terminal_number: str = ""
    terminal_device: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def to_pipe_string(self) -> str:
        fields = [
            self.region, self.id_number, self.card_number, self.card_id_code, self.name,
            self.atr_historical, self.spec_version, self.issue_date, self.expiry_date,
            self.terminal_number, self.terminal_device,
        ]  # fmt: skip
        return "|".join(fields) + "|"


Authenticator = Callable[["SscCard", int], None]


class SscCard:
    """Operations on a social security card; every method raises typed errors on a bad SW."""

    def __init__(self, transport: ApduTransport) -> None:
        self.t = transport
        self.algorithm = 0x01
        #: the DF selected and the keys presented, as the commands on this connection tell
        self.security = SecurityState(SSSE_NAME)
        transport.observers.append(self.security.observe)

    # -- selection ----------------------------------------------------------------------
    def select_ssse(self) -> int:
        """Select the SSSE DDF; return its algorithm flag (9F0C 03 86 01 xx, default 01)."""
        fci = self.t.command(b"\x00\xa4\x04\x00\x0f" + SSSE_NAME, "select SSSE")
        self.algorithm = _algorithm_flag(fci)
        return self.algorithm

    def select_df(self, fid: int) -> None:
        """Select a DF under the current DF by FID (P1=01), as field readers select the SSSE's
        DF01-DF04/DF07 (e.g. `00 A4 01 00 02 DF 03`, a7082633/HDOS_VC6 ICCInter2)."""
        self.t.command(bytes([0x00, 0xA4, 0x01, 0x00, 0x02]) + fid.to_bytes(2, "big"),
                       "select DF")

    def select_ef(self, fid: int) -> None:
        self.t.command(bytes([0x00, 0xA4, 0x02, 0x00, 0x02]) + fid.to_bytes(2, "big"), "select")

    # -- items --------------------------------------------------------------------------
    def read_item_raw(self, name: str) -> bytes:
        item = ITEMS[name]
        apdu = bytes([0x00, 0xB2, item.tag, item.sfi << 3, item.length + 2])
        tag, value = parse_simple_tlv(self.t.command(apdu, f"read {name}"))
        if tag != item.tag:
            raise ValueError(f"read {name}: card returned tag {tag:02X}, expected {item.tag:02X}")
        return value

    def read_item(self, name: str) -> str:
        return decode_value(ITEMS[name], self.read_item_raw(name))

    def write_item(self, name: str, value: str | bytes) -> None:
        item = ITEMS[name]
        data = encode_value(item, value)
        body = bytes([item.tag, len(data)]) + data
        apdu = bytes([0x00, 0xDC, item.tag, item.sfi << 3, len(body)]) + body
        self.t.command(apdu, f"write {name}")

    def read_name(self) -> str:
        """Full name = tag 09 then the overflow in 4E (absent on 1.0 cards)."""
        name = self.read_item("name")
        try:
            name += self.read_item("name_ext")
        except Exception:  # 6A83 on cards without 4E
            pass
        return name

    # -- security -----------------------------------------------------------------------
    def get_challenge(self, length: int = 8) -> bytes:
        return self.t.command(bytes([0x00, 0x84, 0x00, 0x00, length]), "get challenge")

    def external_authenticate(self, key_id: int, data: bytes) -> None:
        self.t.command(bytes([0x00, 0x82, 0x00, key_id, len(data)]) + data, "external auth")

    def internal_authenticate(self, data: bytes) -> bytes:
        return self.t.command(bytes([0x00, 0x88, 0x00, 0x00, len(data)]) + data, "internal auth")

    def verify_pin(self, pin: str) -> None:
        block = bcd_pin(pin)
        self.t.command(bytes([0x00, 0x20, 0x00, 0x00, len(block)]) + block, "verify PIN")

    def change_pin(self, old: str, new: str) -> None:
        body = bcd_pin(old) + b"\xff" + bcd_pin(new)
        self.t.command(bytes([0x80, 0x5E, 0x01, 0x00, len(body)]) + body, "change PIN")

    def unblock_pin(self, mac: bytes) -> None:
        self.t.command(bytes([0x84, 0x24, 0x00, 0x00, len(mac)]) + mac, "unblock PIN")

    # -- whole-card reads ---------------------------------------------------------------
    def read_basic_info(
        self,
        authenticate: Authenticator | None = None,
        terminal_number: str = "",
        terminal_device: str = "",
    ) -> BasicInfo:
        """iReadCardBas: the issuer items, then (after `authenticate(card, 0x0A)` where the
        card wants the read key) the holder items. Without an authenticator the holder items
        of a protected (3rd-generation) card come back empty, as real readers report them."""
        self.select_ssse()
        values = {n: self.read_item(n) for n in ("card_id_code", "spec_version")}
        holder = {"id_number": "", "name": ""}
        # Which of these a 3rd-generation card gives without the read key is the card's
        # business (recorded real cards: the dates yes, the card number no); each is read
        # and the key is presented only when the card asks for it.
        for n in ("card_number", "issue_date", "expiry_date"):
            values[n] = self._read_optional(n, authenticate)
        holder["id_number"] = self._read_optional("id_number", authenticate)
        if holder["id_number"]:
            holder["name"] = self.read_name()
        return BasicInfo(
            region=values["card_id_code"][:6],
            id_number=holder["id_number"],
            card_number=values["card_number"],
            card_id_code=values["card_id_code"],
            name=holder["name"],
            atr_historical=historical_bytes(self.t.atr).hex().upper() if self.t.atr else "",
            spec_version=values["spec_version"],
            issue_date=values["issue_date"],
            expiry_date=values["expiry_date"],
            terminal_number=terminal_number,
            terminal_device=terminal_device,
        )

    def _read_optional(self, name: str, authenticate: Authenticator | None) -> str:
        try:
            return self.read_item(name)
        except SecurityNotSatisfied:
            if authenticate is None:
                return ""
            authenticate(self, 0x0A)
            return self.read_item(name)
        except RecordNotFound:
            return ""

    def read_pan(self) -> str:
        """The bank application's account number (tag 5A): SELECT AID, GPO, records of AFL."""
        fci = self.t.command(b"\x00\xa4\x04\x00\x08" + DEBIT_AID, "select bank application")
        del fci
        gpo = self.t.command(bytes.fromhex("80A8000002830000"), "get processing options")
        for sfi, first, last in _afl_entries(gpo):
            for record in range(first, last + 1):
                apdu = bytes([0x00, 0xB2, record, (sfi << 3) | 4, 0x00])
                data = self.t.command(apdu, "read bank record")
                pan = find_ber(data, 0x5A)
                if pan is not None:
                    # 5A is EMV cn of variable length, decimal: trailing F is only padding
                    return pan.hex().upper().rstrip("F")
        raise ValueError("the bank application has no account number (tag 5A)")


def _algorithm_flag(fci: bytes) -> int:
    try:
        prop = find_ber(fci, 0x9F0C)
    except ValueError:
        prop = None
    if prop is not None:
        flag = find_ber(prop, 0x86) if prop[:1] == b"\x86" else None
        if flag:
            return flag[0]
    return 0x01


def _afl_entries(gpo: bytes) -> list[tuple[int, int, int]]:
    """AFL from a GPO reply: format 1 (80: AIP(2) + AFL) or format 2 (77 with 94)."""
    if gpo[:1] == b"\x80":
        body = find_ber(gpo, 0x80) or b""
        afl = body[2:]
    else:
        afl = find_ber(gpo, 0x94) or b""
    return [(afl[i] >> 3, afl[i + 1], afl[i + 2]) for i in range(0, len(afl) - 3, 4)]
