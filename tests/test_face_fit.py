"""Long names and bank names shrink or wrap inside their box and never clip; a value that
cannot fit at the minimum legible size is a validation finding (issue 11 item 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardstation.personalization.face import (
    FaceDoesNotFit,
    check_layout_fit,
    default_layout,
    fit_fields,
    render_chip_side_preview,
    render_print,
)
from cardstation.personalization.rules.name import NAME_MAX_BYTES, check_name
from cardstation.personalization.validation import validate_application
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from tests.support.face import (
    LONG_BANK_NAME,
    LONGEST_NAME,
    henan_json,
    layout_from,
    only,
    resin_ink,
)


def _ink_box(field: str, value: str) -> tuple[int, int, int, int]:
    side = render_print(only(**{field: value}))
    assert side.k_mask is not None
    bbox = resin_ink(side.k_mask).getbbox()
    assert bbox is not None
    return bbox


def _inside(ink: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> bool:
    # getbbox is exclusive at the right and bottom; box_px's x1/y1 is the last usable pixel
    return ink[0] >= box[0] and ink[1] >= box[1] and ink[2] <= box[2] + 1 and ink[3] <= box[3] + 1


def test_the_longest_name_the_chip_holds_shrinks_and_wraps_inside_its_box() -> None:
    assert check_name(LONGEST_NAME) == []
    assert len(LONGEST_NAME.encode("gbk")) == NAME_MAX_BYTES
    box = default_layout().texts["name"]
    (fitted,) = [f for f in fit_fields(only(name=LONGEST_NAME)) if f.field == "name"]
    assert fitted.fits and len(fitted.lines) == 2 and fitted.size_pt < box.max_pt
    assert "".join(fitted.lines) == LONGEST_NAME  # nothing dropped
    assert _inside(_ink_box("name", LONGEST_NAME), box.box_px())


def test_a_short_name_keeps_the_largest_size_on_one_line() -> None:
    box = default_layout().texts["name"]
    (fitted,) = [f for f in fit_fields(only(name="李秀英")) if f.field == "name"]
    assert fitted.lines == ("李秀英",) and fitted.size_pt >= box.max_pt - 0.25


def test_a_name_too_wide_for_one_line_at_the_minimum_shrinks_before_it_wraps() -> None:
    box = default_layout().texts["name"]
    name = "买买提·艾力阿不都热合曼"  # 12 characters, the · stays with its neighbour
    (fitted,) = [f for f in fit_fields(only(name=name)) if f.field == "name"]
    assert fitted.fits and fitted.lines == (name,) and fitted.size_pt < box.max_pt
    assert _inside(_ink_box("name", name), box.box_px())


def test_a_long_latin_name_wraps_at_a_space() -> None:
    name = "MUHAMMAD ABDULLAH IBN RASHID AL MAKTOUM BIN SAEED"  # 49 bytes
    assert check_name(name) == []
    box = default_layout().texts["name"]
    (fitted,) = [f for f in fit_fields(only(name=name)) if f.field == "name"]
    assert fitted.fits and len(fitted.lines) == 2
    assert " ".join(fitted.lines) == name  # broken between words, none split
    assert _inside(_ink_box("name", name), box.box_px())


def test_a_long_bank_name_shrinks_and_wraps_inside_its_box() -> None:
    box = default_layout().texts["bank_name"]
    (fitted,) = [f for f in fit_fields(only(bank_name=LONG_BANK_NAME)) if f.field == "bank_name"]
    assert fitted.fits and len(fitted.lines) == 2 and fitted.size_pt < box.max_pt
    assert _inside(_ink_box("bank_name", LONG_BANK_NAME), box.box_px())


def test_a_name_that_cannot_fit_at_the_minimum_size_is_a_finding() -> None:
    name = "W" * 50  # valid for the chip (50 bytes), too wide for two lines at 6 pt
    assert check_name(name) == []
    findings = validate_application(EXAMPLE_ID_NUMBER, name=name)
    (finding,) = [f for f in findings if f.field == "name"]
    assert finding.code == "name_does_not_fit"
    assert "6 pt" in finding.message and "clipped" in finding.message  # cause
    assert "CMS" in finding.message and "henan.json" in finding.message  # remedy
    with pytest.raises(FaceDoesNotFit, match="name"):
        render_print(only(name=name))  # never printed clipped
    render_chip_side_preview(only(name=name))  # the operator still sees it (outlined)


def test_a_smaller_box_makes_an_ordinary_name_a_finding(tmp_path: Path) -> None:
    obj = henan_json()
    obj["fields"]["name"].update(box_mm=[24.0, 31.0, 33.0, 34.5], max_lines=1)
    layout = layout_from(obj, tmp_path)
    assert check_layout_fit({"name": "李秀英"}, layout) == []
    (finding,) = check_layout_fit({"name": "欧阳秀英娜"}, layout)
    assert (finding.field, finding.code) == ("name", "name_does_not_fit")
    assert "custom.json" in finding.message


def test_a_bank_name_that_cannot_fit_is_a_finding() -> None:
    findings = validate_application(EXAMPLE_ID_NUMBER, bank_name=LONG_BANK_NAME * 2)
    assert [(f.field, f.code) for f in findings] == [("bank_name", "bank_name_does_not_fit")]
    assert validate_application(EXAMPLE_ID_NUMBER, bank_name=LONG_BANK_NAME) == []


def test_an_invalid_name_is_not_also_measured() -> None:
    findings = validate_application(EXAMPLE_ID_NUMBER, name="W" * 60)
    assert [f.code for f in findings] == ["too_long"]
