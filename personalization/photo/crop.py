"""Cut the photo's rectangle out of the picture and scale it to the card photo's size.

Where the rectangle runs past the picture's edge (the holder sat high in the frame) the edge
pixels are repeated: above the head and beside it that is background, which the background
check then judges like any other. A rectangle mostly outside the picture is refused.
"""

from __future__ import annotations

import cv2
import numpy as np

from cardstation.personalization.photo.head import Box
from cardstation.personalization.photo.refusal import PhotoRefused

#: most of the photo that may be made up from repeated edge pixels
MAX_PADDED_SHARE = 0.25


def cut(picture: np.ndarray, box: Box, width: int, height: int) -> np.ndarray:
    """`box` of `picture` (H x W x 3), resized to `width` x `height`."""
    rows, cols = picture.shape[:2]
    x0, y0 = round(box.x), round(box.y)
    x1, y1 = round(box.x + box.w), round(box.y + box.h)
    inside_w = max(0, min(x1, cols) - max(x0, 0))
    inside_h = max(0, min(y1, rows) - max(y0, 0))
    padded = 1 - (inside_w * inside_h) / max(1, (x1 - x0) * (y1 - y0))
    if padded > MAX_PADDED_SHARE:
        raise PhotoRefused("PHOTO_HEAD_AT_EDGE", f"{padded:.0%} of the photo would lie "
                           "outside the picture")
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y1 - rows), max(0, x1 - cols)
    region = picture[max(0, y0):min(y1, rows), max(0, x0):min(x1, cols)]
    if top or left or bottom or right:
        region = cv2.copyMakeBorder(region, top, bottom, left, right, cv2.BORDER_REPLICATE)
    # INTER_AREA when shrinking (no aliasing), cubic when a small face is enlarged
    shrink = region.shape[0] >= height
    return cv2.resize(region, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
