"""Is the photo's background near-white and uniform, and the exposure right?

The background is sampled where only background can be: a band along the top (above the crown)
and strips down the upper sides (beside the head); the lower sides are shoulders. A uniform but
greyish background, as an under-exposed white wall gives, is brought up to white by one gain on
the whole photo (exposure, not retouching); one still too dark or coloured after that is refused
with its reason, as is a patterned one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cardstation.personalization.photo.head import Box
from cardstation.personalization.photo.refusal import PhotoRefused

#: the top band's and the side strips' size, as shares of the photo's height and width
TOP_BAND_SHARE = 0.055
SIDE_STRIP_SHARE = 0.065
SIDE_STRIP_BOTTOM_SHARE = 0.42
#: the background's target luma after the gain, and the largest gain applied
TARGET_LUMA = 245.0
MAX_GAIN = 1.45
#: near-white: luma at least (the card rule's own floor is 200) and colour at most
MIN_LUMA = 225.0
MAX_CHROMA = 28.0
#: uniform: spread of the luma inside the sample, and between its blocks' means
MAX_LUMA_STD = 12.0
MAX_BLOCK_SPREAD = 30.0
#: the face's mean luma below which the photo is too dark to use
MIN_FACE_LUMA = 90.0


@dataclass(frozen=True)
class Background:
    """What the check measured (after the gain): luma mean and spread, colour, gain."""

    luma: float
    luma_std: float
    block_spread: float
    chroma: float
    gain: float


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _blocks(photo: np.ndarray) -> list[np.ndarray]:
    """The sampled regions, cut into blocks (four along the top, two down each side)."""
    h, w = photo.shape[:2]
    band = max(4, round(TOP_BAND_SHARE * h))
    strip = max(4, round(SIDE_STRIP_SHARE * w))
    bottom = round(SIDE_STRIP_BOTTOM_SHARE * h)
    blocks = [photo[0:band, i * w // 4:(i + 1) * w // 4] for i in range(4)]
    middle = band + (bottom - band) // 2
    for x0, x1 in ((0, strip), (w - strip, w)):
        blocks += [photo[band:middle, x0:x1], photo[middle:bottom, x0:x1]]
    return blocks


def measure(photo: np.ndarray, gain: float = 1.0) -> Background:
    """The background figures of an RGB photo."""
    # a light blur first: sensor and JPEG noise is not a pattern
    smooth = cv2.GaussianBlur(photo, (5, 5), 0)
    blocks = _blocks(smooth)
    pixels = np.concatenate([b.reshape(-1, 3) for b in blocks]).astype(np.float32)
    luma = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    means = [float(_luma(b).mean()) for b in blocks]
    chroma = float((pixels.max(axis=1) - pixels.min(axis=1)).mean())
    return Background(luma=float(luma.mean()), luma_std=float(luma.std()),
                      block_spread=max(means) - min(means), chroma=chroma, gain=gain)


def apply_gain(photo: np.ndarray, gain: float) -> np.ndarray:
    if gain == 1.0:
        return photo
    return cv2.convertScaleAbs(photo, alpha=gain)


def _gain(figures: Background) -> float:
    return min(MAX_GAIN, max(1.0, TARGET_LUMA / max(figures.luma, 1.0)))


def exposure_gain(photo: np.ndarray) -> float:
    """The gain `level` would give a plain background (1 for a patterned one): what a photo
    about to be whitened needs so that its face is exposed as it would be before a white wall."""
    figures = measure(photo)
    plain = figures.luma_std <= MAX_LUMA_STD and figures.block_spread <= MAX_BLOCK_SPREAD
    return _gain(figures) if plain else 1.0


def level(photo: np.ndarray, face: Box) -> tuple[np.ndarray, Background]:
    """The photo with its exposure brought to a white background, and the background figures;
    refuses a background that is patterned, a face too dark even after the gain, and a
    background coloured or too dark for the gain to make white."""
    before = measure(photo)
    if before.luma_std > MAX_LUMA_STD or before.block_spread > MAX_BLOCK_SPREAD:
        raise PhotoRefused("PHOTO_BACKGROUND_NOT_UNIFORM",
                           f"luma spread {before.luma_std:.0f} (at most {MAX_LUMA_STD:.0f}), "
                           f"between areas {before.block_spread:.0f} (at most "
                           f"{MAX_BLOCK_SPREAD:.0f})")
    gain = _gain(before)
    levelled = apply_gain(photo, gain)
    check_exposure(levelled, face)
    after = measure(levelled, gain)
    if after.luma < MIN_LUMA or after.chroma > MAX_CHROMA:
        raise PhotoRefused("PHOTO_BACKGROUND_NOT_WHITE",
                           f"background luma {after.luma:.0f} (at least {MIN_LUMA:.0f}), "
                           f"colour {after.chroma:.0f} (at most {MAX_CHROMA:.0f})")
    return levelled, after


def face_luma(photo: np.ndarray, face: Box) -> float:
    """Mean luma of the middle of the face box (cheeks, nose, eyes: no hair, no background)."""
    x0, y0 = round(face.x + face.w * 0.25), round(face.y + face.h * 0.25)
    x1, y1 = round(face.x + face.w * 0.75), round(face.y + face.h * 0.75)
    region = photo[max(0, y0):max(y0 + 1, y1), max(0, x0):max(x0 + 1, x1)]
    return float(_luma(region).mean()) if region.size else 0.0


def check_exposure(photo: np.ndarray, face: Box) -> None:
    """Refuse a face too dark to print."""
    luma = face_luma(photo, face)
    if luma < MIN_FACE_LUMA:
        raise PhotoRefused("PHOTO_TOO_DARK", f"face luma {luma:.0f}, at least "
                           f"{MIN_FACE_LUMA:.0f}")
