"""The operator's preview: holder data over a picture of the stock (chip side), the emblem side
as the stock alone; cheap, atomic, and the print is what the preview shows."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

from cardstation.personalization.face import (
    default_layout,
    render_back,
    render_chip_side_preview,
    render_emblem_side_preview,
    render_front,
    render_preview,
    render_preview_sides,
    render_print,
    save_preview,
)
from cardstation.personalization.face.compose import _compose, clear_caches
from cardstation.personalization.face.layout import SIZE, outer_px
from cardstation.personalization.face.stock import chip_side_stock
from tests.support.face import henan_json, holder, layout_from, not_white, only, region_max


def test_the_emblem_side_is_the_stock_alone() -> None:
    a, b = holder(), holder(name="王二", photo_jpeg=b"")
    emblem_a, _ = render_preview_sides(a)
    emblem_b, _ = render_preview_sides(b)
    assert ImageChops.difference(emblem_a, emblem_b).getbbox() is None
    assert render_front(a) is render_emblem_side_preview()  # old name: the emblem side


def test_the_chip_side_preview_shows_the_print_over_the_stock() -> None:
    data = holder()
    chip = render_chip_side_preview(data)
    assert render_back(data).tobytes() == chip.tobytes()
    printed = render_print(data).composite()
    ink = not_white(printed)
    # wherever the print lays ink down, the preview shows exactly that ink
    shown = Image.composite(chip, Image.new("RGB", SIZE, "white"), ink)
    assert ImageChops.difference(shown, printed).getbbox() is None
    # the stock's chip is drawn where the print leaves the card clear
    assert region_max(not_white(chip), default_layout().chip_keepout) == 255


def test_a_pan_printed_by_a_template_shows_a_placeholder_until_the_chip_is_read(
    tmp_path: Path,
) -> None:
    obj = henan_json()
    obj["fields"]["bank_card_number"]["print"] = True
    layout = layout_from(obj, tmp_path)
    area = outer_px(layout.texts["bank_card_number"].box)
    paper = chip_side_stock(layout).crop(area)
    assert len(paper.getcolors() or []) == 1  # the stock leaves the box blank
    preview = render_chip_side_preview(only(), layout).crop(area)
    assert ImageChops.difference(preview, paper).getbbox()  # the placeholder is shown
    assert render_print(only(), layout).k_mask is None  # and nothing is printed for it
    read = render_print(only(bank_card_number="6217000012345678901"), layout)
    assert read.k_mask is not None and read.k_mask.crop(area).getextrema()[0] == 0


def test_preview_sheet_size_and_atomic_save(tmp_path: Path) -> None:
    sheet = render_preview(holder())
    assert sheet.size == (SIZE[0] // 2, SIZE[1] + 10)  # two half-size sides and a gap
    target = tmp_path / "previews" / "job.png"
    save_preview(sheet, target)
    assert target.exists() and not list(target.parent.glob("*.partial"))
    with Image.open(target) as png:
        assert png.size == sheet.size
    # the holder's face and data: the station's user only
    assert target.stat().st_mode & 0o777 == 0o600
    assert target.parent.stat().st_mode & 0o777 == 0o700


def test_the_preview_stays_cheap() -> None:
    """Per-card hot path: it was about 30 ms at 150 dpi PNG before templates; a generous
    bound, the VM's stolen time included."""
    times = []
    for i in range(7):
        data = holder(name=f"李秀英{i}")
        clear_caches()
        start = time.perf_counter()
        render_preview(data).save(Path("/dev/null"), "PNG", compress_level=1)
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.1


def test_the_half_size_preview_matches_the_full_size_one() -> None:
    data = holder()
    _, fast = render_preview_sides(data, reduction=2)
    slow = render_chip_side_preview(data).reduce(2)
    assert fast.size == slow.size
    assert max(ImageStat.Stat(ImageChops.difference(fast, slow)).mean) < 2


def test_the_print_reuses_the_preview_composition_when_only_the_pan_differs() -> None:
    """The print's FaceData (chip read-back) carries the PAN; the Henan template does not
    print it, so the composition drawn for the preview is reused."""
    layout = default_layout()
    preview = _compose(holder(), layout)
    assert _compose(holder(bank_card_number="6217000012345678901"), layout) is preview
