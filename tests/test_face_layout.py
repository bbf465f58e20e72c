"""Layout templates are data files: the packaged one loads; a malformed one is refused with an
error naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cardstation.personalization.face import (
    CHIP_CONTACTS_MM,
    LayoutError,
    default_layout,
    load_layout,
)
from cardstation.personalization.face.layout import CARD_MM, REQUIRED_FIELDS, _overlap
from tests.support.face import henan_json, layout_from


def test_the_henan_template_loads_and_keeps_the_chip_clear() -> None:
    layout = default_layout()
    assert layout.name == "henan" and layout.source == "henan.json"
    assert "PROPOSAL" in layout.description
    assert set(REQUIRED_FIELDS) <= set(layout.texts)
    assert not layout.texts["bank_card_number"].print_  # the stock carries the PAN
    x0, y0, x1, y1 = layout.chip_keepout
    assert (x0, y0) <= (CHIP_CONTACTS_MM[0] - 1, CHIP_CONTACTS_MM[1] - 1)
    assert (x1, y1) >= (CHIP_CONTACTS_MM[2] + 1, CHIP_CONTACTS_MM[3] + 1)
    for box in [layout.photo] + [t.box for t in layout.printed_texts()]:
        assert 0 <= box[0] < box[2] <= CARD_MM[0] and 0 <= box[1] < box[3] <= CARD_MM[1]
        assert not _overlap(box, layout.chip_keepout)
    assert load_layout("henan").texts.keys() == layout.texts.keys()  # by name, too


def _refused(tmp_path: Path, obj: Any, *expected: str) -> str:
    with pytest.raises(LayoutError) as info:
        layout_from(obj, tmp_path, "broken.json")
    message = str(info.value)
    assert "broken.json" in message
    for text in expected:
        assert text in message, message
    return message


def test_a_missing_field_is_refused(tmp_path: Path) -> None:
    obj = henan_json()
    del obj["fields"]["id_number"]
    _refused(tmp_path, obj, "fields.id_number", "missing")


def test_a_missing_key_of_a_field_is_refused(tmp_path: Path) -> None:
    obj = henan_json()
    del obj["fields"]["name"]["min_pt"]
    _refused(tmp_path, obj, "fields.name.min_pt", "missing")


def test_a_box_outside_the_card_is_refused(tmp_path: Path) -> None:
    obj = henan_json()
    obj["fields"]["card_number"]["box_mm"] = [70.0, 43.3, 90.0, 47.5]
    _refused(tmp_path, obj, "fields.card_number.box_mm", "outside the card")


def test_a_text_box_over_the_chip_is_refused(tmp_path: Path) -> None:
    obj = henan_json()
    obj["fields"]["name"]["box_mm"] = [15.0, 25.0, 50.0, 32.0]
    _refused(tmp_path, obj, "fields.name.box_mm", "overlaps the chip")


def test_a_photo_over_the_chip_is_refused(tmp_path: Path) -> None:
    obj = henan_json()
    obj["photo"]["box_mm"] = [5.0, 10.0, 23.0, 32.2]
    _refused(tmp_path, obj, "photo.box_mm", "overlaps the chip")


def test_a_keepout_smaller_than_the_contacts_and_margin_is_refused(tmp_path: Path) -> None:
    obj = henan_json()
    obj["chip_keepout_mm"] = [10.25, 19.23, 19.23, 29.5]  # the contacts, no margin
    _refused(tmp_path, obj, "chip_keepout_mm", "ISO 7816-2")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda o: o["fields"]["name"].update(min_pt=12), "min_pt"),
        (lambda o: o["fields"]["name"].update(box_mm=[30, 31, 24, 38]), "empty"),
        (lambda o: o["fields"]["name"].update(box_mm="left"), "box_mm"),
        (lambda o: o["fields"]["name"].update(colour="red"), "unknown key"),
        (lambda o: o["fields"].update(nickname={}), "fields: unknown key"),
        (lambda o: o["fields"]["name"].update(align="justify"), "align"),
        (lambda o: o["fields"]["name"].update(max_lines=0), "max_lines"),
        (lambda o: o["fields"]["name"].update(print="yes"), "print"),
        (lambda o: o.pop("photo"), "photo"),
    ],
    ids=["min-above-max", "empty-box", "box-not-a-list", "unknown-key", "unknown-field",
         "align", "lines", "print-not-bool", "no-photo"],
)
def test_other_malformed_templates_are_refused(tmp_path: Path, change, expected: str) -> None:
    obj = henan_json()
    change(obj)
    _refused(tmp_path, obj, expected)


def test_unreadable_or_invalid_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(LayoutError, match=r"broken\.json: not valid JSON"):
        load_layout(path)
    with pytest.raises(LayoutError, match=r"nowhere\.json"):
        load_layout(tmp_path / "nowhere.json")
    with pytest.raises(LayoutError, match=r"atlantis\.json"):
        load_layout("atlantis")
