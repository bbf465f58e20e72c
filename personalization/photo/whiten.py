"""Whitening, the operator's option: the background replaced by white, the holder kept.

GrabCut separates holder from background, seeded from the face: the face box is certainly the
holder; the estimated head and the shoulders below it probably are; the band above the crown and
the top corners certainly are not; the rest is left to the colour model. The edge is feathered
so hair does not end in a cut-out line.
"""

from __future__ import annotations

import cv2
import numpy as np

from cardstation.personalization.photo.head import Box, Head

ITERATIONS = 3
FEATHER_PX = 5
WHITE = 255


def _seed(shape: tuple[int, int], face: Box, head: Head) -> np.ndarray:
    h, w = shape
    mask = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    # the head as an ellipse a little wider than the face box, down to the chin
    centre = (round(head.centre_x), round((head.crown_y + head.chin_y) / 2))
    axes = (round(face.w * 0.75), round(head.height / 2))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, cv2.GC_PR_FGD, -1)
    # shoulders: from the chin down, as wide as two and a half faces
    x0 = round(head.centre_x - 1.25 * face.w)
    x1 = round(head.centre_x + 1.25 * face.w)
    mask[round(head.chin_y):, max(0, x0):min(w, x1)] = cv2.GC_PR_FGD
    # the face itself
    fx0, fy0 = round(face.x + face.w * 0.15), round(face.y + face.h * 0.1)
    fx1, fy1 = round(face.x + face.w * 0.85), round(face.y + face.h * 0.95)
    mask[max(0, fy0):fy1, max(0, fx0):fx1] = cv2.GC_FGD
    # above the crown and the top corners
    top = max(1, round(head.crown_y * 0.6))
    mask[:top, :] = cv2.GC_BGD
    corner_w, corner_h = round(w * 0.12), round(h * 0.45)
    mask[:corner_h, :corner_w] = cv2.GC_BGD
    mask[:corner_h, w - corner_w:] = cv2.GC_BGD
    return mask


def whiten(photo: np.ndarray, face: Box, head: Head) -> np.ndarray:
    """`photo` (RGB, the photo's final size) with its background white."""
    mask = _seed(photo.shape[:2], face, head)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)
    # the rectangle is unused when GrabCut starts from a mask
    cv2.grabCut(bgr, mask, (0, 0, 0, 0), bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    holder = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    kernel = 2 * FEATHER_PX + 1
    alpha = cv2.GaussianBlur(holder, (kernel, kernel), 0)[..., None]
    out = photo.astype(np.float32) * alpha + WHITE * (1 - alpha)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
