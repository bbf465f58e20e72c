"""Rebuild what a side looks like from its panels, with each panel's ribbon offset applied."""

from __future__ import annotations

from PIL import Image, ImageChops

#: 300 dpi.
PX_PER_MM = 300 / 25.4


def _shifted(plane: Image.Image, dx: int) -> Image.Image:
    """Move a density plane `dx` pixels along the card (no wrap; uncovered area gets no dye)."""
    if dx == 0:
        return plane
    out = Image.new("L", plane.size, 0)
    out.paste(plane, (dx, 0))
    return out


def reconstruct(
    panels: dict[str, bytes], cols: int, rows: int, offsets: dict[str, int]
) -> Image.Image:
    """RGB image of a printed side. Densities: Y/M/C 0..255; K prints where 0x00."""
    size = (cols, rows)
    zero = Image.new("L", size, 0)

    def plane(name: str) -> Image.Image:
        data = panels.get(name)
        if data is None:
            return zero
        return _shifted(Image.frombytes("L", size, data), offsets.get(name, 0))

    # value = 255 - density; C absorbs red, M green, Y blue.
    r, g, b = (ImageChops.invert(plane(n)) for n in ("C", "M", "Y"))
    image = Image.merge("RGB", (r, g, b))
    k = panels.get("K")
    if k is not None:
        mask = _shifted(Image.frombytes("L", size, k).point(lambda v: 255 if v == 0 else 0),
                        offsets.get("K", 0))  # fmt: skip
        image.paste((0, 0, 0), (0, 0), mask)
    return image
