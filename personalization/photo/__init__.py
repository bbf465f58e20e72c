"""Photo normalisation for intake: a camera frame or a file to a card photo (358 x 441 JPEG,
white background, head 2/3 of the height, inside the size window), or a named refusal."""

from cardstation.personalization.photo.normalise import Photo, decode, normalise, normalise_file
from cardstation.personalization.photo.refusal import PhotoRefused
from cardstation.personalization.rules.photo import KB, PhotoSpec


def photo_spec(min_kb: int, max_kb: int) -> PhotoSpec:
    """The size window of `[photo] min_kb` / `max_kb` (KB = 1024 bytes, as in the rules; the
    seeds' "14-70 KB" does not say, and 1024 is the stricter reading at the top)."""
    return PhotoSpec(min_bytes=min_kb * KB, max_bytes=max_kb * KB)


__all__ = ["Photo", "PhotoRefused", "decode", "normalise", "normalise_file", "photo_spec"]
