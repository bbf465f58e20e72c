"""Faces in a picture: OpenCV's frontal-face Haar cascade, which its wheel ships (no download).

Detection runs on a copy scaled down to at most DETECT_SIDE pixels on its long side: a cascade
pass costs with the area, and a face big enough for a card photo stays far above the cascade's
smallest window there. Boxes come back in the full picture's pixels.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import cv2
import numpy as np

from cardstation.personalization.photo.head import Box

DETECT_SIDE = 480
#: a second face counts if it is at least this share of the largest face's width (smaller
#: hits are people far behind the holder, or the cascade's noise on a patterned background)
SECOND_FACE_SHARE = 0.5
#: nor does a hit on the holder's own body: below the chin and within this many face widths
#: of the face's centre (folds of clothing fool the cascade now and then)
TORSO_HALF_WIDTH = 1.25
#: of the wheel's frontal cascades, alt2 gives the steadiest box size across scale and rotation
#: (on the test set: head height / box height 1.67, spread 2 %; the default cascade's 4 %)
_CASCADE = "haarcascade_frontalface_alt2.xml"
#: a picture darker than this (mean luma) is searched again with its histogram equalised, so
#: a dim face is found and refused as too dark rather than as missing; equalising every picture
#: would lose faces in front of grey walls
DIM_LUMA = 90
_lock = threading.Lock()  # a CascadeClassifier is not safe to share between threads


@lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    # cv2.data is the wheel's folder of cascades (not in OpenCV's type stubs)
    path = cv2.data.haarcascades + _CASCADE  # type: ignore[attr-defined]
    classifier = cv2.CascadeClassifier(path)
    if classifier.empty():  # a broken OpenCV install: the wheel always has the file
        raise RuntimeError(f"OpenCV cannot load its face cascade {_CASCADE}")
    return classifier


def find_faces(gray: np.ndarray) -> list[Box]:
    """Faces in an 8-bit grey picture, largest first, stray small hits dropped."""
    scale = min(1.0, DETECT_SIDE / max(gray.shape[:2]))
    small = gray if scale == 1.0 else cv2.resize(
        gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    found = _detect(small)
    if not len(found) and float(small.mean()) < DIM_LUMA:
        found = _detect(cv2.equalizeHist(small))
    boxes = sorted((Box(float(x / scale), float(y / scale), float(w / scale), float(h / scale))
                    for x, y, w, h in found.reshape(-1, 4)),
                   key=lambda b: b.w, reverse=True)
    if not boxes:
        return []
    main = boxes[0]
    return [main] + [b for b in boxes[1:]
                     if b.w >= SECOND_FACE_SHARE * main.w and not _on_torso(b, main)]


def _on_torso(box: Box, face: Box) -> bool:
    below_chin = box.y >= face.y + face.h
    return below_chin and abs(box.centre_x - face.centre_x) <= TORSO_HALF_WIDTH * face.w


def _detect(gray: np.ndarray) -> np.ndarray:
    # a fine scale step: the box's size is the head's measure (photo/head.py)
    with _lock:
        return np.asarray(_cascade().detectMultiScale(gray, scaleFactor=1.05, minNeighbors=5,
                                                      minSize=(24, 24)))
