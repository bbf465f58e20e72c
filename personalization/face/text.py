"""Fitting holder text into a template box: shrink, then wrap, never clip.

Policy (a proposal, simple to explain to an operator): the fewest lines first, each at the
largest size from the box's `max_pt` down to its `min_pt` that keeps every line's ink inside
the box; a value that fits in no permitted number of lines at `min_pt` does not fit, and
`check_layout_fit` reports it as a finding before any card is fed.

Widths are estimated from one reference size (glyph advances scale with the size) so the
search loads no font per candidate size; the chosen size is then checked with the real font's
ink box, stepping down a pixel if hinting made it wider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from cardstation.personalization.face.layout import DPI, TextBox

FONT_PATHS = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)
PX_PER_PT = DPI / 72
_REF_PX = 100
#: Characters a line must not start with (they stay with the character before).
_NO_LINE_START = frozenset("·・、，。：；）)」』,.:;!?！？")
_TOKENS = re.compile(r"[A-Za-z0-9'’\-]+|\s+|.", re.S)


class FontMissing(RuntimeError):
    pass


@lru_cache(maxsize=64)  # loading a .ttc costs ~12 ms; a layout uses a handful of sizes
def cjk_font(size: int) -> ImageFont.FreeTypeFont:
    """The CJK font at `size` pixels."""
    for path in FONT_PATHS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    raise FontMissing(
        "no CJK font found (looked for " + ", ".join(FONT_PATHS) + "): run `make setup`, "
        "which installs the Debian package fonts-wqy-zenhei"
    )


def pt_to_px(pt: float) -> int:
    return max(1, int(pt * PX_PER_PT))


@dataclass(frozen=True)
class FittedText:
    """Where a value's lines are drawn: `origins` are (x, baseline y) with anchor "ls".
    `fits` False: even `min_pt` in `max_lines` lines overflows (drawn anyway, for the preview)."""

    field: str
    text: str
    lines: tuple[str, ...]
    size_px: int
    origins: tuple[tuple[int, int], ...]
    fits: bool

    @property
    def size_pt(self) -> float:
        return round(self.size_px / PX_PER_PT, 2)


@lru_cache(maxsize=4096)
def _ref_width(text: str) -> float:
    return float(cjk_font(_REF_PX).getlength(text))


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for token in _TOKENS.findall(text):
        if out and token[0] in _NO_LINE_START and not out[-1].isspace():
            out[-1] += token
        else:
            out.append(token)
    return out


def _wrap(tokens: list[str], limit: float, scale: float) -> list[str]:
    """Greedy wrap at token boundaries (a Latin word is a token; each CJK character is one),
    splitting a token only when it alone is wider than the line. Widths = reference x scale."""
    lines: list[str] = []
    line = ""
    for token in tokens:
        if token.isspace():
            if line:
                line += " "
            continue
        candidate = line + token
        if _ref_width(candidate) * scale <= limit:
            line = candidate
            continue
        if line.strip():
            lines.append(line.rstrip())
            line = ""
        if _ref_width(token) * scale <= limit:
            line = token
            continue
        for char in token:  # a word wider than the line: break it by characters
            if line and _ref_width(line + char) * scale > limit:
                lines.append(line)
                line = ""
            line += char
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _metrics(size: int) -> tuple[int, int]:
    ascent, descent = cjk_font(size).getmetrics()
    return ascent, descent


def _place(box: TextBox, lines: list[str], size: int) -> tuple[tuple[int, int], ...] | None:
    """Origins of the lines if every line's ink lies inside the box, else None."""
    x0, y0, x1, y1 = box.box_px()
    font = cjk_font(size)
    ascent, descent = _metrics(size)
    step = ascent + descent
    origins = []
    for i, line in enumerate(lines):
        baseline = y0 + ascent + i * step
        left, top, right, bottom = font.getbbox(line, anchor="ls")
        width = right - left
        if box.align == "left":
            x = x0 - min(0, left)
        elif box.align == "right":
            x = x1 - right
        else:
            x = x0 + (x1 - x0 - width) // 2 - left
        if x + left < x0 or x + right > x1 or baseline + top < y0 or baseline + bottom > y1:
            return None
        origins.append((int(x), int(baseline)))
    return tuple(origins)


def fit_text(box: TextBox, text: str) -> FittedText:
    """Fit `text` into `box` (see the module docstring)."""
    text = " ".join(text.split())  # no control whitespace on a card face
    if not text:
        return FittedText(box.field, text, (), pt_to_px(box.max_pt), (), True)
    x0, y0, x1, y1 = box.box_px()
    width, height = x1 - x0, y1 - y0
    hi, lo = pt_to_px(box.max_pt), pt_to_px(box.min_pt)
    ref_ascent, ref_descent = _metrics(_REF_PX)
    pitch = (ref_ascent + ref_descent) / _REF_PX
    tokens = _tokens(text)
    for count in range(1, box.max_lines + 1):
        # the tallest size whose `count` lines fit the height, then down while too wide
        size = min(hi, int(height / (pitch * count)))
        while size >= lo:
            lines = _wrap(tokens, width, size / _REF_PX) if count > 1 else [text]
            if len(lines) <= count and (count > 1 or _ref_width(text) * size / _REF_PX <= width):
                origins = _place(box, lines, size)
                if origins is not None:
                    return FittedText(box.field, text, tuple(lines), size, origins, True)
            size -= 1
    # does not fit: the best effort at the minimum size, for the preview to show
    lines = _wrap(tokens, width, lo / _REF_PX) if box.max_lines > 1 else [text]
    ascent, descent = _metrics(lo)
    origins = tuple((x0, y0 + ascent + i * (ascent + descent)) for i in range(len(lines)))
    return FittedText(box.field, text, tuple(lines), lo, origins, False)
