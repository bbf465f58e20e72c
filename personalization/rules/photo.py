"""Holder photo as supplied by the CMS for the card face (and, recompressed, for EF08).

Source: reference/business-flows.md §4 (digest of the seeds): JPEG, 358 x 441 px, white (or
transparent) background, 14-70 KB (seed 000) or 15-60 KB (seed 001), head about 2/3 of the
image. The byte limits differ between regions, so they live in `PhotoSpec`; KB here is 1024
bytes. The background rule is approximated by the mean luminance (ITU-R 601 luma, Pillow's "L")
of a band along the top edge and the upper halves of the side edges: the bottom edge and the
lower sides are the holder's shoulders and clothes, which are legitimately dark.

Every problem is its own finding; undecodable or truncated data is a finding, never an
exception (Pillow can raise many exception types on hostile input, so all are caught).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageStat

from cardstation.personalization.findings import Finding

KB = 1024


@dataclass(frozen=True)
class PhotoSpec:
    """Acceptance limits for a holder photo."""

    width: int = 358
    height: int = 441
    min_bytes: int = 14 * KB
    max_bytes: int = 70 * KB
    min_background_luminance: float = 200.0  # 0-255; 200 keeps light grey, rejects blue/dark
    border_px: int = 8  # width of the band sampled for the background


PHOTO_SPEC_SEED_000 = PhotoSpec()
PHOTO_SPEC_SEED_001 = PhotoSpec(min_bytes=15 * KB, max_bytes=60 * KB)
DEFAULT_PHOTO_SPEC = PHOTO_SPEC_SEED_000

_JPEG_SOI = b"\xff\xd8\xff"
# Decoding something far larger than the spec is pointless and a decompression-bomb risk.
_MAX_DECODE_FACTOR = 16


def check_photo(
    data: bytes, spec: PhotoSpec = DEFAULT_PHOTO_SPEC, field: str = "photo"
) -> list[Finding]:
    """Validate photo bytes against `spec`; return findings, never raise.

    Codes: `empty`, `too_small` / `too_large` (file size), `not_jpeg`, `corrupt` (does not
    decode, or truncated), `not_colour` (not an RGB JPEG), `dimensions`, `dark_background`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        return [Finding(field, "not_jpeg", f"{field} must be bytes")]
    data = bytes(data)
    if not data:
        return [Finding(field, "empty", f"{field} is empty")]

    findings: list[Finding] = []
    size = len(data)
    if size < spec.min_bytes:
        findings.append(
            Finding(
                field,
                "too_small",
                f"{field} is {size} bytes, below the minimum {spec.min_bytes} "
                f"({spec.min_bytes // KB} KB)",
            )
        )
    elif size > spec.max_bytes:
        findings.append(
            Finding(
                field,
                "too_large",
                f"{field} is {size} bytes, above the maximum {spec.max_bytes} "
                f"({spec.max_bytes // KB} KB)",
            )
        )

    if not data.startswith(_JPEG_SOI):
        findings.append(Finding(field, "not_jpeg", f"{field} is not a JPEG file"))
        return findings
    try:
        image = Image.open(io.BytesIO(data))
        fmt, (width, height) = image.format, image.size
    except Exception:  # any Pillow failure on untrusted bytes is a finding
        findings.append(
            Finding(field, "corrupt", f"{field} cannot be read as JPEG (damaged header)")
        )
        return findings
    if fmt != "JPEG":
        findings.append(Finding(field, "not_jpeg", f"{field} is {fmt}, not JPEG"))
        return findings

    if image.mode != "RGB":  # L (greyscale), CMYK: the card photo is 24-bit RGB (表15)
        findings.append(Finding(field, "not_colour", f"{field} is a {image.mode} JPEG; a "
                                "24-bit RGB colour photo is required"))
    if (width, height) != (spec.width, spec.height):
        findings.append(
            Finding(
                field,
                "dimensions",
                f"{field} is {width}x{height} px, expected {spec.width}x{spec.height}",
            )
        )
    if width * height > _MAX_DECODE_FACTOR * spec.width * spec.height:
        return findings

    if not _has_end_marker(data):
        findings.append(Finding(field, "corrupt", f"{field} is truncated (no JPEG end marker)"))
        return findings
    try:
        image.load()
    except Exception as exc:  # truncated or damaged scan data
        findings.append(Finding(field, "corrupt", f"{field} does not decode: {exc}"))
        return findings

    luminance = border_luminance(image, spec.border_px)
    if luminance < spec.min_background_luminance:
        findings.append(
            Finding(
                field,
                "dark_background",
                f"{field} background is too dark (mean border luminance {luminance:.0f}, "
                f"minimum {spec.min_background_luminance:.0f}); a white background is required",
            )
        )
    return findings


def border_luminance(image: Image.Image, border_px: int = 8) -> float:
    """Mean luma (0-255) of the top band and the upper halves of the left and right bands."""
    gray = image.convert("L")
    width, height = gray.size
    band = max(1, min(border_px, width // 2, height // 2))
    half = max(band, height // 2)
    regions = [
        (0, 0, width, band),  # top
        (0, band, band, half),  # left, upper half
        (width - band, band, width, half),  # right, upper half
    ]
    total = 0.0
    count = 0
    for box in regions:
        crop = gray.crop(box)
        stat = ImageStat.Stat(crop)
        total += stat.sum[0]
        count += crop.width * crop.height
    return total / count if count else 0.0


def _has_end_marker(data: bytes) -> bool:
    # The end-of-image marker must follow the last start-of-scan; scan data cannot contain
    # FFD9 (0xFF is byte-stuffed), and an EXIF thumbnail's EOI comes before the main scans.
    # This catches truncation even if some other module set ImageFile.LOAD_TRUNCATED_IMAGES.
    last_sos = data.rfind(b"\xff\xda")
    return last_sos >= 0 and data.find(b"\xff\xd9", last_sos) >= 0
