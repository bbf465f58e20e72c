"""The photo as a JPEG inside the size window, by searching the quality.

KB is 1024 bytes, as in the card rules (personalization/rules/photo.py) and `[photo] min_kb` /
`max_kb` of cardstation.toml. The highest quality that stays at or under the maximum is taken
(binary search: the size grows with the quality); a photo too plain to reach the minimum even at
the top quality is encoded again without chroma subsampling, which adds bytes, not artefacts.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cardstation.personalization.photo.refusal import PhotoRefused
from cardstation.personalization.rules.photo import KB, PhotoSpec

MIN_QUALITY = 40
MAX_QUALITY = 95


def _jpeg(image: Image.Image, quality: int, subsampling: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, subsampling=subsampling, optimize=True)
    return out.getvalue()


def encode(photo: np.ndarray, spec: PhotoSpec) -> tuple[bytes, int]:
    """JPEG bytes of the RGB `photo` within spec's byte window, and the quality used."""
    image = Image.fromarray(photo, "RGB")
    for subsampling in (2, 0):  # 4:2:0 first (what cameras write), then 4:4:4
        low, high = MIN_QUALITY, MAX_QUALITY
        best: tuple[bytes, int] | None = None
        while low <= high:
            quality = (low + high) // 2
            data = _jpeg(image, quality, subsampling)
            if len(data) <= spec.max_bytes:
                best, low = (data, quality), quality + 1
            else:
                high = quality - 1
        if best is None:
            break  # too large even at the lowest quality: no subsampling would help
        if len(best[0]) >= spec.min_bytes:
            return best
    smallest = len(_jpeg(image, MIN_QUALITY, 2))
    raise PhotoRefused("PHOTO_SIZE_WINDOW", f"the JPEG cannot land in "
                       f"{spec.min_bytes // KB}-{spec.max_bytes // KB} KB (KB = 1024 bytes; "
                       f"{smallest // KB} KB at quality {MIN_QUALITY})")
