"""The photo test set of the tests and `make bench`: scikit-image's `astronaut` (a
public-domain NASA portrait the package ships; scikit-image is a development dependency only),
the holder cut out once and set on varied backgrounds, scaled, moved, rotated and brightened,
with the crown and chin tracked through every change: the ground truth the normaliser's crop
is measured against.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

#: crown (top of the hair) and chin of the astronaut, read off the picture (x, y in pixels)
CROWN = (227.0, 15.0)
CHIN = (227.0, 177.0)
#: the part of the picture the cut-out is taken from (head, collar and shoulders)
REGION = (60, 0, 400, 340)  # x0, y0, x1, y1


@dataclass(frozen=True)
class Variant:
    name: str
    picture: np.ndarray  # RGB
    crown: tuple[float, float]  # in the picture
    chin: tuple[float, float]
    scale: float = 1.0
    angle: float = 0.0
    brightness: float = 1.0
    wall: tuple[int, int, int] = (255, 255, 255)


@lru_cache(maxsize=1)
def holder() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's head and shoulders (RGB) and its mask (float 0..1), cut by GrabCut
    seeded by hand (not by the code under test)."""
    from skimage import data

    x0, y0, x1, y1 = REGION
    rgb = np.ascontiguousarray(data.astronaut()[y0:y1, x0:x1])
    h, w = rgb.shape[:2]
    mask = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    cv2.ellipse(mask, (227 - x0, 96 - y0), (70, 80), 0, 0, 360, cv2.GC_PR_FGD, -1)
    mask[185 - y0:, 60 - x0:370 - x0] = cv2.GC_PR_FGD
    mask[60 - y0:170 - y0, 195 - x0:260 - x0] = cv2.GC_FGD  # the face
    mask[230 - y0:, 130 - x0:320 - x0] = cv2.GC_FGD  # the suit's chest
    mask[:8, :] = cv2.GC_BGD
    mask[:150, :125 - x0] = cv2.GC_BGD  # the flag's side of the backdrop
    mask[:150, 335 - x0:] = cv2.GC_BGD  # the shuttle's side
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), mask, None, bgd, fgd, 5,
                cv2.GC_INIT_WITH_MASK)
    alpha = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    alpha = cv2.GaussianBlur(alpha, (5, 5), 0)
    return rgb, alpha


def backdrop(size: tuple[int, int], colour: tuple[int, int, int], rnd: random.Random
             ) -> np.ndarray:
    """A plain wall of `colour` (w, h) with a faint vertical fall-off and sensor noise."""
    w, h = size
    ramp = np.linspace(0, -rnd.uniform(0, 8), h, dtype=np.float32)[:, None, None]
    noise = np.random.default_rng(rnd.randrange(1 << 30)).normal(0, 1.5, (h, w, 3))
    return np.asarray(colour, np.float32) + ramp + noise.astype(np.float32)


def place(canvas: np.ndarray, scale: float, angle: float, head_at: tuple[float, float],
          *, brightness: float = 1.0) -> tuple[np.ndarray, tuple[float, float],
                                                tuple[float, float]]:
    """The holder set on `canvas` (float RGB): scaled, rotated by `angle` degrees about the
    head, the head's centre at `head_at`; returns the picture and the moved crown and chin."""
    rgb, alpha = holder()
    x0, y0 = REGION[:2]
    centre = ((CROWN[0] + CHIN[0]) / 2 - x0, (CROWN[1] + CHIN[1]) / 2 - y0)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += np.array(head_at) - np.array(centre)
    h, w = canvas.shape[:2]
    warped = cv2.warpAffine(rgb.astype(np.float32), matrix, (w, h), flags=cv2.INTER_LINEAR)
    weight = cv2.warpAffine(alpha, matrix, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    out = (warped * weight + canvas * (1 - weight)) * brightness
    picture = np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def moved(p: tuple[float, float]) -> tuple[float, float]:
        q = matrix @ np.array([p[0] - x0, p[1] - y0, 1.0])
        return float(q[0]), float(q[1])

    return picture, moved(CROWN), moved(CHIN)


#: near-white walls of photo studios and offices: white, warm, cool, light grey
WALLS = ((252, 252, 252), (244, 242, 236), (236, 240, 246), (222, 222, 222), (248, 240, 228),
         (210, 212, 214))


def variants(count: int = 60, seed: int = 15) -> list[Variant]:
    """`count` face-bearing pictures, each a different scale, offset, rotation (up to 10
    degrees), brightness and wall colour, in landscape (webcam) or portrait frames."""
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        size = (640, 480) if i % 2 else (600, 800)
        scale = rnd.uniform(1.0, 1.7) if size == (640, 480) else rnd.uniform(1.2, 2.2)
        angle = rnd.uniform(-10, 10)
        head_h = (CHIN[1] - CROWN[1]) * scale
        # the head anywhere that leaves the photo's frame mostly inside the picture
        x = rnd.uniform(0.4, 0.6) * size[0]
        y = rnd.uniform(0.75, 1.0) * head_h
        wall = WALLS[i % len(WALLS)]
        brightness = rnd.uniform(0.85, 1.12)
        picture, crown, chin = place(backdrop(size, wall, rnd), scale, angle, (x, y),
                                     brightness=brightness)
        name = (f"v{i:02d}-s{scale:.2f}-r{angle:+.1f}-b{brightness:.2f}-"
                f"wall{wall[0]}.{wall[1]}.{wall[2]}")
        out.append(Variant(name, picture, crown, chin, scale, angle, brightness, wall))
    return out


def head_in_photo(variant: Variant, crop_x: float, crop_y: float, scale: float
                  ) -> tuple[float, float]:
    """The true head's height (crown to chin) and its centre's x in the photo, in photo pixels,
    for a photo cut at (crop_x, crop_y) with `scale` photo pixels per picture pixel."""
    crown = ((variant.crown[0] - crop_x) * scale, (variant.crown[1] - crop_y) * scale)
    chin = ((variant.chin[0] - crop_x) * scale, (variant.chin[1] - crop_y) * scale)
    return math.dist(crown, chin), (crown[0] + chin[0]) / 2
