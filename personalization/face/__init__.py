"""Card face: layout templates (data files), text fitting, the print side and the preview.

Per 社会保障(个人)卡规范 part 1 the emblem side (正面) is wholly pre-printed on the stock and the
station prints only the holder's data on the chip side (背面), placed by the card design's
template (`layouts/*.json`; the default, Henan, is a proposal). See compose.py.

Old names kept for callers not yet moved: `render_faces` returns the one print side and
None (so `print_faces(front, back)` prints one side), `render_front`/`render_back` the
full-size preview of the emblem side and of the chip side.
"""

from __future__ import annotations

from PIL import Image

from cardstation.drivers.hiti.render import PrintSide
from cardstation.personalization.face.compose import (
    PREVIEW_REDUCTION,
    FaceData,
    FaceDoesNotFit,
    check_layout_fit,
    fit_fields,
    render_chip_side_preview,
    render_emblem_side_preview,
    render_preview,
    render_preview_sides,
    render_print,
    save_preview,
)
from cardstation.personalization.face.layout import (
    CHIP_CONTACTS_MM,
    DEFAULT_LAYOUT,
    SIZE,
    Layout,
    LayoutError,
    TextBox,
    default_layout,
    load_layout,
    parse_layout,
)
from cardstation.personalization.face.text import FittedText, FontMissing, cjk_font, fit_text

#: Only one side is printed (the chip side, in colour for the photo); kept for old callers:
#: there is no back to print in colour.
BACK_IN_COLOUR = False


def render_faces(data: FaceData) -> tuple[PrintSide, None]:
    """Deprecated: (the one print side, None). Use `render_print`."""
    return render_print(data), None


def render_front(data: FaceData) -> Image.Image:
    """Deprecated: the emblem side's preview (stock only). Use `render_preview_sides`."""
    return render_emblem_side_preview()


def render_back(data: FaceData) -> Image.Image:
    """Deprecated: the chip side's preview (stock + holder data). Use `render_preview_sides`."""
    return render_chip_side_preview(data)


__all__ = [
    "BACK_IN_COLOUR",
    "CHIP_CONTACTS_MM",
    "DEFAULT_LAYOUT",
    "PREVIEW_REDUCTION",
    "SIZE",
    "FaceData",
    "FaceDoesNotFit",
    "FittedText",
    "FontMissing",
    "Layout",
    "LayoutError",
    "PrintSide",
    "TextBox",
    "check_layout_fit",
    "cjk_font",
    "default_layout",
    "fit_fields",
    "fit_text",
    "load_layout",
    "parse_layout",
    "render_back",
    "render_chip_side_preview",
    "render_emblem_side_preview",
    "render_faces",
    "render_front",
    "render_preview",
    "render_preview_sides",
    "render_print",
    "save_preview",
]
