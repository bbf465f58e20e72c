"""Card identification code structure (S1 表10)."""

from __future__ import annotations

import pytest

from cardstation.personalization.rules import (
    SSC_AID,
    CardIdCode,
    check_card_id_code,
    parse_card_id_code,
)

REAL = "639900D15600000500BF7C7A48FB4966"  # reference/ssc-chip.md §5.1 (S4)
UNFINISHED = "330300D15600000599110145FFFFFFFF"  # S3: authenticator not yet written


def test_parse_real_code() -> None:
    code = parse_card_id_code(REAL)
    assert code == CardIdCode(region="639900", serial="00BF7C7A", auth="48FB4966")
    assert code.aid == SSC_AID == "D156000005"
    assert code.issue_code == "639900D15600000500BF7C7A"
    assert code.to_hex() == REAL
    assert code.has_auth
    assert check_card_id_code(REAL) == []


def test_parse_bytes_and_lowercase() -> None:
    assert parse_card_id_code(bytes.fromhex(REAL)) == parse_card_id_code(REAL.lower())
    assert parse_card_id_code(REAL).to_bytes() == bytes.fromhex(REAL)


def test_unwritten_authenticator() -> None:
    assert not parse_card_id_code(UNFINISHED).has_auth
    assert [f.code for f in check_card_id_code(UNFINISHED)] == ["auth_unwritten"]
    assert check_card_id_code(UNFINISHED, require_auth=False) == []


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (REAL[:-2], "length"),
        (REAL + "00", "length"),
        (bytes.fromhex(REAL)[:15], "length"),
        (REAL[:-1] + "G", "characters"),
        ("0A9900" + REAL[6:], "region"),  # region must be decimal digits
        ("939900" + REAL[6:], "region"),
        (REAL[:6] + "D156000006" + REAL[16:], "aid"),
    ],
)
def test_structure_findings(value: str | bytes, code: str) -> None:
    findings = check_card_id_code(value)
    assert [f.code for f in findings] == [code]
    assert findings[0].field == "card_id_code"
    with pytest.raises(ValueError):
        parse_card_id_code(value)
