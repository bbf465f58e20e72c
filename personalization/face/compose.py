"""The holder's data placed by a layout template: the print job and the operator's preview.

Printing: ONE side, the chip side (背面), holder data only, on pre-printed stock. The photo goes
on the dye panels (YMC), the text on resin K alone, everything else stays white (no ink); the
overcoat covers the side except the chip keep-out. The emblem side (正面) is the stock's and
is never printed. Preview: the same holder layers over a picture of the stock (see stock.py),
with the emblem side shown as the stock alone.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from cardstation.drivers.hiti.render import PrintSide
from cardstation.personalization.face.layout import (
    SIZE,
    Layout,
    default_layout,
    inner_px,
    outer_px,
)
from cardstation.personalization.face.stock import (
    chip_side_stock,
    draw_placeholders,
    emblem_side_stock,
)
from cardstation.personalization.face.text import FittedText, cjk_font, fit_text
from cardstation.personalization.findings import Finding

WHITE = (255, 255, 255)
OVERFLOW = (220, 30, 30)


@dataclass(frozen=True)
class FaceData:
    """What the station prints for one holder. `bank_card_number` (the PAN) is known only
    once the chip has been read; before that the preview shows the template's placeholder."""

    name: str
    id_number: str
    card_number: str
    issue_date: str  # YYYYMMDD
    bank_name: str
    photo_jpeg: bytes
    bank_card_number: str = ""


