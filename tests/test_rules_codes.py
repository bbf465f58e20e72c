"""Sex, nation, date and region codes, and whole-application validation with cross-checks."""

from __future__ import annotations

import datetime as dt

import pytest

from cardstation.personalization.rules import (
    check_birth_date,
    check_date,
    check_nation,
    check_region_code,
    check_sex,
    parse_yyyymmdd,
)
from cardstation.personalization.validation import check_consistency, validate_application

GB_EXAMPLE = "11010519491231002X"  # female (sequence 002), born 1949-12-31, address 110105
TODAY = dt.date(2025, 6, 1)


@pytest.mark.parametrize("sex", ["1", "2", "9"])
def test_sex_codes_ok(sex: str) -> None:
    assert check_sex(sex) == []


@pytest.mark.parametrize("sex", ["0", "3", "M", "", "11"])
def test_sex_codes_bad(sex: str) -> None:
    assert [(f.field, f.code) for f in check_sex(sex)] == [("sex", "code")]


@pytest.mark.parametrize("nation", ["01", "56", "97", "98", "99"])
def test_nation_ok(nation: str) -> None:
    assert check_nation(nation) == []


@pytest.mark.parametrize(
    ("nation", "code"), [("57", "code"), ("00", "code"), ("96", "code"), ("1", "format")]
)
def test_nation_bad(nation: str, code: str) -> None:
    assert [f.code for f in check_nation(nation)] == [code]


def test_dates() -> None:
    assert parse_yyyymmdd("20240229") == dt.date(2024, 2, 29)
    assert parse_yyyymmdd("20230229") is None
    assert check_date("20191120", "issue_date") == []
    assert [f.code for f in check_date("2019112", "issue_date")] == ["format"]
    assert [f.code for f in check_date("20191131", "issue_date")] == ["calendar"]
    assert [f.code for f in check_date("2019-11-2", "issue_date")] == ["format"]


def test_birth_date_bounds() -> None:
    assert check_birth_date("19000101", today=TODAY) == []
    assert check_birth_date("20250601", today=TODAY) == []
    assert [f.code for f in check_birth_date("18991231", today=TODAY)] == ["too_early"]
    assert [f.code for f in check_birth_date("20250602", today=TODAY)] == ["in_future"]


@pytest.mark.parametrize(
    ("region", "ok"),
    [
        ("110105", True),
        ("820000", True),
        ("010105", False),
        ("910105", False),
        ("11010", False),
        ("11010A", False),
    ],
)
def test_region_shape(region: str, ok: bool) -> None:
    assert (check_region_code(region) == []) is ok


def test_consistent_application_is_clean() -> None:
    findings = validate_application(
        GB_EXAMPLE,
        name="张三",
        card_number="BA0010547",
        birth_date="19491231",
        sex="2",
        nation="01",
        region="110105",
        today=TODAY,
    )
    assert findings == []


def test_inconsistent_fields() -> None:
    findings = check_consistency(GB_EXAMPLE, birth_date="19491230", sex="1", region="110106")
    assert [(f.field, f.code) for f in findings] == [
        ("birth_date", "id_number_mismatch"),
        ("sex", "id_number_mismatch"),
        ("region", "id_number_mismatch"),
    ]
    for finding in findings:
        assert "19491231" not in finding.message  # the ID's birth date stays masked
        # nor the application's own values: findings are logged with the job's events
        assert "19491230" not in finding.message and "110106" not in finding.message


def test_unspecified_sex_is_reported_against_an_id_number() -> None:
    assert [f.field for f in check_consistency(GB_EXAMPLE, sex="9")] == ["sex"]


def test_region_cross_check_can_be_switched_off() -> None:
    assert validate_application(GB_EXAMPLE, region="310101", today=TODAY) != []
    assert (
        validate_application(
            GB_EXAMPLE, region="310101", today=TODAY, check_region_consistency=False
        )
        == []
    )


def test_invalid_field_is_not_also_reported_as_inconsistent() -> None:
    findings = validate_application(GB_EXAMPLE, birth_date="19491332", sex="5", today=TODAY)
    assert [(f.field, f.code) for f in findings] == [("birth_date", "calendar"), ("sex", "code")]


def test_no_cross_check_when_id_number_is_broken() -> None:
    findings = validate_application("11010519491231002", sex="1", today=TODAY)
    assert [(f.field, f.code) for f in findings] == [("id_number", "length")]


def test_findings_from_every_field_are_collected() -> None:
    findings = validate_application(
        "110105194912310021",
        name="𠀀",
        card_number="BA0010548",
        card_id_code="639900D15600000500BF7C7A",
        photo=b"not a photo",
        nation="77",
        today=TODAY,
    )
    assert [(f.field, f.code) for f in findings] == [
        ("id_number", "check_char_mismatch"),
        ("name", "unencodable"),
        ("card_number", "check_char_mismatch"),
        ("card_id_code", "length"),
        ("photo", "too_small"),
        ("photo", "not_jpeg"),
        ("nation", "code"),
    ]
