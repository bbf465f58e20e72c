"""Card-face layout templates: where each holder field goes on the chip side, at what size.

A template is a JSON data file (one per province or card design, `layouts/*.json` beside this
module); code never hard-codes a position. Geometry is in millimetres on the chip side of an
ID-1 card (85.60 x 53.98 mm, origin top-left, chip on the left as the holder looks at it);
font sizes are in points. The print canvas is `SIZE` pixels at `DPI`, centred on the card
(full bleed: 1014 x 642 px at 300 dpi is 85.85 x 54.36 mm, a fraction of a millimetre
beyond each edge).

The chip contact area (ISO 7816-2, `CHIP_CONTACTS_MM`) is a property of every contact card,
not of a design: a template must keep it clear with at least `MIN_CHIP_MARGIN_MM` around it,
and no printed box may overlap the template's keep-out. `load_layout` refuses a template that
misses a field, puts a box outside the card or over the chip, naming the file and the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

#: Print canvas (drivers/hiti/assumptions.py CARD_COLS x CARD_ROWS) and its resolution.
SIZE = (1014, 642)
DPI = 300
CARD_MM = (85.60, 53.98)
PX_PER_MM = DPI / 25.4
#: Where the card's top-left corner falls on the full-bleed canvas, in pixels.
_ORIGIN_PX = ((SIZE[0] - CARD_MM[0] * PX_PER_MM) / 2, (SIZE[1] - CARD_MM[1] * PX_PER_MM) / 2)

#: ISO 7816-2 contact field (C1..C8), mm from the left and top edges: (x0, y0, x1, y1).
CHIP_CONTACTS_MM = (10.25, 19.23, 19.23, 29.50)
#: Printing right up to the contacts smears ink onto them as the head passes; 1 mm is the
#: margin card printers' own chip masks leave.
MIN_CHIP_MARGIN_MM = 1.0
#: Below this nothing is legible on a resin print, whatever a template says.
FLOOR_PT = 4.0

#: Holder fields every template must place, and those it may.
REQUIRED_FIELDS = ("name", "id_number", "card_number", "issue_date")
OPTIONAL_FIELDS = ("bank_card_number", "bank_name")
TEXT_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS

DEFAULT_LAYOUT = "henan"

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in mm


class LayoutError(ValueError):
    """A template that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class TextBox:
    """One holder text field. `print_` False: the stock carries it (the preview shows the
    placeholder in its place, nothing is printed)."""

    field: str
    box: Box
    max_pt: float
    min_pt: float
    max_lines: int = 1
    align: str = "left"
    print_: bool = True
    placeholder: str = ""
    format: str = ""

    def box_px(self) -> tuple[int, int, int, int]:
        return inner_px(self.box)


@dataclass(frozen=True)
class StockItem:
    """Something the card maker pre-prints, drawn only in the preview's stand-in of the stock:
    a label (text at a point) or a mark (an outlined placeholder box with its name)."""

    kind: str  # "label" | "mark" | "band"
    text: str
    box: Box
    pt: float = 6.0


@dataclass(frozen=True, eq=False)  # hashed by identity: renders are cached per template
class Layout:
    name: str
    source: str
    description: str
    photo: Box
    texts: dict[str, TextBox]
    chip_keepout: Box
    overcoat_keepouts: tuple[Box, ...]
    stock: tuple[StockItem, ...]
    emblem_stock: tuple[StockItem, ...]

    def printed_texts(self) -> list[TextBox]:
        return [box for box in self.texts.values() if box.print_]


def px(x_mm: float, y_mm: float) -> tuple[float, float]:
    return _ORIGIN_PX[0] + x_mm * PX_PER_MM, _ORIGIN_PX[1] + y_mm * PX_PER_MM