class FaceDoesNotFit(ValueError):
    """A value that would overflow its box; printing it would clip it, so nothing is printed."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("; ".join(f"{f.field}: {f.message}" for f in findings))


def _format(field: str, value: str, fmt: str) -> str:
    if field == "issue_date" and fmt and len(value) == 8 and value.isdigit():
        return fmt.format(yyyy=value[:4], mm=value[4:6], dd=value[6:])
    if field == "bank_card_number" and value.isdigit():
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4))  # as on bank cards
    return value


def _values(data: FaceData | Mapping[str, str]) -> Mapping[str, str]:
    if isinstance(data, FaceData):
        return {"name": data.name, "id_number": data.id_number, "card_number": data.card_number,
                "issue_date": data.issue_date, "bank_name": data.bank_name,
                "bank_card_number": data.bank_card_number}
    return data


def fit_fields(data: FaceData | Mapping[str, str], layout: Layout | None = None
               ) -> list[FittedText]:  # fmt: skip
    """Every printed field of `layout` fitted to its box (missing or empty values: no lines)."""
    layout = layout or default_layout()
    values = _values(data)
    return [fit_text(box, _format(box.field, values.get(box.field) or "", box.format))
            for box in layout.printed_texts()]


def check_layout_fit(data: FaceData | Mapping[str, str], layout: Layout | None = None
                     ) -> list[Finding]:  # fmt: skip
    """Findings for values that cannot fit their box at the minimum legible size.

    `data` is a FaceData or a mapping of field name to value (only the fields given are
    checked). Code `<field>_does_not_fit`, e.g. `name_does_not_fit`, `bank_name_does_not_fit`.
    Raises FontMissing when no CJK font is installed (text cannot be measured).
    """
    layout = layout or default_layout()
    values = _values(data)
    findings = []
    for fitted in fit_fields({k: v for k, v in values.items() if v}, layout):
        if fitted.fits:
            continue
        box = layout.texts[fitted.field]
        w, h = box.box[2] - box.box[0], box.box[3] - box.box[1]
        lines = f"{box.max_lines} lines" if box.max_lines > 1 else "one line"
        remedy = (_REMEDY.get(fitted.field, "shorten the value")
                  + f", or widen the box in layout {layout.source}")
        findings.append(Finding(
            fitted.field, f"{fitted.field}_does_not_fit",
            f"{fitted.field} ({len(fitted.text)} characters) does not fit its {w:.1f} x {h:.1f} "
            f"mm box on the card face even at the minimum legible size {box.min_pt:g} pt in "
            f"{lines}; it would be clipped: {remedy}"))
    return findings


_REMEDY = {
    "name": "ask the CMS for the holder's agreed card-face form of the name",
    "bank_name": "ask the CMS for the bank's short name",
}


@dataclass(frozen=True, eq=False)  # hashed by identity: the print side is cached per one
class _Composition:
    texts: tuple[FittedText, ...]
    ink: Image.Image | None  # "L", 255 = resin K
    photo: Image.Image | None
    photo_at: tuple[int, int]


def _photo(jpeg: bytes, box: tuple[int, int, int, int]) -> tuple[Image.Image, tuple[int, int]]:
    x0, y0, x1, y1 = box
    # contain, not cover: a photo is never cropped; the box has the photo spec's aspect ratio
    photo = ImageOps.contain(Image.open(io.BytesIO(jpeg)).convert("RGB"), (x1 - x0, y1 - y0),
                             Image.Resampling.BICUBIC)
    return photo, (x0 + (x1 - x0 - photo.width) // 2, y0 + (y1 - y0 - photo.height) // 2)


def _compose(data: FaceData, layout: Layout) -> _Composition:
    values = _values(data)
    # keyed by what is printed only: the print's FaceData (chip read-back, with the PAN) then
    # finds the preview's composition when the template does not print the PAN
    key = tuple((box.field, values.get(box.field) or "") for box in layout.printed_texts())
    return _compose_printed(key, data.photo_jpeg, layout)


@lru_cache(maxsize=4)  # a batch has two cards in flight; the preview and the print share it
def _compose_printed(key: tuple[tuple[str, str], ...], photo_jpeg: bytes, layout: Layout
                     ) -> _Composition:  # fmt: skip
    texts = tuple(fit_fields(dict(key), layout))
    ink = None
    if any(t.lines for t in texts):
        ink = Image.new("L", SIZE, 0)
        draw = ImageDraw.Draw(ink)
        draw.fontmode = "1"  # resin K is on or off: no grey edges to turn into dye
        for fitted in texts:
            font = cjk_font(fitted.size_px)
            for line, origin in zip(fitted.lines, fitted.origins, strict=True):
                draw.text(origin, line, font=font, fill=255, anchor="ls")
        ink.paste(0, outer_px(layout.chip_keepout))  # whatever a template says
    photo, at = (None, (0, 0))
    if photo_jpeg:
        photo, at = _photo(photo_jpeg, inner_px(layout.photo))
    return _Composition(texts, ink, photo, at)


@lru_cache(maxsize=8)
def _overcoat_mask(layout: Layout) -> Image.Image:
    mask = Image.new("L", SIZE, 255)
    for box in layout.overcoat_keepouts:
        mask.paste(0, outer_px(box))
    return mask


def render_print(data: FaceData, layout: Layout | None = None) -> PrintSide:
    """The one side the station prints (the chip side): photo on YMC, text on resin K,
    overcoat off the chip. Raises FaceDoesNotFit rather than print a clipped value."""
    layout = layout or default_layout()
    return _render_print(data, layout)


def _render_print(data: FaceData, layout: Layout) -> PrintSide:
    comp = _compose(data, layout)
    if not all(t.fits for t in comp.texts):
        raise FaceDoesNotFit(check_layout_fit(data, layout))
    return _print_side(comp, layout)


@lru_cache(maxsize=4)
def _print_side(comp: _Composition, layout: Layout) -> PrintSide:
    colour = None
    if comp.photo is not None:
        colour = Image.new("RGB", SIZE, WHITE)
        colour.paste(comp.photo, comp.photo_at)
        colour.paste(WHITE, outer_px(layout.chip_keepout))
    k_mask = None
    if comp.ink is not None:
        k_mask = comp.ink.point(lambda v: 0 if v else 255)  # 0 = print resin K
    return PrintSide(colour, k_mask, _overcoat_mask(layout))


def clear_caches() -> None:
    """Forget the per-holder renders (benchmarks, tests); templates and stock stay cached."""
    _compose_printed.cache_clear()
    _print_side.cache_clear()


def render_chip_side_preview(data: FaceData, layout: Layout | None = None) -> Image.Image:
    """The chip side as the card will leave the printer: stock picture + holder data.
    A value that does not fit is drawn at its minimum size with its box outlined in red."""
    layout = layout or default_layout()
    comp = _compose(data, layout)
    image = chip_side_stock(layout).copy()
    if comp.photo is not None:
        image.paste(comp.photo, comp.photo_at)
    if comp.ink is not None:
        image.paste((0, 0, 0), (0, 0), comp.ink)
    draw = ImageDraw.Draw(image)
    for fitted in comp.texts:
        box = layout.texts[fitted.field]
        if not fitted.fits:
            draw.rectangle(box.box_px(), outline=OVERFLOW, width=3)
    # a printed field still unknown (the PAN before the chip is read): its placeholder
    draw_placeholders(image, [layout.texts[t.field] for t in comp.texts if not t.text])
    return image


def render_emblem_side_preview(layout: Layout | None = None) -> Image.Image:
    """The emblem side: the stock alone (labelled pre-printed). Shared: treat as read-only."""
    return emblem_side_stock(layout or default_layout())


#: The operator's preview is drawn at half the print resolution (150 dpi): 507 px across is
#: still larger than the card itself on a 96 dpi monitor, and a full-resolution sheet costs
#: about 80 ms per card to encode as PNG.
PREVIEW_REDUCTION = 2


@lru_cache(maxsize=16)
def _reduced_stock(layout: Layout, reduction: int, side: str) -> Image.Image:
    image = emblem_side_stock(layout) if side == "emblem" else chip_side_stock(layout)
    return image.reduce(reduction) if reduction > 1 else image


def render_preview_sides(data: FaceData, layout: Layout | None = None,
                         reduction: int = 1) -> tuple[Image.Image, Image.Image]:
    """(emblem side 正面, chip side 背面) for the operator, each card-sized / `reduction`.
    The emblem side is the stock picture alone and shared: treat it as read-only."""
    layout = layout or default_layout()
    emblem = _reduced_stock(layout, reduction, "emblem")
    comp = _compose(data, layout)
    marked = any(not t.fits or (not t.text and layout.texts[t.field].placeholder)
                 for t in comp.texts)
    if reduction == 1 or marked:  # outlines and placeholders are drawn at full size
        chip = render_chip_side_preview(data, layout)
        return emblem, chip.reduce(reduction) if reduction > 1 else chip
    # the usual case, composed at the preview's size: a quarter of the pixels to copy
    chip = _reduced_stock(layout, reduction, "chip").copy()
    if comp.photo is not None:
        x, y = comp.photo_at
        chip.paste(comp.photo.reduce(reduction), (x // reduction, y // reduction))
    if comp.ink is not None:
        chip.paste((0, 0, 0), (0, 0), comp.ink.reduce(reduction))
    return emblem, chip


def render_preview(data: FaceData, reduction: int = PREVIEW_REDUCTION,
                   layout: Layout | None = None) -> Image.Image:
    """Emblem side above chip side, for the operator to check before a card is fed."""
    emblem, chip = render_preview_sides(data, layout, reduction)
    gap = 20 // reduction
    sheet = Image.new("RGB", (emblem.width, emblem.height + gap + chip.height), (128, 128, 128))
    sheet.paste(emblem, (0, 0))
    sheet.paste(chip, (0, emblem.height + gap))
    return sheet


#: The job's preview file is a JPEG: the operator only looks at it, and it is on the per-card
#: path, where a PNG of the sheet costs about 6 ms to encode and a JPEG about 1.4 ms. Quality 90
#: without chroma subsampling keeps the text and the thin red overflow outlines sharp.
PREVIEW_JPEG = {"quality": 90, "subsampling": 0}


def save_preview(image: Image.Image, path: Path) -> None:
    """Write the preview whole or not at all (a reader never sees half a file), readable by the
    station's user only (it shows the holder's face and data). `path`'s suffix picks the
    format: ".jpg"/".jpeg" a JPEG (the pipeline's), anything else a PNG."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            if path.suffix.lower() in (".jpg", ".jpeg"):
                rgb = image if image.mode == "RGB" else image.convert("RGB")
                rgb.save(out, "JPEG", **PREVIEW_JPEG)
            else:
                image.save(out, "PNG", compress_level=1)  # fast; local and short-lived
        partial.replace(path)
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk must not keep half a file as well
        raise
