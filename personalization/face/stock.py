"""Pictures of the pre-made stock (预制卡) for the operator's preview, drawn from the template.

A clearly synthetic stand-in, drawn here in code (no artwork is shipped or downloaded): flat
colours, a gold chip, outlined placeholders named after the marks the card maker prints
(seal, UnionPay, national emblem), the field labels and "SAMPLE STOCK". Nothing here is ever
printed; it only shows the operator where the holder's data will land. Each picture is drawn
once per template (the preview is on the per-card path).
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw

from cardstation.personalization.face.layout import (
    SIZE,
    Layout,
    StockItem,
    TextBox,
    inner_px,
    outer_px,
)
from cardstation.personalization.face.text import cjk_font, fit_text, pt_to_px

CHIP_SIDE_PAPER = (234, 242, 247)
EMBLEM_SIDE_PAPER = (247, 236, 232)
BAND = (23, 87, 160)
EMBLEM_BAND = (176, 32, 38)
MARK = (120, 130, 150)
LABEL = (60, 70, 90)
PLACEHOLDER = (150, 160, 175)
GOLD = (212, 175, 85)
GOLD_LINE = (150, 115, 40)


def _draw_items(image: Image.Image, items: tuple[StockItem, ...], band: tuple[int, int, int]
                ) -> None:  # fmt: skip
    draw = ImageDraw.Draw(image)
    for item in items:
        x0, y0, x1, y1 = inner_px(item.box)
        font = cjk_font(pt_to_px(item.pt))
        if item.kind == "band":
            draw.rectangle((x0, y0, x1, y1), fill=band)
            if item.text:
                draw.text((x0 + 24, (y0 + y1) // 2), item.text, font=font, fill=(255, 255, 255),
                          anchor="lm")
        elif item.kind == "mark":
            if "国徽" in item.text:  # a plain placeholder circle, never the emblem itself
                draw.ellipse((x0, y0, x1, y1), outline=MARK, width=3)
            else:
                draw.rounded_rectangle((x0, y0, x1, y1), radius=12, outline=MARK, width=3)
            draw.text(((x0 + x1) // 2, (y0 + y1) // 2), item.text, font=font, fill=MARK,
                      anchor="mm")
        else:
            draw.text((x0, y0), item.text, font=font, fill=LABEL, anchor="lt")


def _draw_chip(image: Image.Image, layout: Layout) -> None:
    """A gold module over the keep-out with the eight contact pads (ISO 7816-2 C1..C8)."""
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = outer_px(layout.chip_keepout)
    draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=18, fill=GOLD, outline=GOLD_LINE,
                           width=2)
    mid = (x0 + x1) // 2
    draw.line((mid, y0 + 6, mid, y1 - 6), fill=GOLD_LINE, width=3)
    for i in range(1, 4):
        y = y0 + (y1 - y0) * i // 4
        draw.line((x0 + 6, y, x1 - 6, y), fill=GOLD_LINE, width=3)


@lru_cache(maxsize=8)
def chip_side_stock(layout: Layout) -> Image.Image:
    """The chip side (背面) as the stock arrives, with the placeholders of fields the stock
    carries (e.g. a pre-printed bank card number). Shared: copy before drawing on it."""
    image = Image.new("RGB", SIZE, CHIP_SIDE_PAPER)
    _draw_items(image, layout.stock, BAND)
    _draw_chip(image, layout)
    draw_placeholders(image, [box for box in layout.texts.values() if not box.print_])
    return image


def draw_placeholders(image: Image.Image, boxes: list[TextBox]) -> None:
    """Grey placeholder text (e.g. a bank card number the stock carries), fitted like data."""
    draw = ImageDraw.Draw(image)
    for box in boxes:
        if box.placeholder:
            fitted = fit_text(box, box.placeholder)
            font = cjk_font(fitted.size_px)
            for line, origin in zip(fitted.lines, fitted.origins, strict=True):
                draw.text(origin, line, font=font, fill=PLACEHOLDER, anchor="ls")


@lru_cache(maxsize=8)
def emblem_side_stock(layout: Layout) -> Image.Image:
    """The emblem side (正面): wholly pre-printed, never printed by the station."""
    image = Image.new("RGB", SIZE, EMBLEM_SIDE_PAPER)
    _draw_items(image, layout.emblem_stock, EMBLEM_BAND)
    return image
