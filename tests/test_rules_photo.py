"""Photo rules: JPEG, 358 x 441 px, size limits, light background (business-flows.md §4)."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageDraw

from cardstation.personalization.rules import (
    DEFAULT_PHOTO_SPEC,
    PHOTO_SPEC_SEED_001,
    PhotoSpec,
    check_photo,
)


def make_photo(
    size: tuple[int, int] = (358, 441),
    background: int = 240,
    noise: int = 16,
    quality: int = 85,
    fmt: str = "JPEG",
) -> bytes:
    """A passport-style test photo: noisy light background (noise makes the JPEG big enough),
    a face-coloured ellipse, dark clothes along the bottom edge. Deterministic."""
    width, height = size
    rnd = random.Random(1)
    low = max(0, background - noise)
    pixels = bytes(
        min(255, low + b * (2 * noise + 1) // 256) for b in rnd.randbytes(width * height)
    )
    gray = Image.frombytes("L", size, pixels)
    image = Image.merge("RGB", (gray, gray, gray))
    draw = ImageDraw.Draw(image)
    draw.ellipse(
        (width // 4, height * 15 // 100, width * 3 // 4, height * 65 // 100), fill=(205, 165, 135)
    )
    draw.rectangle((width // 10, height * 7 // 10, width * 9 // 10, height), fill=(30, 30, 60))
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, fmt, quality=quality)
    else:
        image.save(out, fmt)
    return out.getvalue()


def codes(data: bytes, spec: PhotoSpec = DEFAULT_PHOTO_SPEC) -> list[str]:
    return [f.code for f in check_photo(data, spec)]


@pytest.fixture(scope="module")
def good() -> bytes:
    data = make_photo()
    assert 14 * 1024 <= len(data) <= 60 * 1024  # valid under both seeds' limits
    return data


def test_good_photo_is_clean(good: bytes) -> None:
    assert check_photo(good) == []
    assert check_photo(good, PHOTO_SPEC_SEED_001) == []


def test_spec_defaults() -> None:
    assert (DEFAULT_PHOTO_SPEC.width, DEFAULT_PHOTO_SPEC.height) == (358, 441)
    assert (DEFAULT_PHOTO_SPEC.min_bytes, DEFAULT_PHOTO_SPEC.max_bytes) == (14 * 1024, 70 * 1024)
    assert (PHOTO_SPEC_SEED_001.min_bytes, PHOTO_SPEC_SEED_001.max_bytes) == (15 * 1024, 60 * 1024)


def test_wrong_dimensions() -> None:
    findings = check_photo(make_photo(size=(300, 400)))
    assert [f.code for f in findings] == ["dimensions"]
    assert "300x400" in findings[0].message


def test_too_small_in_bytes() -> None:
    assert codes(make_photo(noise=0, quality=50)) == ["too_small"]


def test_too_large_in_bytes() -> None:
    assert codes(make_photo(noise=100, quality=98)) == ["too_large"]


def test_size_limits_are_configurable(good: bytes) -> None:
    assert codes(good, PhotoSpec(max_bytes=len(good) - 1)) == ["too_large"]
    assert codes(good, PhotoSpec(min_bytes=len(good) + 1)) == ["too_small"]
    assert codes(good, PhotoSpec(min_background_luminance=250)) == ["dark_background"]


def test_dark_background() -> None:
    findings = check_photo(make_photo(background=90))
    assert [f.code for f in findings] == ["dark_background"]


def test_each_violation_is_separate() -> None:
    data = make_photo(size=(300, 400), background=60, noise=0, quality=50)
    assert codes(data) == ["too_small", "dimensions", "dark_background"]


def test_not_a_jpeg() -> None:
    png = make_photo(noise=0, fmt="PNG")
    assert "not_jpeg" in codes(png)
    assert codes(b"GIF89a" + b"\x00" * 20000) == ["not_jpeg"]


def test_jpeg_header_on_garbage() -> None:
    assert codes(b"\xff\xd8\xff" + b"\x00" * 20000) == ["corrupt"]


def test_truncated_jpeg(good: bytes) -> None:
    assert codes(good[: len(good) // 2]) == ["corrupt"]
    assert codes(good[:-2]) == ["corrupt"]  # only the end marker missing
    assert codes(good[:300]) == ["too_small", "corrupt"]


def test_empty_and_non_bytes() -> None:
    assert codes(b"") == ["empty"]
    assert codes("not bytes") == ["not_jpeg"]  # type: ignore[arg-type]
