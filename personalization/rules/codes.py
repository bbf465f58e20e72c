"""Small code sets of the SSSE holder data: sex, nation, dates, region codes.

Sources: 人社信息函〔2012〕37号《社会保障卡文件结构和数据项（V2.0）》 (S1 in
reference/ssc-chip.md) §8.1.1.5 (dates, GB/T 7408 basic format YYYYMMDD), §8.1.2.3 表13 (sex,
GB 2261.1), §8.1.2.4 表14 (nation, GB 3304), §8.1.2.5 (birthplace, GB/T 2260 six-digit code).
"""

from __future__ import annotations

import datetime as dt

from cardstation.personalization.findings import Finding

# GB 2261.1 as narrowed by S1 表13: the card knows only these three (no '0' 未知).
SEX_CODES: dict[str, str] = {"1": "male", "2": "female", "9": "unspecified"}

# GB 3304-1991: 01..56 the recognised nationalities, 97 其他 (other), 98 外国血统中国籍人士
# (naturalised of foreign origin). The card spec's own table (S1 表14) lists 99 其他, so a CMS
# following it may send 99: accepted too.
NATION_CODES: frozenset[str] = frozenset([f"{n:02d}" for n in range(1, 57)] + ["97", "98", "99"])

EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)


def parse_yyyymmdd(value: str) -> dt.date | None:
    """Return the date for an 8-digit YYYYMMDD string, or None if it is not a real date.

    Source: S1 §8.1.1.5 (GB/T 7408 complete representation, basic format).
    """
    if not isinstance(value, str) or len(value) != 8 or not value.isascii() or not value.isdigit():
        return None
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def check_date(
    value: str,
    field: str,
    *,
    earliest: dt.date | None = None,
    latest: dt.date | None = None,
) -> list[Finding]:
    """Check a YYYYMMDD date (S1 §8.1.1.5): 8 digits, a real calendar date, within bounds."""
    if not isinstance(value, str) or len(value) != 8 or not value.isascii() or not value.isdigit():
        return [Finding(field, "format", f"{field} must be 8 digits YYYYMMDD, got {value!r}")]
    day = parse_yyyymmdd(value)
    if day is None:
        return [Finding(field, "calendar", f"{field} {value} is not a real calendar date")]
    if earliest is not None and day < earliest:
        return [Finding(field, "too_early", f"{field} {value} is before {earliest:%Y%m%d}")]
    if latest is not None and day > latest:
        return [Finding(field, "too_late", f"{field} {value} is after {latest:%Y%m%d}")]
    return []


def check_birth_date(
    value: str, field: str = "birth_date", *, today: dt.date | None = None
) -> list[Finding]:
    """Check a birth date (S1 §8.1.2.6): real YYYYMMDD date, not before 1900, not in the future.

    The 1900 floor is a plausibility bound chosen for the station, not a rule of the spec.
    """
    findings = check_date(value, field, earliest=EARLIEST_BIRTH_DATE, latest=today or _today())
    # The upper bound here is today, so say "in the future" rather than "too late".
    return [
        Finding(f.field, "in_future", f"{field} {value} is in the future")
        if f.code == "too_late"
        else f
        for f in findings
    ]


def check_sex(value: str, field: str = "sex") -> list[Finding]:
    """Check a sex code: '1' male, '2' female, '9' unspecified (GB 2261.1 via S1 表13)."""
    if value in SEX_CODES:
        return []
    return [Finding(field, "code", f"{field} must be 1 (male), 2 (female) or 9, got {value!r}")]


def check_nation(value: str, field: str = "nation") -> list[Finding]:
    """Check a nation code: two digits, GB 3304 01-56, 97, 98 (and 99 from S1 表14)."""
    if not isinstance(value, str) or len(value) != 2 or not value.isascii() or not value.isdigit():
        return [Finding(field, "format", f"{field} must be two digits, got {value!r}")]
    if value not in NATION_CODES:
        return [Finding(field, "code", f"{field} {value} is not a GB 3304 code (01-56, 97-99)")]
    return []


def is_region_code_shape(value: str) -> bool:
    """True if `value` looks like a GB/T 2260 code: 6 ASCII digits, first digit 1-8.

    Only the shape is checked (province digit 1-8 covers every GB/T 2260 province and the
    81/82/83 codes of HK/Macau/Taiwan residents); the code list itself changes yearly.
    """
    return (
        isinstance(value, str)
        and len(value) == 6
        and value.isascii()
        and value.isdigit()
        and value[0] in "12345678"
    )


def check_region_code(value: str, field: str = "region") -> list[Finding]:
    """Check a six-digit administrative division code (GB/T 2260, S1 §8.1.2.5): shape only."""
    if is_region_code_shape(value):
        return []
    return [
        Finding(
            field,
            "region",
            f"{field} must be a 6-digit GB/T 2260 code whose first digit is 1-8, got {value!r}",
        )
    ]


def _today() -> dt.date:
    return dt.date.today()
