"""The new application's checks (personalization/intake.py, seed 001 article 6)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cardstation.personalization.intake import check_intake
from cardstation.personalization.model import IntakeApplication
from cardstation.simulators.cms.applicants import generate_applicants
from cardstation.simulators.cms.conformance import intake_of


@pytest.fixture(scope="module")
def good() -> IntakeApplication:
    return intake_of(generate_applicants(1, 41)[0])


def codes(app: IntakeApplication) -> set[tuple[str, str]]:
    return {(f.field, f.code) for f in check_intake(app)}


def test_a_complete_application_has_no_findings(good: IntakeApplication) -> None:
    assert check_intake(good) == []


@pytest.mark.parametrize("name", ["person_status", "hukou_type", "hukou_address", "phone",
                                  "postal_address", "employer_name", "employer_code",
                                  "bank_name", "id_address"])
def test_every_required_field_is_required(good: IntakeApplication, name: str) -> None:
    assert (name, "required") in codes(replace(good, **{name: " "}))


def test_the_service_bank_may_not_be_undecided(good: IntakeApplication) -> None:
    assert ("bank_name", "undecided") in codes(replace(good, bank_name="待定"))


@pytest.mark.parametrize(("field", "value", "code"), [
    ("employer_code", "4107000001", "invalid"),  # 10 digits
    ("employer_code", "4107000000A", "invalid"),
    ("phone", "1380013800", "invalid"),
    ("phone", "23800138000", "invalid"),
    ("person_status", "退学", "unknown_value"),
    ("hukou_type", "城市", "unknown_value"),
])
def test_malformed_values(good: IntakeApplication, field: str, value: str, code: str) -> None:
    assert (field, code) in codes(replace(good, **{field: value}))


def test_a_fixed_phone_with_its_area_code_is_accepted(good: IntakeApplication) -> None:
    assert check_intake(replace(good, phone="0373-1234567")) == []


def test_the_photo_and_the_id_number_are_checked(good: IntakeApplication) -> None:
    found = codes(replace(good, photo=b"", id_number=good.id_number[:-1] + "0"))
    assert ("photo", "empty") in found and any(f == "id_number" for f, _ in found)


def test_the_application_round_trips_and_never_shows_the_id_number(
        good: IntakeApplication) -> None:
    assert IntakeApplication.from_dict(good.to_dict()) == good
    assert good.id_number not in repr(good) and good.phone not in repr(good)
    with pytest.raises(ValueError, match="missing"):
        IntakeApplication.from_dict({"id_number": good.id_number})
