"""Card number (卡号), EF05 tag 07, 9 characters.

Source: S1 附录A (社会保障卡序列号编制规则) and §8.1.1.7: an 8-character body of digits or
uppercase Latin letters, the first a letter naming the district, then a check character
C9 = 11 - (Σ Ci·Wi mod 11) with W = 3 7 9 10 5 8 4 2 and letters valued A=10 ... Z=35;
C9 = 10 is written 'X', C9 = 11 is written '0'. Worked example: D2143569 -> D2143569X.
A hyphen may separate body and check character for people; machine-read numbers omit it.

Limit of the scheme (arithmetic, not a bug here): substituting one character by another whose
value differs by a multiple of 11 (e.g. '0' and 'B', '2' and 'D', 'A' and 'L') leaves the check
character unchanged, so such a typo cannot be detected by any implementation of this rule.
"""

from __future__ import annotations

import string

from cardstation.personalization.findings import Finding

CARD_NUMBER_LENGTH = 9
CARD_NUMBER_WEIGHTS: tuple[int, ...] = (3, 7, 9, 10, 5, 8, 4, 2)
BODY_CHARS = string.digits + string.ascii_uppercase
CHECK_CHARS = string.digits + "X"


def card_char_value(char: str) -> int:
    """Value of one body character: '0'-'9' -> 0-9, 'A'-'Z' -> 10-35. ValueError otherwise."""
    if len(char) != 1 or char not in BODY_CHARS:
        raise ValueError(f"not a card-number body character: {char!r}")
    return BODY_CHARS.index(char)


def card_number_check_char(body8: str) -> str:
    """Return the check character for an 8-character body (first a letter).

    Raises ValueError for a malformed body (a programming error: callers validating input use
    `check_card_number`, which never raises).
    """
    if len(body8) != 8 or not body8[0].isascii() or not body8[0].isupper():
        raise ValueError("a card-number body is 8 characters, the first an uppercase letter")
    total = sum(card_char_value(c) * w for c, w in zip(body8, CARD_NUMBER_WEIGHTS, strict=True))
    c9 = 11 - total % 11
    return {10: "X", 11: "0"}.get(c9, str(c9))


def normalize_card_number(value: str) -> str:
    """Strip whitespace, drop the optional human-readable hyphen, upper-case (typed input)."""
    value = value.strip().upper()
    if len(value) == 10 and value[8] == "-":
        value = value[:8] + value[9]
    return value


def check_card_number(value: str, field: str = "card_number") -> list[Finding]:
    """Validate a 9-character card number (S1 附录A); return findings, never raise.

    Codes: `length`, `characters` (body must be uppercase letters/digits with a letter first,
    check character a digit or X), `check_char_mismatch`.
    """
    if not isinstance(value, str):
        return [Finding(field, "characters", f"{field} must be text")]
    if len(value) != CARD_NUMBER_LENGTH:
        return [
            Finding(
                field,
                "length",
                f"{field} {value!r} has {len(value)} characters, expected 9 "
                "(8-character body + check character, no hyphen)",
            )
        ]
    body, check = value[:8], value[8]
    if not (
        body[0] in string.ascii_uppercase
        and all(c in BODY_CHARS for c in body)
        and check in CHECK_CHARS
    ):
        return [
            Finding(
                field,
                "characters",
                f"{field} {value!r}: expected an uppercase letter, 7 uppercase letters or digits, "
                "then a digit or X",
            )
        ]
    expected = card_number_check_char(body)
    if check != expected:
        return [
            Finding(
                field,
                "check_char_mismatch",
                f"{field} {value!r}: check character should be {expected!r}",
            )
        ]
    return []


def is_valid_card_number(value: str) -> bool:
    """True if `value` passes `check_card_number`."""
    return not check_card_number(value)
