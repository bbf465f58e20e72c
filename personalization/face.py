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


def render_front(data: FaceData) -> Image.Image:
    img = Image.new("RGB", SIZE, (236, 244, 252))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, SIZE[0], 110), fill=(23, 87, 160))
    draw.text((40, 28), "中华人民共和国社会保障卡", font=cjk_font(52), fill=(255, 255, 255))
    photo = Image.open(io.BytesIO(data.photo_jpeg)).convert("RGB").resize((286, 352))
    img.paste(photo, (50, 160))
    label, value = cjk_font(34), cjk_font(40)
    rows = (
        ("姓名", data.name),
        ("社会保障号码", data.id_number),
        ("社会保障卡号", data.card_number),
        ("发卡日期", f"{data.issue_date[:4]}年{data.issue_date[4:6]}月"),
    )
    y = 170
    for title, text in rows:
        draw.text((380, y), title, font=label, fill=(0, 0, 0))
        draw.text((380, y + 42), text, font=value, fill=(0, 0, 0))
        y += 108
    draw.text((700, 590), data.bank_name, font=cjk_font(30), fill=(23, 87, 160))
    return img


def render_back(data: FaceData) -> Image.Image:
    img = Image.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    lines = (
        "1. 本卡只限持卡人本人使用，不得转借或转让。",
        "2. 请妥善保管，如有遗失请及时挂失。",
        "3. 社会保障卡服务密码初始为123456，请及时修改。",
        f"发卡银行：{data.bank_name}",
    )
    for i, line in enumerate(lines):
        draw.text((60, 90 + i * 80), line, font=cjk_font(36), fill=(0, 0, 0))
    return img


def render_preview(data: FaceData) -> Image.Image:
    """Front above back, for the operator to check before a card is fed."""
    front, back = render_front(data), render_back(data)
    sheet = Image.new("RGB", (SIZE[0], SIZE[1] * 2 + 20), (128, 128, 128))
    sheet.paste(front, (0, 0))
    sheet.paste(back, (0, SIZE[1] + 20))
    return sheet
