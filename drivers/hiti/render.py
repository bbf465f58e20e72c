"""RGB card faces -> CS-220e panel bytes (YMC planes, resin-K mask, overcoat mask).

Host-side conversion as in the HiTi photo backend: YMC planar, 8 bits per pixel, 255 - RGB
(Y from blue, M from green, C from red). PavoApi's conventions for the masks: resin K prints
where the K plane is 0x00; overcoat goes where the O plane is 0xFF. Only whole-image Pillow
operations are used (no per-pixel Python), so a side renders in a few milliseconds.

A side is either a plain RGB face (K from its near-black pixels, overcoat everywhere) or a
`PrintSide`, which says itself what goes on which panel: printing holder data onto
pre-printed stock needs the text on resin K alone (no dye fringe round anti-aliased edges),
the photo in dye alone (resin over a photo's dark hair would look like a blot) and the
overcoat kept off the chip contacts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageChops

from cardstation.drivers.hiti.assumptions import CARD_COLS, CARD_ROWS, PANEL_ORDER

#: A pixel whose R, G and B are all below this is printed with resin K rather than YMC.
DEFAULT_BLACK_THRESHOLD = 40


@dataclass(frozen=True)
class SidePanels:
    """The planes of one card side, each `rows * cols` bytes, row-major. None = not printed."""

    y: bytes | None
    m: bytes | None
    c: bytes | None
    k: bytes | None
    o: bytes | None
    cols: int = CARD_COLS
    rows: int = CARD_ROWS

    def panels(self) -> Iterator[tuple[str, bytes]]:
        """(name, plane) in print order, skipping absent planes."""
        planes = {"Y": self.y, "M": self.m, "C": self.c, "K": self.k, "O": self.o}
        for name in PANEL_ORDER:
            plane = planes[name]
            if plane is not None:
                yield name, plane

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.panels())

    @property
    def colour(self) -> bool:
        return self.y is not None


@dataclass(frozen=True)
class CardPanels:
    front: SidePanels
    back: SidePanels | None = None

    def sides(self) -> Iterator[tuple[int, SidePanels]]:
        yield 1, self.front
        if self.back is not None:
            yield 2, self.back

    @property
    def size(self) -> int:
        """Total plane bytes."""
        return sum(len(p) for _, side in self.sides() for _, p in side.panels())


@dataclass(frozen=True)
class PrintSide:
    """One side described panel by panel (PIL images at the card size or scaled to it).

    `colour`: RGB for the Y/M/C dye panels, white = no dye; None = no colour panels at all.
    `k_mask`: resin K where 0 (mode "L" or "1"); None = no K panel.
    `overcoat_mask`: overcoat where 255; None = the whole side.
    """

    colour: Image.Image | None
    k_mask: Image.Image | None
    overcoat_mask: Image.Image | None = None

    def composite(self, size: tuple[int, int] = (CARD_COLS, CARD_ROWS)) -> Image.Image:
        """What the panels lay down on white: dye, then resin K as black (no overcoat)."""
        image = (_fit(self.colour.convert("RGB"), size) if self.colour is not None
                 else Image.new("RGB", size, (255, 255, 255)))
        if self.k_mask is not None:
            image = image.copy()
            image.paste((0, 0, 0), (0, 0), ImageChops.invert(_binary(self.k_mask, size)))
        return image


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    if image.size == (size[1], size[0]):  # portrait artwork for a landscape card
        image = image.transpose(Image.Transpose.ROTATE_90)
        if image.size == size:
            return image
    return image.resize(size, Image.Resampling.LANCZOS)


def _binary(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    return _fit(mask.convert("L"), size).point(lambda v: 0 if v < 128 else 255)


#: The last overcoat plane made, with the mask it was made from: a template's overcoat mask
#: (its chip keep-out) is the same image for every card, so its plane is made once. The mask
#: is held, so its id cannot be reused by another image while it is here.
_last_overcoat: tuple[Image.Image | None, tuple[int, int], bytes] | None = None


def _overcoat_plane(mask: Image.Image | None, size: tuple[int, int]) -> bytes:
    """Overcoat where `mask` is 255 (None: the whole side). A mask given to a PrintSide is read
    only once printed (compose.py's are shared, cached images)."""
    global _last_overcoat
    last = _last_overcoat  # one read: another printer's thread may replace it meanwhile
    if last is not None and last[0] is mask and last[1] == size:
        return last[2]
    plane = (_binary(mask, size).tobytes() if mask is not None
             else bytes([255]) * (size[0] * size[1]))
    _last_overcoat = (mask, size, plane)
    return plane


def _render_print_side(
    side: PrintSide, overcoat: bool, size: tuple[int, int]
) -> SidePanels:
    k = _binary(side.k_mask, size) if side.k_mask is not None else None
    o_bytes = _overcoat_plane(side.overcoat_mask, size) if overcoat else None
    if side.colour is None:
        return SidePanels(None, None, None, k.tobytes() if k is not None else None, o_bytes, *size)
    r, g, b = _fit(side.colour.convert("RGB"), size).split()
    # no dye under resin K: where the K mask is 0 the density is 0, elsewhere it is kept
    # (`darker` = min, exact for a 0/255 mask and half the cost of multiplying)
    dye = [ImageChops.invert(ch) for ch in (b, g, r)]
    if k is not None:
        dye = [ImageChops.darker(d, k) for d in dye]
    y, m, c = (d.tobytes() for d in dye)
    return SidePanels(y, m, c, k.tobytes() if k is not None else None, o_bytes, *size)


def render_side(
    face: Image.Image | PrintSide,
    *,
    colour: bool = True,
    k_mask: Image.Image | None = None,
    overcoat_mask: Image.Image | None = None,
    overcoat: bool = True,
    black_threshold: int = DEFAULT_BLACK_THRESHOLD,
    size: tuple[int, int] = (CARD_COLS, CARD_ROWS),
) -> SidePanels:
    """Panels for one side.

    `k_mask` (0 = print resin K) defaults to the face's near-black pixels; those pixels are
    taken out of YMC so black text is crisp resin, not a dye mix. `overcoat_mask` (255 = coat)
    defaults to full coverage; pass one to keep the overcoat off the chip contacts.
    `colour=False` prints resin K only. A `PrintSide` brings its own panels and masks (the
    other arguments but `overcoat` and `size` do not apply to it).
    """
    if isinstance(face, PrintSide):
        return _render_print_side(face, overcoat, size)
    rgb = _fit(face.convert("RGB"), size)
    r, g, b = rgb.split()
    if k_mask is None:
        darkest = ImageChops.lighter(ImageChops.lighter(r, g), b)
        k = darkest.point(lambda v: 0 if v < black_threshold else 255)
    else:
        k = _binary(k_mask, size)
    if overcoat:
        o = _binary(overcoat_mask, size) if overcoat_mask is not None else None
        o_bytes = o.tobytes() if o is not None else bytes([255]) * (size[0] * size[1])
    else:
        o_bytes = None
    if not colour:
        return SidePanels(None, None, None, k.tobytes(), o_bytes, size[0], size[1])
    # Density = 255 - value; the K mask (0 or 255) zeroes dye under resin K (`darker` = min).
    y, m, c = (ImageChops.darker(ImageChops.invert(ch), k) for ch in (b, g, r))
    return SidePanels(
        y.tobytes(), m.tobytes(), c.tobytes(), k.tobytes(), o_bytes, size[0], size[1]
    )


def render_panels(
    front: Image.Image | PrintSide,
    back: Image.Image | PrintSide | None = None,
    *,
    back_colour: bool = True,
    overcoat_mask: Image.Image | None = None,
    black_threshold: int = DEFAULT_BLACK_THRESHOLD,
) -> CardPanels:
    """Panels for a card: front in colour (YMCKO), optional back (YMCKO or K only); a
    `PrintSide` on either side carries its own panels. With no back the job is one side."""
    front_panels = render_side(
        front, overcoat_mask=overcoat_mask, black_threshold=black_threshold
    )
    back_panels = None
    if back is not None:
        back_panels = render_side(back, colour=back_colour, black_threshold=black_threshold)
    return CardPanels(front_panels, back_panels)
