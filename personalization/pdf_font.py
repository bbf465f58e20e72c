"""The Chinese font of the station's PDFs (the hand-over sheet, the window's receipts): the one
the card face uses (`face.text.FONT_PATHS`, Debian's fonts-wqy-zenhei from `make setup`),
registered with reportlab once per process."""

from __future__ import annotations

from pathlib import Path

from cardstation.personalization.face.text import FONT_PATHS, FontMissing

FONT = "CardstationCJK"


def register_cjk_font() -> str:
    """Register the font (once) and return its reportlab name; FontMissing without one."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT in pdfmetrics.getRegisteredFontNames():
        return FONT
    for path in FONT_PATHS:
        if Path(path).exists():
            pdfmetrics.registerFont(TTFont(FONT, path, subfontIndex=0))
            return FONT
    raise FontMissing("no CJK font found (looked for " + ", ".join(FONT_PATHS) + "): run "
                      "`make setup`, which installs the Debian package fonts-wqy-zenhei")
