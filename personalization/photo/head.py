"""Where the head is, from a detected face box, and where it goes in the photo.

The one anthropometric assumption of the photo normaliser lives here. OpenCV's frontal-face
Haar cascade (alt2) returns a square from about the eyebrows to the lower lip; the head the
photo rules measure runs from the crown (top of the hair) to the chin. Measured on the test set
(scikit-image's `astronaut` at 60 scales, offsets and rotations up to 10 degrees), the crown lies
0.52 box heights above the box and the chin 0.15 below it: the head is 1.67 box heights tall
(spread 2 %). That is one holder with full hair: flat or short hair makes the real head a few
per cent smaller, which the rule's tolerance (2/3 of the height, +-5 % of it) has to absorb;
these two factors are the numbers to revisit when real station photos show otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

#: crown above the face box's top, in box heights
CROWN_ABOVE_BOX = 0.52
#: chin below the face box's bottom, in box heights
CHIN_BELOW_BOX = 0.15

#: half the head's width (ear to ear, hair included), in head heights: a narrow head, so that
#: only a head that really runs out of the picture is taken for one
HALF_WIDTH = 0.4
#: how far the estimated crown may lie above the picture (the estimate's own spread)
CROWN_SLACK = 0.04

#: the head's share of the photo's height (seed 000: "head about 2/3")
HEAD_SHARE = 2 / 3
#: space above the crown, as a share of the photo's height: a third of what the head leaves
#: free, so the shoulders get the other two thirds
TOP_MARGIN_SHARE = (1 - HEAD_SHARE) / 3


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in pixels (x, y of the top-left corner)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def centre_x(self) -> float:
        return self.x + self.w / 2


@dataclass(frozen=True)
class Head:
    """The head's estimated crown and chin heights and its horizontal centre, in pixels."""

    crown_y: float
    chin_y: float
    centre_x: float

    @property
    def height(self) -> float:
        return self.chin_y - self.crown_y


def head_of(face: Box) -> Head:
    """The head around a detected face box (see the module's note for the factors)."""
    return Head(crown_y=face.y - CROWN_ABOVE_BOX * face.h,
                chin_y=face.y + face.h + CHIN_BELOW_BOX * face.h,
                centre_x=face.centre_x)


def inside(head: Head, width: int, height: int) -> bool:
    """Whether the whole head lies in a picture of `width` x `height` pixels."""
    half = HALF_WIDTH * head.height
    return (head.centre_x - half >= 0 and head.centre_x + half <= width
            and head.crown_y >= -CROWN_SLACK * head.height and head.chin_y <= height)


def crop_box(head: Head, width: int, height: int) -> Box:
    """The source rectangle of the photo's aspect (`width` x `height`) in which `head` takes
    HEAD_SHARE of the height, centred horizontally, TOP_MARGIN_SHARE of space above it."""
    crop_h = head.height / HEAD_SHARE
    crop_w = crop_h * width / height
    return Box(x=head.centre_x - crop_w / 2, y=head.crown_y - TOP_MARGIN_SHARE * crop_h,
               w=crop_w, h=crop_h)
