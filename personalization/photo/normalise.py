"""A picture (a file's bytes or a camera frame) to a card photo: face, crop, background, JPEG.

Steps, each refusing with a named reason (personalization/faults.py, codes PHOTO_*): decode;
find exactly one face big enough; cut the rectangle in which the head is 2/3 of the height,
centred (photo/head.py holds the one assumption about heads); optionally whiten the background
(the operator's choice); check the exposure and the background; encode within the size window.
The result carries what was measured, for the operator who confirms the photo.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from cardstation.personalization.photo import background, crop, detect, encode, head, whiten
from cardstation.personalization.photo.head import Box
from cardstation.personalization.photo.refusal import PhotoRefused
from cardstation.personalization.rules.photo import DEFAULT_PHOTO_SPEC, PhotoSpec

#: the smallest face box (pixels, in the picture) that gives a sharp photo: the photo's face is
#: about 170 px tall, so a smaller source face would be enlarged by more than 2.1 times
MIN_FACE_PX = 80
#: the mean spread between a face's colour channels (0-255) below which a picture is taken for
#: black and white: skin under any light spreads them by tens of levels, a grey picture's JPEG
#: noise by one or two (the card photo is 24-bit RGB colour, 社会保障卡规范 表15)
MIN_FACE_CHROMA = 4.0
#: pictures larger than this are refused before decoding (a camera frame is 1-12 MP)
MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class Photo:
    """A normalised card photo and what the operator is shown about it."""

    jpeg: bytes
    quality: int
    face: Box  # in the source picture
    crop: Box  # in the source picture: photo pixel = (p - crop.xy) * photo.width / crop.w
    whitened: bool
    background: background.Background

    @property
    def scale(self) -> float:
        """Photo pixels per source pixel."""
        return DEFAULT_PHOTO_SPEC.width / self.crop.w


def decode(data: bytes) -> np.ndarray:
    """An RGB array of an image file's bytes (JPEG, PNG, ...; EXIF orientation applied)."""
    try:
        opened = Image.open(io.BytesIO(data))
        if opened.width * opened.height > MAX_PIXELS:
            raise PhotoRefused("PHOTO_UNREADABLE", f"{opened.width}x{opened.height} px is "
                               f"more than {MAX_PIXELS // 1_000_000} MP")
        return np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    except PhotoRefused:
        raise
    except Exception:  # any decoder failure on untrusted bytes is one reason
        raise PhotoRefused("PHOTO_UNREADABLE", "it is not a JPEG, PNG or other picture the "
                           "station decodes (empty, cut short, or another kind of file)") from None


def _chroma(picture: np.ndarray, face: Box) -> float:
    """The mean spread (max - min channel) over the face's box, every other pixel."""
    x0, y0 = max(0, int(face.x)), max(0, int(face.y))
    region = picture[y0:int(face.y + face.h):2, x0:int(face.x + face.w):2].astype(np.int16)
    if region.size == 0:
        return 0.0
    return float((region.max(axis=2) - region.min(axis=2)).mean())


def normalise_file(data: bytes, spec: PhotoSpec = DEFAULT_PHOTO_SPEC, *,
                   whiten_background: bool = False) -> Photo:
    """`normalise` on an image file's bytes."""
    return normalise(decode(data), spec, whiten_background=whiten_background)


def normalise(picture: np.ndarray, spec: PhotoSpec = DEFAULT_PHOTO_SPEC, *,
              whiten_background: bool = False) -> Photo:
    """The card photo of an RGB picture (H x W x 3, uint8); raises PhotoRefused."""
    import cv2

    if picture.dtype != np.uint8 or picture.ndim != 3 or picture.shape[2] != 3:
        raise TypeError("normalise expects an RGB picture of uint8 (H x W x 3)")
    height, width = picture.shape[:2]
    if min(height, width) < MIN_FACE_PX:  # nothing this small holds a face big enough
        raise PhotoRefused("PHOTO_FACE_TOO_SMALL", f"the whole picture is {width}x{height} px; "
                           f"a face needs at least {MIN_FACE_PX} px")
    faces = detect.find_faces(cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY))
    if not faces:
        raise PhotoRefused("PHOTO_NO_FACE")
    if len(faces) > 1:
        raise PhotoRefused("PHOTO_TWO_FACES", f"{len(faces)} faces")
    face = faces[0]
    if face.h < MIN_FACE_PX:
        raise PhotoRefused("PHOTO_FACE_TOO_SMALL", f"face {face.h:.0f} px tall, at least "
                           f"{MIN_FACE_PX}")
    if _chroma(picture, face) < MIN_FACE_CHROMA:
        raise PhotoRefused("PHOTO_NOT_COLOUR", "the face's pixels are grey")
    estimate = head.head_of(face)
    if not head.inside(estimate, picture.shape[1], picture.shape[0]):
        raise PhotoRefused("PHOTO_HEAD_AT_EDGE", "part of the head is outside the picture")
    box = head.crop_box(estimate, spec.width, spec.height)
    photo = crop.cut(picture, box, spec.width, spec.height)
    scale = spec.width / box.w
    local = Box((face.x - box.x) * scale, (face.y - box.y) * scale, face.w * scale,
                face.h * scale)
    if whiten_background:
        # the exposure first, from the wall as it was (after whitening it reads 255)
        photo = background.apply_gain(photo, background.exposure_gain(photo))
        photo = whiten.whiten(photo, local, head.head_of(local))
    photo, figures = background.level(photo, local)
    jpeg, quality = encode.encode(photo, spec)
    return Photo(jpeg, quality, face, box, whiten_background, figures)
