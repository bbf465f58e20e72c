"""Holder name rules: GBK into EF06 tag 09 (30 bytes) + tag 4E (20 bytes)."""

from __future__ import annotations

import pytest

from cardstation.personalization.rules import check_name, join_name_gbk, split_name_gbk

ZHONG = b"\xd6\xd0"  # '中' in GBK


def codes(name: str) -> list[str]:
    return [f.code for f in check_name(name)]


def test_two_character_name() -> None:
    tag09, tag4e = split_name_gbk("张三")
    assert tag09 == b"\xd5\xc5\xc8\xfd" + b"\x00" * 26
    assert tag4e == b"\x00" * 20
    assert check_name("张三") == []
    assert join_name_gbk(tag09, tag4e) == "张三"


def test_exactly_thirty_bytes_stays_in_tag_09() -> None:
    tag09, tag4e = split_name_gbk("中" * 15)
    assert tag09 == ZHONG * 15
    assert tag4e == b"\x00" * 20


def test_sixteen_character_name_overflows_into_4e() -> None:
    name = "中" * 15 + "国"
    tag09, tag4e = split_name_gbk(name)
    assert tag09 == ZHONG * 15
    assert tag4e == b"\xb9\xfa" + b"\x00" * 18
    assert check_name(name) == []
    assert join_name_gbk(tag09, tag4e) == name


def test_double_byte_char_at_the_boundary_moves_whole_to_4e() -> None:
    # 'A' + 15 x '中' = 31 bytes: the 15th '中' would occupy bytes 30-31, so it goes to 4E.
    name = "A" + "中" * 15
    tag09, tag4e = split_name_gbk(name)
    assert tag09 == b"A" + ZHONG * 14 + b"\x00"
    assert tag4e == ZHONG + b"\x00" * 18
    assert join_name_gbk(tag09, tag4e) == name


def test_minority_name_with_middle_dot() -> None:
    name = "买买提·艾力"
    tag09, _ = split_name_gbk(name)
    assert b"\xa1\xa4" in tag09  # the middle dot is GBK A1A4
    assert check_name(name) == []


def test_fifty_bytes_fits_and_fifty_one_does_not() -> None:
    assert check_name("中" * 25) == []
    tag09, tag4e = split_name_gbk("中" * 25)
    assert (tag09, tag4e) == (ZHONG * 15, ZHONG * 10)
    [finding] = check_name("中" * 25 + "A")
    assert (finding.field, finding.code) == ("name", "too_long")
    assert "51" in finding.message


def test_boundary_waste_can_make_fifty_bytes_not_fit() -> None:
    # 'A' + 24 x '中' + 'B' = 50 bytes, but tag 09 takes only 29 (no split char), leaving 21.
    assert codes("A" + "中" * 24 + "B") == ["too_long"]
    with pytest.raises(ValueError):
        split_name_gbk("A" + "中" * 24 + "B")


def test_latin_name_for_foreigners() -> None:
    name = "JOHN SMITH"
    tag09, _ = split_name_gbk(name)
    assert tag09.startswith(b"JOHN SMITH\x00")
    assert check_name(name) == []


@pytest.mark.parametrize(
    ("name", "position", "codepoint"),
    [
        ("𠀀", 1, "U+20000"),  # CJK Extension B
        ("刘䶮", 2, "U+4DAE"),  # CJK Extension A, a real given-name character
        ("王𠮷明", 2, "U+20BB7"),
    ],
)
def test_unencodable_character_is_named(name: str, position: int, codepoint: str) -> None:
    [finding] = check_name(name)
    assert (finding.field, finding.code) == ("name", "unencodable")
    assert f"character {position}" in finding.message
    assert codepoint in finding.message
    with pytest.raises(ValueError):
        split_name_gbk(name)


def test_each_unencodable_character_is_its_own_finding() -> None:
    assert codes("𠀀张𠮷") == ["unencodable", "unencodable"]


@pytest.mark.parametrize("name", ["", "   ", "\u3000"])
def test_empty(name: str) -> None:
    assert codes(name) == ["empty"]


def test_control_character() -> None:
    assert codes("张\x00三") == ["characters"]


def test_join_accepts_ff_padding() -> None:
    # One writer pads 姓名扩展 with FF instead of 00 (reference/ssc-chip.md §5.2).
    assert join_name_gbk(ZHONG * 15, b"\xb9\xfa" + b"\xff" * 18) == "中" * 15 + "国"
