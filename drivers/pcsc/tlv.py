"""BER-TLV (EMV records, FCI) and SIMPLE-TLV (SSC records) parsing."""

from __future__ import annotations

from collections.abc import Iterator


def _read_tag(data: bytes, i: int) -> tuple[int, int]:
    tag = data[i]
    i += 1
    if tag & 0x1F == 0x1F:  # multi-byte tag
        while True:
            if i >= len(data):
                raise ValueError("BER-TLV tag runs past the end")
            tag = (tag << 8) | data[i]
            i += 1
            if not data[i - 1] & 0x80:
                break
    return tag, i


def _read_length(data: bytes, i: int) -> tuple[int, int]:
    if i >= len(data):
        raise ValueError("BER-TLV length missing")
    first = data[i]
    i += 1
    if first < 0x80:
        return first, i
    count = first & 0x7F
    if count == 0 or count > 3 or i + count > len(data):
        raise ValueError(f"BER-TLV length form {first:02X} not supported")
    return int.from_bytes(data[i : i + count], "big"), i + count


def iter_ber(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Top-level (tag, value) pairs of a BER-TLV string; 00/FF padding between items skipped."""
    i = 0
    while i < len(data):
        if data[i] in (0x00, 0xFF):
            i += 1
            continue
        tag, i = _read_tag(data, i)
        length, i = _read_length(data, i)
        if i + length > len(data):
            raise ValueError(f"BER-TLV value of tag {tag:X} runs past the end")
        yield tag, data[i : i + length]
        i += length


def _constructed(tag: int) -> bool:
    first = tag
    while first > 0xFF:
        first >>= 8
    return bool(first & 0x20)


def find_ber(data: bytes, wanted: int) -> bytes | None:
    """Depth-first search for tag `wanted` in a BER-TLV string (not a naive byte search)."""
    for tag, value in iter_ber(data):
        if tag == wanted:
            return value
        if _constructed(tag):
            found = find_ber(value, wanted)
            if found is not None:
                return found
    return None


def parse_simple_tlv(record: bytes) -> tuple[int, bytes]:
    """One SSC record: tag(1) len(1) value."""
    if len(record) < 2:
        raise ValueError(f"record of {len(record)} bytes has no tag and length")
    tag, length = record[0], record[1]
    if len(record) < 2 + length:
        raise ValueError(f"record tag {tag:02X} declares {length} bytes, holds {len(record) - 2}")
    return tag, record[2 : 2 + length]
