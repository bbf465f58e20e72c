"""Resident ID number (公民身份号码), the social security number of Chinese residents.

Source: GB 11643-1999 (structure: 6-digit address code, 8-digit birth date, 3-digit sequence
whose last digit is odd for men and even for women, check character by ISO 7064 MOD 11-2);
S1 §8.1.2.1 makes it the 社会保障号码 stored in EF06 tag 08 (an, 18 bytes).

Lowercase 'x': the check character is the uppercase Latin X in GB 11643 and is written to the
chip as ASCII, so validation is strict and reports a lowercase x (code `lowercase_x`) instead of
silently accepting it. Input layers that take typed text may call `normalize_id_number` first.

No message produced here carries the full number: it is masked to its first 6 and last 4
characters (cardstation.drivers.redaction.mask_id_number), as DESIGN.md requires of logs and traces.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.findings import Finding
from cardstation.personalization.rules.codes import (
    EARLIEST_BIRTH_DATE,
    is_region_code_shape,
    parse_yyyymmdd,
)

ID_NUMBER_LENGTH = 18
# ISO 7064 MOD 11-2 weights 2^(17-i) mod 11 for the 17 body digits, left to right.
ID_WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Check character indexed by (weighted sum mod 11).
_ID_CHECK_CHARS = "10X98765432"
_DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class IdNumberParts:
    """The fields GB 11643 packs into an 18-character ID number."""

    region: str  # address code (GB/T 2260), digits 1-6
    birth_date: dt.date  # digits 7-14
    sequence: str  # digits 15-17
    check_char: str  # character 18

    @property
    def sex(self) -> str:
        """GB 2261.1 sex code implied by the sequence: odd '1' (male), even '2' (female)."""
        return "1" if int(self.sequence[-1]) % 2 else "2"


def id_check_char(body17: str) -> str:
    """Return the GB 11643 / ISO 7064 MOD 11-2 check character for 17 body digits.

    Raises ValueError if `body17` is not exactly 17 ASCII digits (a programming error: callers
    validating user input use `check_id_number`, which never raises).
    """
    if len(body17) != 17 or not set(body17) <= _DIGITS:
        raise ValueError("an ID number body is exactly 17 digits")
    total = sum(int(c) * w for c, w in zip(body17, ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def normalize_id_number(value: str) -> str:
    """Strip surrounding whitespace and upper-case a trailing 'x' (for typed input only)."""
    value = value.strip()
    return value[:-1] + "X" if value.endswith("x") else value


def parse_id_number(value: str) -> IdNumberParts | None:
    """Split a structurally sound ID number into its parts; None if it cannot be split.

    "Structurally sound" means 18 characters, 17 digits then a digit or 'X', and a real birth
    date; the check character and region are not judged here (see `check_id_number`).
    """
    if not _well_formed(value):
        return None
    birth = parse_yyyymmdd(value[6:14])
    if birth is None:
        return None
    return IdNumberParts(value[:6], birth, value[14:17], value[17])


def check_id_number(
    value: str, field: str = "id_number", *, today: dt.date | None = None
) -> list[Finding]:
    """Validate a resident ID number (GB 11643); return findings, never raise.

    Codes: `length`, `characters`, `lowercase_x`, `check_char_mismatch`, `birth_date`, `region`.
    A wrong length or wrong characters stop further checks (the rest would be noise); the check
    character, birth date and region are then judged independently of each other.
    """
    if not isinstance(value, str):
        return [Finding(field, "characters", f"{field} must be text")]
    masked = mask_id_number(value)
    if len(value) != ID_NUMBER_LENGTH:
        hint = " (15-digit first-generation numbers must be upgraded)" if len(value) == 15 else ""
        return [
            Finding(
                field,
                "length",
                f"{field} {masked} has {len(value)} characters, expected 18{hint}",
            )
        ]
    if set(value[:17]) <= _DIGITS and value[17] == "x":
        return [
            Finding(field, "lowercase_x", f"{field} {masked}: check character must be uppercase X")
        ]
    if not _well_formed(value):
        return [
            Finding(
                field,
                "characters",
                f"{field} {masked}: expected 17 digits then a digit or X (X only last)",
            )
        ]

    findings: list[Finding] = []
    expected = id_check_char(value[:17])
    if value[17] != expected:
        findings.append(
            Finding(
                field,
                "check_char_mismatch",
                f"{field} {masked}: check character does not match (MOD 11-2); "
                "a digit was probably mistyped",
            )
        )
    birth = parse_yyyymmdd(value[6:14])
    today = today or dt.date.today()
    if birth is None:
        # Don't echo the date: it is the masked part of the number.
        findings.append(
            Finding(field, "birth_date", f"{field} {masked}: birth date is not a real date")
        )
    elif not EARLIEST_BIRTH_DATE <= birth <= today:
        findings.append(
            Finding(
                field,
                "birth_date",
                f"{field} {masked}: birth date is before 1900 or in the future",
            )
        )
    if not is_region_code_shape(value[:6]):
        findings.append(
            Finding(
                field,
                "region",
                f"{field} {masked}: address code must be 6 digits starting with 1-8",
            )
        )
    return findings


def is_valid_id_number(value: str, *, today: dt.date | None = None) -> bool:
    """True if `value` passes every check of `check_id_number`."""
    return not check_id_number(value, today=today)


def _well_formed(value: str) -> bool:
    return (
        isinstance(value, str)
        and len(value) == ID_NUMBER_LENGTH
        and set(value[:17]) <= _DIGITS
        and (value[17] in _DIGITS or value[17] == "X")
    )
