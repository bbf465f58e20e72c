"""Holder name (姓名), EF06 tag 09 (30 bytes) with overflow into tag 4E 姓名扩展 (20 bytes).

Sources: S1 表 of EF06 (09 an 0x1E, 4E an 0x14) and §7 padding (an: left-aligned, right-padded
with 00); S1 §8.1.2.2 (Chinese characters, or the passport's Latin name for foreigners);
encoding GBK as used by the writers in S6; a reader rebuilds the name as tag 09 ‖ tag 4E after
stripping padding (S5). See reference/ssc-chip.md §5.2.

A character GBK cannot encode (CJK Extension A/B and later, e.g. '䶮' U+4DAE or '𠀀' U+20000)
is reported with its position; nothing is ever replaced by '?' on its way to the chip.
"""

from __future__ import annotations

import unicodedata

from cardstation.personalization.findings import Finding

NAME_BYTES = 30  # tag 09
NAME_EXT_BYTES = 20  # tag 4E
NAME_MAX_BYTES = NAME_BYTES + NAME_EXT_BYTES


def check_name(name: str, field: str = "name") -> list[Finding]:
    """Validate a holder name for EF06 tags 09/4E; return findings, never raise.

    Codes: `empty`; `characters` (a control or format character, one finding each);
    `unencodable` (one finding per character GBK cannot encode, with its 1-based position and
    code point); `too_long` (the GBK bytes do not fit 30 + 20 bytes without splitting a
    double-byte character, which can happen a byte short of 50).
    """
    if not isinstance(name, str) or not name.strip():
        return [Finding(field, "empty", f"{field} is empty")]
    findings: list[Finding] = []
    for pos, char in enumerate(name, start=1):
        if unicodedata.category(char) in ("Cc", "Cf"):
            findings.append(
                Finding(
                    field,
                    "characters",
                    f"{field}: character {pos} (U+{ord(char):04X}) is a control character",
                )
            )
            continue
        try:
            char.encode("gbk")
        except UnicodeEncodeError:
            findings.append(
                Finding(
                    field,
                    "unencodable",
                    f"{field}: character {pos} ({char} U+{ord(char):04X}) cannot be encoded in "
                    "GBK for the chip; the CMS must supply an agreed substitute",
                )
            )
    if findings:
        return findings
    try:
        split_name_gbk(name)
    except ValueError:
        size = len(name.encode("gbk"))
        findings.append(
            Finding(
                field,
                "too_long",
                f"{field} is {size} GBK bytes; it does not fit tag 09 ({NAME_BYTES} bytes) plus "
                f"tag 4E ({NAME_EXT_BYTES} bytes)",
            )
        )
    return findings


def split_name_gbk(name: str) -> tuple[bytes, bytes]:
    """GBK-encode `name` into (tag 09 value, tag 4E value), 30 and 20 bytes, zero-padded.

    Characters fill tag 09 in order; the first character that does not fit whole (a double-byte
    character at byte 30) and everything after it go to tag 4E, so no character is split.
    Raises ValueError if the name is not GBK-encodable or does not fit; call `check_name`
    first to get findings instead.
    """
    try:
        encoded = [char.encode("gbk") for char in name]
    except UnicodeEncodeError as exc:
        raise ValueError(f"name character {exc.start + 1} is not GBK-encodable") from exc
    head = bytearray()
    index = 0
    while index < len(encoded) and len(head) + len(encoded[index]) <= NAME_BYTES:
        head += encoded[index]
        index += 1
    tail = b"".join(encoded[index:])
    if len(tail) > NAME_EXT_BYTES:
        raise ValueError(f"name needs {len(tail)} bytes in tag 4E, which holds {NAME_EXT_BYTES}")
    return bytes(head).ljust(NAME_BYTES, b"\x00"), tail.ljust(NAME_EXT_BYTES, b"\x00")


def join_name_gbk(tag09: bytes, tag4e: bytes = b"") -> str:
    """Rebuild a name read from the chip: tag 09 ‖ tag 4E, padding stripped, GBK-decoded.

    Both 00 (S1) and FF (S6 pads 姓名扩展 with 'F') padding are stripped; neither byte can end
    a GBK character. Raises UnicodeDecodeError on bytes that are not GBK.
    """
    return (_strip_pad(tag09) + _strip_pad(tag4e)).decode("gbk")


def _strip_pad(value: bytes) -> bytes:
    return value.rstrip(b"\x00\xff")
