"""Photo normalisation for intake: a camera frame or a file to a card photo (358 x 441 JPEG,
white background, head 2/3 of the height, inside the size window), or a named refusal."""

from cardstation.personalization.photo.normalise import Photo, decode, normalise, normalise_file
from cardstation.personalization.photo.refusal import PhotoRefused

__all__ = ["Photo", "PhotoRefused", "decode", "normalise", "normalise_file"]
