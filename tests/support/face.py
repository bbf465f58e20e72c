"""Shared helpers of the card-face tests (no tests here): sample holders, layouts, ink boxes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops

from cardstation.personalization.face import FaceData, Layout, load_layout
from cardstation.personalization.face.layout import outer_px
from cardstation.simulators.cms.applicants import example_applicant

HENAN = Path(__file__).resolve().parents[2] / "personalization/face/layouts/henan.json"

#: 25 CJK characters = 50 GBK bytes: the longest name EF06 tags 09 + 4E hold.
LONGEST_NAME = "欧阳" * 12 + "娜"
LONG_BANK_NAME = "中国农业银行股份有限公司河南省分行营业部"


def henan_json() -> dict[str, Any]:
    return json.loads(HENAN.read_text(encoding="utf-8"))


def layout_from(obj: dict[str, Any], tmp_path: Path, name: str = "custom.json") -> Layout:
    path = tmp_path / name
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return load_layout(path)


def holder(**changes: Any) -> FaceData:
    app = example_applicant()
    fields: dict[str, Any] = {
        "name": app.name, "id_number": app.id_number, "card_number": app.card_number,
        "issue_date": app.issue_date, "bank_name": app.bank_name, "photo_jpeg": app.photo,
    }  # fmt: skip
    fields.update(changes)
    return FaceData(**fields)


def only(**fields: Any) -> FaceData:
    """A FaceData carrying just the given fields (no photo unless given)."""
    base: dict[str, Any] = {"name": "", "id_number": "", "card_number": "", "issue_date": "",
                            "bank_name": "", "photo_jpeg": b""}
    base.update(fields)
    return FaceData(**base)


def dark_photo() -> bytes:
    """A near-black JPEG: the worst case for dye and for a resin-K threshold."""
    out = io.BytesIO()
    Image.new("RGB", (358, 441), (10, 10, 12)).save(out, "JPEG", quality=90)
    return out.getvalue()


def ink_bbox(mask: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1 exclusive) of the non-zero pixels of an "L" image."""
    return mask.getbbox()


def resin_ink(k_plane: Image.Image) -> Image.Image:
    """255 where resin K prints (the plane is 0 there)."""
    return k_plane.point(lambda v: 255 if v == 0 else 0)


def region_max(image: Image.Image, box_mm: tuple[float, float, float, float]) -> int:
    """Largest value of any band of `image` inside a box (rounded outwards)."""
    region = image.crop(outer_px(box_mm))
    extrema = region.getextrema()
    if isinstance(extrema[0], tuple):
        return max(hi for _, hi in extrema)
    return int(extrema[1])


def not_white(image: Image.Image) -> Image.Image:
    """255 wherever an RGB image is not pure white."""
    inverted = ImageChops.invert(image.convert("RGB"))
    r, g, b = inverted.split()
    return ImageChops.lighter(ImageChops.lighter(r, g), b).point(lambda v: 255 if v else 0)
