"""Resident ID number rules (GB 11643, ISO 7064 MOD 11-2)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardstation.personalization.rules import (
    check_id_number,
    id_check_char,
    is_valid_id_number,
    normalize_id_number,
    parse_id_number,
)

GB_EXAMPLE = "11010519491231002X"  # the worked example of GB 11643
TODAY = dt.date(2025, 6, 1)


def codes(value: str) -> list[str]:
    return [f.code for f in check_id_number(value, today=TODAY)]


def test_standard_example_is_valid() -> None:
    assert id_check_char(GB_EXAMPLE[:17]) == "X"
    assert check_id_number(GB_EXAMPLE, today=TODAY) == []
    assert is_valid_id_number(GB_EXAMPLE)


@pytest.mark.parametrize(
    ("body", "check"),
    [
        # Worked by hand (weighted sum mod 11 -> "10X98765432") and cross-checked with the
        # iterative ISO 7064 form p = 2(p + d) mod 11, check = (12 - p) mod 11.
        ("44052418800101001", "4"),  # sum 195, mod 11 = 8
        ("11010119900307123", "3"),  # sum 174, mod 11 = 9
        ("11010119900307187", "4"),  # sum 206, mod 11 = 8
    ],
)
def test_check_char_vectors(body: str, check: str) -> None:
    assert id_check_char(body) == check


@pytest.mark.parametrize("bad", ["1101051949123100", "1101051949123100X", "1" * 19, ""])
def test_id_check_char_rejects_bad_body(bad: str) -> None:
    with pytest.raises(ValueError):
        id_check_char(bad)


def test_every_single_substitution_of_the_example_is_caught() -> None:
    for pos, original in enumerate(GB_EXAMPLE):
        for repl in "0123456789X":
            if repl == original:
                continue
            changed = GB_EXAMPLE[:pos] + repl + GB_EXAMPLE[pos + 1 :]
            found = codes(changed)
            expected = "characters" if repl == "X" and pos < 17 else "check_char_mismatch"
            assert expected in found, (pos, repl, found)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("11010519491231002", "length"),  # 17 characters
        ("110105194912310", "length"),  # first-generation 15 digits
        ("11010519491231002XX", "length"),
        ("11010519491231002Y", "characters"),
        ("1101051949123100X2", "characters"),  # X only last
        ("11010519491231002x", "lowercase_x"),
        ("110105194912310021", "check_char_mismatch"),
        (" 11010519491231002", "characters"),
        ("１１０１０５１９４９１２３１００２X", "characters"),  # full-width digits
    ],
)
def test_structural_findings(value: str, code: str) -> None:
    findings = check_id_number(value, today=TODAY)
    assert [f.code for f in findings] == [code]
    assert all(f.field == "id_number" for f in findings)


def with_check(body17: str) -> str:
    return body17 + id_check_char(body17)


@pytest.mark.parametrize(
    "body",
    [
        "11010519490230002",  # 30 February
        "11010518991231002",  # before 1900
        "11010520991231002",  # future (relative to TODAY)
        "11010519491300002",  # month 13
    ],
)
def test_birth_date_findings(body: str) -> None:
    assert codes(with_check(body)) == ["birth_date"]


@pytest.mark.parametrize("body", ["01010519491231002", "91010519491231002", "00000019491231002"])
def test_region_findings(body: str) -> None:
    assert codes(with_check(body)) == ["region"]


def test_messages_never_carry_the_full_number() -> None:
    inputs = [
        "110105194912310021",
        "11010519490230002" + id_check_char("11010519490230002"),
        "01010519491231002" + id_check_char("01010519491231002"),
        "11010519491231002x",
        "11010519491231002Y",
    ]
    for value in inputs:
        findings = check_id_number(value, today=TODAY)
        assert findings
        for finding in findings:
            assert value not in finding.message
            assert value[6:14] not in finding.message  # the birth date is the masked part


def test_mask_keeps_first_six_and_last_four() -> None:
    [finding] = check_id_number("110105194912310021", today=TODAY)
    assert "110105********0021" in finding.message


def test_non_text_is_a_finding_not_an_exception() -> None:
    assert codes(None) == ["characters"]  # type: ignore[arg-type]


def test_normalize_and_parse() -> None:
    assert normalize_id_number(" 11010519491231002x ") == GB_EXAMPLE
    parts = parse_id_number(GB_EXAMPLE)
    assert parts is not None
    assert parts.region == "110105"
    assert parts.birth_date == dt.date(1949, 12, 31)
    assert parts.sequence == "002"
    assert parts.sex == "2"
    assert parse_id_number("11010519490230002X") is None


# --- property tests ----------------------------------------------------------------------------

valid_ids = st.builds(
    lambda region, born, seq: with_check(f"{region}{born:%Y%m%d}{seq:03d}"),
    st.from_regex(r"\A[1-8][0-9]{5}\Z"),
    st.dates(dt.date(1900, 1, 1), TODAY),
    st.integers(0, 999),
)


@settings(max_examples=150, deadline=None)
@given(valid_ids)
def test_generated_numbers_validate_clean(value: str) -> None:
    assert check_id_number(value, today=TODAY) == []


@settings(max_examples=200, deadline=None)
@given(valid_ids, st.integers(0, 17), st.sampled_from("0123456789X"))
def test_any_single_substitution_is_caught(value: str, pos: int, repl: str) -> None:
    if value[pos] == repl:
        return
    changed = value[:pos] + repl + value[pos + 1 :]
    expected = "characters" if repl == "X" and pos < 17 else "check_char_mismatch"
    assert expected in codes(changed)
