"""The pattern net: text that looks like an ID number, an account number or a long digit run.

It cannot know a name or a key (they have no shape); those are masked by structure where they
are logged. It catches what structure missed that has a shape: digits, in any run length (a
bank record's track-2 data glues the account number to the tag bytes in one 27-digit run, so
a 16-19-digit pattern alone lets it through), also as the hex of ASCII or UTF-16 digits.
"""

from __future__ import annotations

import re

# 18-character resident ID: 6 region digits, 8 birth-date digits, 3 sequence digits, check char.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
# Any run of 15 or more digits: account numbers (16-19), 15-digit first-generation ID numbers,
# and digits glued to their neighbours in a hex dump (a packed-BCD record).
_DIGIT_RUN = re.compile(r"(?<!\d)(\d{6})(\d{5,})(\d{4})(?!\d)")
# The hex of 15 or more ASCII digits (3x3x...) or UTF-16 digits (3x00 / 003x), either case.
_HEX_DIGITS = re.compile(r"(?:3[0-9]){15,}|(?:3[0-9]00){15,}|(?:003[0-9]){15,}")


def mask_id_number(text: str) -> str:
    """Mask an ID number to its first 6 and last 4 characters: 110105********002X."""
    if len(text) <= 10:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10) + text[-4:]


def mask_account(text: str) -> str:
    """Mask an account number (PAN) to its first 6 and last 4 digits: 621999*********4646."""
    return mask_id_number(text)


def redact(text: str) -> str:
    """Mask every ID number, digit run of 15 or more and hex-encoded digit run in `text`
    (digit runs keep their first 6 and last 4 digits)."""
    text = _HEX_DIGITS.sub(lambda m: "*" * len(m.group(0)), text)
    text = _ID_NUMBER.sub(lambda m: m.group(1) + "*" * 8 + m.group(2), text)
    return _DIGIT_RUN.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)
