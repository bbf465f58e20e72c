"""The identity documents a GA 467 reader reads, and which can carry a social security number.

The reader tells the card types apart by the text block's flag (drivers/idreader/card.py):
"" resident ID card, "J" HK/Macao/Taiwan residence permit, "I" foreigner permanent residence
card (2017 layout), "Y" foreigner permanent residence card (2023 layout). Each has its own
number rule:

- resident ID card: GB 11643-1999 (`check_id_number`);
- J: the GB 11643 structure and check character, with the address code of Hong Kong (810000),
  Macao (820000) or Taiwan (830000) (GB/T 2260 codes 81/82/83, the only ones these permits
  carry);
- Y: 18 characters, first digit 9, then the accepting province (2 digits), the nationality as
  its ISO 3166-1 numeric code (3 digits), the birth date YYYYMMDD, a 3-digit sequence and a
  check character computed as in GB 11643 (ISO 7064 MOD 11-2);
- I: 15 characters, the ISO 3166-1 alpha-3 nationality code, then 12 digits. [I] The digits
  are read as the 4-digit accepting-authority code (the card's text block has a 4-character
  authority field), the birth date YYMMDD, a sequence digit and a check digit; the check
  digit's algorithm is not public, so it is not judged here.

Which of them the CMS takes as the 社会保障号码 (EF06 tag 08, an, 18 characters, 社会保障卡文件
结构和数据项 V2.0 表9): the 18-character numbers of the resident card, the J permit and the
Y card fill that item as GB 11643-shaped numbers; the 15-character number of a 2017 I card
cannot, so the CMS would not accept an application keyed by it. [P] This is the station's
reading of the item format; a province that registers foreigners differently changes
`CMS_ACCEPTS` here and nowhere else.

No message carries a full number (masked to its first 6 and last 4 characters).
"""

from __future__ import annotations

import datetime as dt

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.findings import Finding
from cardstation.personalization.rules.codes import parse_yyyymmdd
from cardstation.personalization.rules.id_number import check_id_number, id_check_char

RESIDENT = ""
HMT_RESIDENCE_PERMIT = "J"
FOREIGN_PERMANENT_2017 = "I"
FOREIGN_PERMANENT_2023 = "Y"

LABELS: dict[str, str] = {
    RESIDENT: "resident ID card",
    HMT_RESIDENCE_PERMIT: "HK/Macao/Taiwan residence permit",
    FOREIGN_PERMANENT_2017: "foreigner permanent residence card (2017)",
    FOREIGN_PERMANENT_2023: "foreigner permanent residence card (2023)",
}
#: Address codes of HK/Macao/Taiwan residence permits (GB/T 2260 81/82/83).
HMT_REGIONS = frozenset({"810000", "820000", "830000"})
#: [P] Card types whose number the CMS takes as a social security number (see module doc).
CMS_ACCEPTS = frozenset({RESIDENT, HMT_RESIDENCE_PERMIT, FOREIGN_PERMANENT_2023})

_DIGITS = frozenset("0123456789")


def check_document_number(card_type: str, value: str, field: str = "id_number", *,
                          today: dt.date | None = None) -> list[Finding]:
    """Validate the number of an identity document of `card_type`; findings, never raises.

    Codes: those of `check_id_number`, plus `permit_region` (J), `permit_prefix`,
    `characters`, `length`, `birth_date`, `check_char_mismatch` (Y, I) and `card_type`.
    """
    if not isinstance(value, str):
        return [Finding(field, "characters", f"{field} must be text")]
    if card_type == RESIDENT:
        return check_id_number(value, field, today=today)
    masked = mask_id_number(value)
    if card_type == HMT_RESIDENCE_PERMIT:
        findings = check_id_number(value, field, today=today)
        if len(value) == 18 and value[:6] not in HMT_REGIONS:
            findings.append(Finding(
                field, "permit_region",
                f"{field} {masked}: a HK/Macao/Taiwan residence permit number starts with "
                "810000, 820000 or 830000"))
        return findings
    if card_type == FOREIGN_PERMANENT_2023:
        return _check_foreign_2023(value, field, masked, today)
    if card_type == FOREIGN_PERMANENT_2017:
        return _check_foreign_2017(value, field, masked)
    return [Finding(field, "card_type", f"unknown identity document type {card_type!r}")]


def check_cms_accepts(card_type: str, field: str = "id_number") -> list[Finding]:
    """A finding when the CMS would not accept an application keyed by this document."""
    if card_type in CMS_ACCEPTS:
        return []
    label = LABELS.get(card_type, f"document type {card_type!r}")
    return [Finding(
        field, "cms_rejects_card_type",
        f"the CMS does not accept a {label} as the social security number (its number is not "
        "an 18-character GB 11643 number): ask the holder for the 2023 permanent residence "
        "card or the social security number the CMS registered")]


def check_id_document(card_type: str, value: str, field: str = "id_number", *,
                      today: dt.date | None = None) -> list[Finding]:
    """The number rule of the document, then whether the CMS accepts the document."""
    return check_document_number(card_type, value, field, today=today) + check_cms_accepts(
        card_type, field)


def _check_foreign_2023(value: str, field: str, masked: str,
                        today: dt.date | None) -> list[Finding]:
    if len(value) != 18:
        return [Finding(field, "length",
                        f"{field} {masked} has {len(value)} characters, expected 18")]
    if not set(value[:17]) <= _DIGITS or not (value[17] in _DIGITS or value[17] == "X"):
        return [Finding(field, "characters",
                        f"{field} {masked}: expected 17 digits then a digit or X")]
    findings: list[Finding] = []
    if value[0] != "9":
        findings.append(Finding(field, "permit_prefix",
                                f"{field} {masked}: a 2023 permanent residence number starts "
                                "with 9"))
    if value[17] != id_check_char(value[:17]):
        findings.append(Finding(field, "check_char_mismatch",
                                f"{field} {masked}: check character does not match (MOD 11-2)"))
    findings += _birth(value[6:14], field, masked, today)
    return findings


def _check_foreign_2017(value: str, field: str, masked: str) -> list[Finding]:
    if len(value) != 15:
        return [Finding(field, "length",
                        f"{field} {masked} has {len(value)} characters, expected 15")]
    if not (value[:3].isascii() and value[:3].isalpha() and value[:3].isupper()
            and set(value[3:]) <= _DIGITS):
        return [Finding(field, "characters",
                        f"{field} {masked}: expected three capital letters then 12 digits")]
    if parse_yyyymmdd("20" + value[7:13]) is None and parse_yyyymmdd("19" + value[7:13]) is None:
        return [Finding(field, "birth_date", f"{field} {masked}: birth date is not a real date")]
    return []


def _birth(yyyymmdd: str, field: str, masked: str, today: dt.date | None) -> list[Finding]:
    birth = parse_yyyymmdd(yyyymmdd)
    if birth is None or not dt.date(1900, 1, 1) <= birth <= (today or dt.date.today()):
        return [Finding(field, "birth_date", f"{field} {masked}: birth date is not plausible")]
    return []
