"""Validate a whole application before anything is fed (DESIGN.md, issuance step 2 "Preview").

Runs every field rule from `cardstation.personalization.rules` on the fields that are given,
then cross-checks the holder fields against what the ID number encodes (GB 11643: digits 7-14
are the birth date, the parity of digit 17 the sex, digits 1-6 the address code), and checks
that the name and the bank name fit their boxes on the card face at the minimum legible size
(the card design's layout template). Findings are returned in a stable order (field by field,
as the arguments are listed); nothing raises.
"""

from __future__ import annotations

import datetime as dt

from cardstation.personalization.face import FontMissing, Layout, check_layout_fit
from cardstation.personalization.findings import Finding
from cardstation.personalization.rules import (
    DEFAULT_PHOTO_SPEC,
    PhotoSpec,
    check_birth_date,
    check_card_id_code,
    check_card_number,
    check_id_number,
    check_name,
    check_nation,
    check_photo,
    check_region_code,
    check_sex,
    parse_id_number,
)

_SEX_WORDS = {"1": "male", "2": "female"}


def validate_application(
    id_number: str,
    *,
    name: str | None = None,
    card_number: str | None = None,
    card_id_code: str | bytes | None = None,
    photo: bytes | None = None,
    photo_spec: PhotoSpec = DEFAULT_PHOTO_SPEC,
    birth_date: str | None = None,
    sex: str | None = None,
    nation: str | None = None,
    region: str | None = None,
    today: dt.date | None = None,
    check_region_consistency: bool = True,
    bank_name: str | None = None,
    layout: Layout | None = None,
) -> list[Finding]:
    """Return every finding for an application; an empty list means it may be fed.

    Fields left as None are not checked. `card_id_code` is normally known only after the chip
    is written; when given here its authenticator is required. `today` pins "now" for the
    birth-date checks (tests). See `check_consistency` for the cross-field rules. `name` and
    `bank_name` are also measured against `layout` (default: the packaged default template):
    codes `name_does_not_fit`, `bank_name_does_not_fit` (see face.check_layout_fit).
    """
    findings = check_id_number(id_number, today=today)
    if name is not None:
        findings += check_name(name)
    face: dict[str, str] = {}
    if name is not None and not findings_for(findings, "name"):
        face["name"] = name
    if bank_name is not None and bank_name.strip():
        face["bank_name"] = bank_name
    findings += check_face_fit(face, layout)
    if card_number is not None:
        findings += check_card_number(card_number)
    if card_id_code is not None:
        findings += check_card_id_code(card_id_code)
    if photo is not None:
        findings += check_photo(photo, photo_spec)
    if birth_date is not None:
        findings += check_birth_date(birth_date, today=today)
    if sex is not None:
        findings += check_sex(sex)
    if nation is not None:
        findings += check_nation(nation)
    if region is not None:
        findings += check_region_code(region)
    # Cross-check only fields that are valid on their own, so one typo is one finding.
    bad = {f.field for f in findings}
    findings += check_consistency(
        id_number,
        birth_date=None if "birth_date" in bad else birth_date,
        sex=None if "sex" in bad else sex,
        region=None if "region" in bad or not check_region_consistency else region,
    )
    return findings


def findings_for(findings: list[Finding], field: str) -> list[Finding]:
    return [f for f in findings if f.field == field]


def check_face_fit(values: dict[str, str], layout: Layout | None = None) -> list[Finding]:
    """Fit findings for card-face text (a name that is already invalid is not measured)."""
    if not values:
        return []
    try:
        return check_layout_fit(values, layout)
    except FontMissing as exc:  # cannot measure: say so instead of raising
        return [Finding(field, "font_missing", str(exc)) for field in values]


def check_consistency(
    id_number: str,
    *,
    birth_date: str | None = None,
    sex: str | None = None,
    region: str | None = None,
) -> list[Finding]:
    """Cross-check birth date, sex and region against the ID number (GB 11643 structure).

    Codes (on the field that disagrees): `birth_date`/`sex`/`region` with code
    `id_number_mismatch`. Sex '9' (unspecified) is reported too: a resident ID always encodes
    male or female. Region compares the birthplace code with the ID's address code, which is
    where the number was first registered and can legitimately differ from the birthplace;
    the finding lets the operator confirm (or the caller passes region=None to skip it).
    Nothing is reported when the ID number itself cannot be parsed. Messages echo neither the
    application's values nor the digits taken from the ID number (the masked part): they go
    into the job's events and its log line; the operator sees the values on the application.
    """
    parts = parse_id_number(id_number)
    if parts is None:
        return []
    findings: list[Finding] = []
    if birth_date is not None and birth_date != f"{parts.birth_date:%Y%m%d}":
        findings.append(
            Finding(
                "birth_date",
                "id_number_mismatch",
                "birth_date differs from the birth date in the ID number",
            )
        )
    if sex is not None and sex != parts.sex:
        findings.append(
            Finding(
                "sex",
                "id_number_mismatch",
                f"sex differs from the ID number, which encodes {_SEX_WORDS[parts.sex]}",
            )
        )
    if region is not None and region != parts.region:
        findings.append(
            Finding(
                "region",
                "id_number_mismatch",
                "region differs from the ID number's address code",
            )
        )
    return findings
