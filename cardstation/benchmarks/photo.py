"""Intake figures for `cardstation bench` (area "intake"): the photo normaliser on the test set.

intake.photo_ms.p50 / .p95: one picture (a 640x480 or 600x800 JPEG, as a camera frame or a
loaded file arrives) to an accepted or refused card photo, whitening off (target p50 <= 300 ms).
intake.photo_accepted_ratio: the share of the set's face-bearing pictures accepted with the head
at 2/3 of the height (+-5 % of that) and centred within 3 % of the width (target >= 0.95).
intake.photo_whiten_ms.p50: the same with whitening on, on a tenth of the set.
"""

from __future__ import annotations

import io
import statistics
import time
from typing import Any

from PIL import Image

from cardstation.benchmarks import photo_set
from cardstation.personalization.photo import PhotoRefused, normalise_file
from cardstation.personalization.photo.head import HEAD_SHARE
from cardstation.personalization.rules.photo import DEFAULT_PHOTO_SPEC, check_photo


def _jpeg(variant: photo_set.Variant) -> bytes:
    out = io.BytesIO()
    Image.fromarray(variant.picture).save(out, "JPEG", quality=90)
    return out.getvalue()


def _good(variant: photo_set.Variant, data: bytes, whiten: bool = False) -> tuple[bool, float]:
    """Whether the photo is accepted and right, and the milliseconds it took."""
    spec = DEFAULT_PHOTO_SPEC
    start = time.perf_counter()
    try:
        photo = normalise_file(data, spec, whiten_background=whiten)
    except PhotoRefused:
        return False, (time.perf_counter() - start) * 1000
    took = (time.perf_counter() - start) * 1000
    head, centre_x = photo_set.head_in_photo(variant, photo.crop.x, photo.crop.y, photo.scale)
    right = (abs(head / spec.height / HEAD_SHARE - 1) <= 0.05
             and abs(centre_x - spec.width / 2) <= 0.03 * spec.width
             and not check_photo(photo.jpeg, spec))
    return right, took


def run(count: int = 60) -> list[dict[str, Any]]:
    variants = photo_set.variants(count)
    files = [_jpeg(v) for v in variants]
    _good(variants[0], files[0])  # the cascade's load, once per process
    results = [_good(v, f) for v, f in zip(variants, files, strict=True)]
    times = sorted(ms for _, ms in results)
    whiten = [_good(v, f, True)[1] for v, f in list(zip(variants, files, strict=True))[::10]]
    context = {"pictures": len(variants), "whitening": False}
    return [
        {"name": "intake.photo_ms.p50", "value": round(statistics.median(times), 1),
         "unit": "ms", "target": 300, **context},
        {"name": "intake.photo_ms.p95", "value": round(times[int(0.95 * (len(times) - 1))], 1),
         "unit": "ms", **context},
        {"name": "intake.photo_accepted_ratio",
         "value": round(sum(ok for ok, _ in results) / len(results), 3), "unit": "ratio",
         "target": 0.95, **context},
        {"name": "intake.photo_whiten_ms.p50", "value": round(statistics.median(whiten), 1),
         "unit": "ms", "pictures": len(whiten), "whitening": True},
    ]
