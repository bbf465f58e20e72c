"""TLV and BCD helpers: SIMPLE-TLV records (construct), small BER-TLV for FCI/EMV templates."""

from __future__ import annotations

from construct import Bytes, ConstructError, GreedyBytes, Int8ub, Prefixed, Struct, Terminated

#: One SSSE record: tag(1) len(1) value(len), nothing after it [C2 ssc-chip.md §4].
SimpleTlvRecord = Struct(
    "tag" / Int8ub,
    "value" / Prefixed(Int8ub, GreedyBytes),
    Terminated,
)

#: The 13 historical bytes of the ATR (layout [P], see ``atr.py``).
HistoricalBytes = Struct(
    "category" / Int8ub,
    "indicator" / Int8ub,
    "vendor" / Bytes(2),
    "chip" / Bytes(2),
    "region" / Bytes(3),
    "serial" / Bytes(4),
    Terminated,
)


class TlvError(ValueError):
    """Malformed TLV data."""


def simple_tlv(tag: int, value: bytes) -> bytes:
    """Build a SIMPLE-TLV record."""
    return SimpleTlvRecord.build({"tag": tag, "value": value})


def parse_simple_tlv(record: bytes) -> tuple[int, bytes]:
    """Parse exactly one SIMPLE-TLV record; raises TlvError when malformed."""
    try:
        parsed = SimpleTlvRecord.parse(record)
    except ConstructError as exc:
        raise TlvError(str(exc)) from exc
    return parsed.tag, bytes(parsed.value)


def _tag_bytes(tag: int) -> bytes:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def ber_tlv(tag: int, value: bytes) -> bytes:
    """Build one BER-TLV (1- or 2-byte tag, definite length up to 255)."""
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n <= 0xFF:
        length = bytes([0x81, n])
    else:
        raise TlvError("value too long")
    return _tag_bytes(tag) + length + value


def parse_ber(data: bytes) -> list[tuple[int, bytes]]:
    """Parse a sequence of BER-TLVs (one level)."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        if data[i] in (0x00, 0xFF):  # padding between TLVs
            i += 1
            continue
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            if i >= len(data):
                raise TlvError("truncated tag")
            tag = (tag << 8) | data[i]
            i += 1
        if i >= len(data):
            raise TlvError("truncated length")
        n = data[i]
        i += 1
        if n == 0x81:
            if i >= len(data):
                raise TlvError("truncated length")
            n = data[i]
            i += 1
        elif n > 0x81:
            raise TlvError("unsupported length form")
        if i + n > len(data):
            raise TlvError("truncated value")
        out.append((tag, bytes(data[i : i + n])))
        i += n
    return out


def _constructed(tag: int) -> bool:
    first = tag >> 8 if tag > 0xFF else tag
    return bool(first & 0x20)


def find_ber(data: bytes, tag: int) -> bytes | None:
    """Depth-first search for the first ``tag`` in BER-TLV ``data`` (e.g. 5A inside 70)."""
    for t, value in parse_ber(data):
        if t == tag:
            return value
        if _constructed(t):
            found = find_ber(value, tag)
            if found is not None:
                return found
    return None


# --- BCD ---------------------------------------------------------------------------------------


def digits_to_bcd(digits: str, length: int | None = None) -> bytes:
    """Packed BCD, right-padded with F nibbles (odd length, or up to ``length`` bytes)."""
    if not digits.isdigit() or not digits.isascii():
        raise ValueError("BCD needs decimal digits")
    hexs = digits + "F" * (len(digits) % 2)
    if length is not None:
        if len(hexs) > 2 * length:
            raise ValueError("too many digits")
        hexs = hexs.ljust(2 * length, "F")
    return bytes.fromhex(hexs)


def bcd_to_digits(data: bytes) -> str:
    """Inverse of :func:`digits_to_bcd` for VARIABLE-length decimal values (the bank PAN);
    raises ValueError on a non-decimal nibble before the trailing F padding. Never use it on a
    fixed-length cn item: the card identification code is hex and may end in F."""
    hexs = data.hex().upper().rstrip("F")
    if not hexs.isdigit() and hexs:
        raise ValueError("not packed BCD")
    return hexs
