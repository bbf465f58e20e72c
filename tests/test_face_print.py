"""The printed card face (issue 11 item 10): one side, holder data only, the chip kept clear.

Real rendering and the real printer simulator (pyusb backend, speed 0); every claim is measured
on the planes sent to the printer or on the PNG the simulator reconstructs from them.
"""

from __future__ import annotations

from PIL import Image, ImageChops

from cardstation.drivers.hiti.job import format_payload, job_bytes
from cardstation.drivers.hiti.render import render_panels
from cardstation.personalization.face import (
    CHIP_CONTACTS_MM,
    default_layout,
    render_faces,
    render_print,
)
from cardstation.personalization.face.layout import SIZE, inner_px, outer_px
from cardstation.simulators.printer import PrinterModel
from tests.support.face import (
    LONG_BANK_NAME,
    LONGEST_NAME,
    dark_photo,
    holder,
    not_white,
    only,
    region_max,
    resin_ink,
)
from tests.support.hiti import Rig


def _planes(panels_side) -> dict[str, Image.Image]:
    return {name: Image.frombytes("L", SIZE, plane) for name, plane in panels_side.panels()}


def _crowded():
    """Everything as close to the chip as a holder can get: longest name, dark photo."""
    return holder(name=LONGEST_NAME, bank_name=LONG_BANK_NAME, photo_jpeg=dark_photo())


def test_every_panel_leaves_the_chip_contacts_clear() -> None:
    layout = default_layout()
    keepout = layout.chip_keepout
    assert keepout[0] <= CHIP_CONTACTS_MM[0] - 1 and keepout[2] >= CHIP_CONTACTS_MM[2] + 1
    panels = render_panels(render_print(_crowded()))
    planes = _planes(panels.front)
    assert set(planes) == {"Y", "M", "C", "K", "O"}
    for name in ("Y", "M", "C"):
        assert region_max(planes[name], keepout) == 0, f"{name} dye over the chip"
        assert planes[name].getextrema()[1] > 0  # the photo is there, outside the chip
    assert region_max(resin_ink(planes["K"]), keepout) == 0, "resin K over the chip"
    assert region_max(planes["O"], keepout) == 0, "overcoat over the chip"
    # the overcoat still covers the rest of the side
    x0, y0, x1, y1 = outer_px(keepout)
    coated = planes["O"].histogram()[255]
    assert coated == SIZE[0] * SIZE[1] - (x1 - x0) * (y1 - y0)


def test_printed_chip_side_png_has_no_ink_in_the_chip_area(usb_rig: Rig, model: PrinterModel
                                                           ) -> None:  # fmt: skip
    printer = usb_rig.printer()
    printer.move_to_contact()
    printer.print_faces(render_print(_crowded()))  # what the pipeline's print step sends
    printer.eject()
    model.flush_output()
    (side,) = model.print_log[-1].sides  # one side only: the emblem side is never printed
    assert side.requested_side == 1 and side.panels == ("Y", "M", "C", "K", "O")
    assert side.png is not None
    with Image.open(side.png) as png:
        printed = png.convert("RGB")
    ink = not_white(printed)
    assert region_max(ink, default_layout().chip_keepout) == 0
    assert region_max(ink, CHIP_CONTACTS_MM) == 0
    # and the measure can see ink: the photo and the name are printed
    assert ImageChops.difference(printed, Image.new("RGB", SIZE, "white")).getbbox()


def test_the_print_job_is_one_side() -> None:
    front, back = render_faces(holder())  # the old entry point prints one side too
    assert back is None
    panels = render_panels(front, back)
    assert panels.back is None and [side for side, _ in panels.sides()] == [1]
    assert format_payload(panels, 0)[0] == 1  # SET_FORMAT: one side


def test_an_empty_holder_prints_no_ink() -> None:
    panels = render_panels(render_print(only()))
    assert panels.front.names == frozenset({"O"})  # no dye, no resin: only the overcoat
    assert panels.front.y is None and panels.front.k is None


def test_ink_only_where_the_template_puts_holder_data() -> None:
    layout = default_layout()
    panels = render_panels(render_print(_crowded()))
    planes = _planes(panels.front)
    allowed = Image.new("L", SIZE, 0)
    for box in [layout.photo] + [t.box for t in layout.printed_texts()]:
        allowed.paste(255, inner_px(box))
    outside = ImageChops.invert(allowed)
    for name in ("Y", "M", "C"):
        assert ImageChops.multiply(planes[name], outside).getbbox() is None, name
    assert ImageChops.multiply(resin_ink(planes["K"]), outside).getbbox() is None
    # dye only in the photo box, resin only in text boxes
    photo_only = Image.new("L", SIZE, 0)
    photo_only.paste(255, inner_px(layout.photo))
    dye = ImageChops.lighter(ImageChops.lighter(planes["Y"], planes["M"]), planes["C"])
    assert ImageChops.multiply(dye, ImageChops.invert(photo_only)).getbbox() is None
    assert ImageChops.multiply(resin_ink(planes["K"]), photo_only).getbbox() is None


def test_text_is_resin_only_and_photo_dye_only() -> None:
    """A dark photo stays dye (no resin blots); text edges carry no dye fringe."""
    layout = default_layout()
    planes = _planes(render_panels(render_print(_crowded())).front)
    assert region_max(resin_ink(planes["K"]), layout.photo) == 0
    for field in ("name", "id_number"):
        assert region_max(planes["Y"], layout.texts[field].box) == 0


def test_one_side_sends_fewer_bytes_than_the_old_duplex_job() -> None:
    from cardstation.drivers.hiti.bench import sample_face

    before = job_bytes(render_panels(sample_face(0), sample_face(1), back_colour=False))
    after = job_bytes(render_panels(render_print(holder())))
    assert after < before * 0.75
