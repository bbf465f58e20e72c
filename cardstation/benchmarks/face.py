"""Card-face figures for `cardstation bench` (area "face"), no I/O but the PNG encode.

face.preview_ms_median: the operator's preview (both sides at 150 dpi, PNG-encoded), from a
holder not seen before (the composition cache is cleared each run; the stock pictures and
fonts stay cached, as on a running station). face.print_render_ms_median: the one print side
to panels and every frame of the job. face.print_bytes_per_card: bytes the host sends for it.
"""

from __future__ import annotations

import io
import statistics
import time
from typing import Any

from cardstation.drivers.hiti.frames import RibbonType
from cardstation.drivers.hiti.job import job_steps
from cardstation.drivers.hiti.render import render_panels
from cardstation.personalization.face.compose import (
    FaceData,
    clear_caches,
    render_preview,
    render_print,
)
from cardstation.personalization.face.layout import default_layout


def _holder(i: int) -> FaceData:
    from cardstation.simulators.cms.applicants import example_applicant

    app = example_applicant()
    return FaceData(f"{app.name}{i}", app.id_number, app.card_number, app.issue_date,
                    app.bank_name, app.photo)


def run_benchmarks(runs: int = 15) -> list[dict[str, Any]]:
    layout = default_layout()
    render_preview(_holder(-1))  # fonts and stock pictures, once per process
    previews, prints = [], []
    total = 0
    for i in range(runs):
        data = _holder(i)
        clear_caches()
        start = time.perf_counter()
        render_preview(data).save(io.BytesIO(), "PNG", compress_level=1)
        previews.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        panels = render_panels(render_print(data))
        total = sum(len(s.data) for s in job_steps(panels, 1, RibbonType.YMCKO))
        prints.append((time.perf_counter() - start) * 1000)
    context = {"layout": layout.name, "sides": 1, "panels": sorted(panels.front.names)}
    return [
        {"name": "face.preview_ms_median", "value": round(statistics.median(previews), 2),
         "unit": "ms", "runs": runs, "dpi": 150},
        {"name": "face.print_render_ms_median", "value": round(statistics.median(prints), 2),
         "unit": "ms", "runs": runs, **context},
        {"name": "face.print_bytes_per_card", "value": total, "unit": "bytes", **context},
    ]
