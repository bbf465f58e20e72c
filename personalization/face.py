"""Card face rendering (Pillow): front and back at 1014x642 px (300 dpi, full bleed).

A first layout: photo left, holder data right, in black so it goes on the K-resin panel. The
CJK font comes from the Debian package fonts-wqy-zenhei (installed by `make setup`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SIZE = (1014, 642)
FONT_PATHS = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)


class FontMissing(RuntimeError):
    pass


@lru_cache(maxsize=16)  # loading a .ttc costs milliseconds; every card uses the same sizes
def cjk_font(size: int) -> ImageFont.FreeTypeFont:
    for path in FONT_PATHS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    raise FontMissing(
        "no CJK font found (looked for " + ", ".join(FONT_PATHS) + "): run `make setup`, "
        "which installs the Debian package fonts-wqy-zenhei"
    )


@dataclass(frozen=True)
class FaceData:
    name: str
    id_number: str
    card_number: str
    issue_date: str  # YYYYMMDD
    bank_name: str
    photo_jpeg: bytes


def render_faces(data: FaceData) -> tuple[Image.Image, Image.Image]:
    """Front and back. The same faces are drawn for the preview and again for printing (from
    the chip's read-back, normally identical), so the last few are kept. Treat the images as
    read-only: they are shared."""
    return _cached_faces(data)


@lru_cache(maxsize=4)  # a batch has at most two cards in flight (one printing, one prepared)
def _cached_faces(data: FaceData) -> tuple[Image.Image, Image.Image]:
    return render_front(data), render_back(data)


_FRONT_ROWS = ("姓名", "社会保障号码", "社会保障卡号", "发卡日期")
_ROW_TOP, _ROW_STEP = 170, 108


@lru_cache(maxsize=1)
def _front_template() -> Image.Image:
    """What every front shares (band, title, row labels): drawn once, copied per card."""
    img = Image.new("RGB", SIZE, (236, 244, 252))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, SIZE[0], 110), fill=(23, 87, 160))
    draw.text((40, 28), "中华人民共和国社会保障卡", font=cjk_font(52), fill=(255, 255, 255))
    for i, title in enumerate(_FRONT_ROWS):
        draw.text((380, _ROW_TOP + i * _ROW_STEP), title, font=cjk_font(34), fill=(0, 0, 0))
    return img


def render_front(data: FaceData) -> Image.Image:
    img = _front_template().copy()
    draw = ImageDraw.Draw(img)
    photo = Image.open(io.BytesIO(data.photo_jpeg)).convert("RGB").resize((286, 352))
    img.paste(photo, (50, 160))
    value = cjk_font(40)
    values = (data.name, data.id_number, data.card_number,
              f"{data.issue_date[:4]}年{data.issue_date[4:6]}月")
    for i, text in enumerate(values):
        draw.text((380, _ROW_TOP + i * _ROW_STEP + 42), text, font=value, fill=(0, 0, 0))
    draw.text((700, 590), data.bank_name, font=cjk_font(30), fill=(23, 87, 160))
    return img


#: The back is black text on the pre-printed card: it goes on resin K alone, which is sharper
#: than a dye mix and leaves the colour panels (2 MB of the upload) out.
BACK_IN_COLOUR = False


_BACK_RULES = (
    "1. 本卡只限持卡人本人使用，不得转借或转让。",
    "2. 请妥善保管，如有遗失请及时挂失。",
    "3. 社会保障卡服务密码初始为123456，请及时修改。",
)


@lru_cache(maxsize=1)
def _back_template() -> Image.Image:
    img = Image.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(_BACK_RULES):
        draw.text((60, 90 + i * 80), line, font=cjk_font(36), fill=(0, 0, 0))
    return img


def render_back(data: FaceData) -> Image.Image:
    img = _back_template().copy()
    ImageDraw.Draw(img).text((60, 90 + len(_BACK_RULES) * 80), f"发卡银行：{data.bank_name}",
                             font=cjk_font(36), fill=(0, 0, 0))
    return img


#: The operator's preview is drawn at half the print resolution (150 dpi): 507 px across is
#: still larger than the card itself on a 96 dpi monitor, and a full-resolution sheet costs
#: about 80 ms per card to encode as PNG.
PREVIEW_REDUCTION = 2


def render_preview(data: FaceData, reduction: int = PREVIEW_REDUCTION) -> Image.Image:
    """Front above back, for the operator to check before a card is fed."""
    front, back = render_faces(data)
    gap = 20
    sheet = Image.new("RGB", (SIZE[0], SIZE[1] * 2 + gap), (128, 128, 128))
    sheet.paste(front, (0, 0))
    sheet.paste(back, (0, SIZE[1] + gap))
    return sheet.reduce(reduction) if reduction > 1 else sheet


def save_preview(image: Image.Image, path: Path) -> None:
    """Write the preview PNG whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    image.save(partial, "PNG", compress_level=1)  # fast; the file is local and short-lived
    partial.replace(path)