def inner_px(box: Box) -> tuple[int, int, int, int]:
    """Pixels wholly inside a box (rounded inwards): what a text or photo may use."""
    x0, y0 = px(box[0], box[1])
    x1, y1 = px(box[2], box[3])
    return math.ceil(x0), math.ceil(y0), math.floor(x1), math.floor(y1)


def outer_px(box: Box) -> tuple[int, int, int, int]:
    """Pixels touching a box (rounded outwards), clamped to the canvas: what a keep-out
    covers. Exclusive upper bounds, as PIL's paste boxes take them."""
    x0, y0 = px(box[0], box[1])
    x1, y1 = px(box[2], box[3])
    return (max(0, math.floor(x0)), max(0, math.floor(y0)),
            min(SIZE[0], math.ceil(x1)), min(SIZE[1], math.ceil(y1)))  # fmt: skip


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _Reader:
    """Typed access to one JSON object; every error names the file and the field."""

    def __init__(self, source: str, where: str, obj: Any, known: set[str]) -> None:
        self.source, self.where = source, where
        if not isinstance(obj, dict):
            self.fail("must be a JSON object")
        unknown = sorted(set(obj) - known)
        if unknown:
            self.fail(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        self.obj: dict[str, Any] = obj

    def fail(self, message: str, key: str | None = None) -> None:
        field = f"{self.where}.{key}" if key else self.where
        raise LayoutError(f"layout {self.source}: {field}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.obj:
            if default is ...:
                self.fail("missing", key)
            return default
        value = self.obj[key]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            self.fail(f"must be {getattr(kind, '__name__', kind)}, not {value!r}", key)
        return value

    def box(self, key: str, value: Any = None) -> Box:
        value = self.get(key, list) if value is None else value
        if not isinstance(value, list):
            self.fail(f"must be [x0, y0, x1, y1] in mm, not {value!r}", key)
        if len(value) != 4 or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                      for v in value):
            self.fail(f"must be [x0, y0, x1, y1] in mm, not {value!r}", key)
        x0, y0, x1, y1 = (float(v) for v in value)
        if not (x0 < x1 and y0 < y1):
            self.fail(f"box {value} is empty (need x0 < x1 and y0 < y1)", key)
        if x0 < 0 or y0 < 0 or x1 > CARD_MM[0] or y1 > CARD_MM[1]:
            self.fail(f"box {value} lies outside the card (0..{CARD_MM[0]} x 0..{CARD_MM[1]} mm)",
                      key)
        return x0, y0, x1, y1


_TEXT_KEYS = {"box_mm", "max_pt", "min_pt", "max_lines", "align", "print", "placeholder",
              "format"}
_STOCK_KEYS = {"kind", "text", "box_mm", "pt"}


def _text_box(source: str, field: str, obj: Any, keepout: Box) -> TextBox:
    r = _Reader(source, f"fields.{field}", obj, _TEXT_KEYS)
    box = r.box("box_mm")
    max_pt = float(r.get("max_pt", (int, float)))
    min_pt = float(r.get("min_pt", (int, float)))
    if not FLOOR_PT <= min_pt <= max_pt:
        r.fail(f"need {FLOOR_PT} <= min_pt ({min_pt}) <= max_pt ({max_pt})")
    lines = r.get("max_lines", int, 1)
    if lines < 1:
        r.fail("must be at least 1", "max_lines")
    align = r.get("align", str, "left")
    if align not in ("left", "center", "right"):
        r.fail(f"must be left, center or right, not {align!r}", "align")
    printed = r.get("print", bool, True)
    if printed and _overlap(box, keepout):
        r.fail(f"box {list(box)} overlaps the chip keep-out {list(keepout)}", "box_mm")
    return TextBox(field, box, max_pt, min_pt, lines, align, printed,
                   r.get("placeholder", str, ""), r.get("format", str, ""))


def _stock(source: str, where: str, items: Any) -> tuple[StockItem, ...]:
    if not isinstance(items, list):
        raise LayoutError(f"layout {source}: {where}: must be a list")
    out = []
    for i, obj in enumerate(items):
        r = _Reader(source, f"{where}[{i}]", obj, _STOCK_KEYS)
        kind = r.get("kind", str)
        if kind not in ("label", "mark", "band"):
            r.fail(f"must be label, mark or band, not {kind!r}", "kind")
        out.append(StockItem(kind, r.get("text", str, ""), r.box("box_mm"),
                             float(r.get("pt", (int, float), 6.0))))
    return tuple(out)


def parse_layout(obj: Any, source: str) -> Layout:
    """Check and convert a template's JSON; raise LayoutError naming `source` and the field."""
    top = _Reader(source, "layout", obj, {"name", "description", "chip_keepout_mm",
                                          "overcoat_keepouts_mm", "photo", "fields", "stock",
                                          "emblem_stock"})
    keepout = top.box("chip_keepout_mm")
    need = (CHIP_CONTACTS_MM[0] - MIN_CHIP_MARGIN_MM, CHIP_CONTACTS_MM[1] - MIN_CHIP_MARGIN_MM,
            CHIP_CONTACTS_MM[2] + MIN_CHIP_MARGIN_MM, CHIP_CONTACTS_MM[3] + MIN_CHIP_MARGIN_MM)
    eps = 1e-6
    if not (keepout[0] <= need[0] + eps and keepout[1] <= need[1] + eps
            and keepout[2] >= need[2] - eps and keepout[3] >= need[3] - eps):
        top.fail(f"{list(keepout)} must cover the ISO 7816-2 contacts {list(CHIP_CONTACTS_MM)} "
                 f"with {MIN_CHIP_MARGIN_MM} mm around them, i.e. {[round(v, 2) for v in need]}",
                 "chip_keepout_mm")
    photo = _Reader(source, "photo", top.get("photo", dict), {"box_mm"}).box("box_mm")
    if _overlap(photo, keepout):
        top.fail(f"box {list(photo)} overlaps the chip keep-out {list(keepout)}", "photo.box_mm")
    fields = top.get("fields", dict)
    known = _Reader(source, "fields", fields, set(TEXT_FIELDS))
    texts = {}
    for field in TEXT_FIELDS:
        if field in fields:
            texts[field] = _text_box(source, field, fields[field], keepout)
        elif field in REQUIRED_FIELDS:
            known.fail("missing", field)
    extra = top.get("overcoat_keepouts_mm", list, [])
    # The overcoat always leaves the chip clear; a design may mask more (a signature panel).
    overcoat = [keepout] + [top.box(f"overcoat_keepouts_mm[{i}]", v) for i, v in enumerate(extra)]
    return Layout(
        name=top.get("name", str), source=source, description=top.get("description", str, ""),
        photo=photo, texts=texts, chip_keepout=keepout, overcoat_keepouts=tuple(overcoat),
        stock=_stock(source, "stock", top.get("stock", list, [])),
        emblem_stock=_stock(source, "emblem_stock", top.get("emblem_stock", list, [])),
    )


def load_layout(path: str | Path) -> Layout:
    """A template from a JSON file (a path) or by name from this package's `layouts/`."""
    target = Path(path)
    if target.suffix != ".json" and not target.exists():
        resource = resources.files(__package__).joinpath("layouts", f"{path}.json")
        source, text = f"{path}.json", _read(resource, f"{path}.json")
    else:
        source, text = target.name, _read(target, str(target))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LayoutError(f"layout {source}: not valid JSON: {exc}") from None
    return parse_layout(obj, source)


def _read(resource: Any, name: str) -> str:
    try:
        return str(resource.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LayoutError(f"layout {name}: cannot be read: {exc.strerror or exc}") from None


@lru_cache(maxsize=8)
def default_layout(name: str = DEFAULT_LAYOUT) -> Layout:
    """The packaged template `name` (parsed once)."""
    return load_layout(name)
