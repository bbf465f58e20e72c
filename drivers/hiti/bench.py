"""Host-side printer figures for `cardstation bench`.

printer.render_ms_median: time to turn a 1014x642 RGB front and back into panels and every frame
of the print job (no I/O). printer.bytes_per_card: bytes the host sends for that duplex job.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from PIL import Image, ImageDraw

from cardstation.drivers.hiti.assumptions import CARD_COLS, CARD_ROWS
from cardstation.drivers.hiti.frames import RibbonType
from cardstation.drivers.hiti.job import job_steps
from cardstation.drivers.hiti.render import render_panels


def sample_face(seed: int = 0) -> Image.Image:
    """A synthetic card face: colour gradients, a photo-sized block, black text bars."""
    size = (CARD_COLS, CARD_ROWS)
    gx = Image.linear_gradient("L").resize(size)
    gy = Image.linear_gradient("L").rotate(90).resize(size)
    face = Image.merge("RGB", (gx, gy, Image.new("L", size, 200 - seed % 50)))
    draw = ImageDraw.Draw(face)
    draw.rectangle((60, 160, 300, 460), fill=(120, 140, 180))
    for i in range(6):
        draw.rectangle((360, 180 + i * 60, 900 - i * 40, 210 + i * 60), fill=(0, 0, 0))
    return face


def run_benchmarks(runs: int = 15) -> list[dict[str, Any]]:
    """Median render+frame time over `runs` and the bytes of one duplex YMCKO card."""
    front, back = sample_face(0), sample_face(1)
    times = []
    total = 0
    for _ in range(runs):
        start = time.perf_counter()
        panels = render_panels(front, back)
        total = sum(len(s.data) for s in job_steps(panels, 1, RibbonType.YMCKO))
        times.append((time.perf_counter() - start) * 1000)
    context = {"cols": CARD_COLS, "rows": CARD_ROWS, "sides": 2, "panels_per_side": 5}
    return [
        {
            "name": "printer.render_ms_median",
            "value": round(statistics.median(times), 3),
            "unit": "ms",
            "runs": runs,
            **context,
        },
        {"name": "printer.bytes_per_card", "value": total, "unit": "bytes", **context},
    ]
