"""Every bound the server puts on what a caller sends, in one place (README, "Limits").

A request is checked field by field before any servicer sees it (`server/guard.py`): strings
and bytes by length, repeated fields by count, enums against their declared values, numbers
for being numbers. A violation is INVALID_ARGUMENT whose ErrorInfo names the field
(`metadata["field"]`, e.g. "application.name"). The limits are far above anything a real
request carries and far below what would cost the station memory or reach the CMS: the field
rules (personalization/rules) still judge the values themselves, as findings or refusals.

A holder photo is judged from its JPEG header before anything decodes it: its byte size, its
dimensions and the memory its decoded pixels would take. Pillow's own decompression-bomb limit
is set here too, low, as a backstop for every image the process opens (`apply_pillow_limits`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile

KIB = 1024
MIB = 1024 * KIB

#: The largest request message grpc accepts (a pushed application with its photo is far less);
#: a larger one is refused by grpc itself with RESOURCE_EXHAUSTED before it is read.
MAX_RECEIVE_BYTES = 1 * MIB

#: A photo's bytes: ten times the largest any region's photo spec allows (70 KB).
PHOTO_MAX_BYTES = 512 * KIB
#: A photo's dimensions from its header: 16 times the spec's 358 x 441 px.
PHOTO_MAX_PIXELS = 2_560_000
PHOTO_MAX_SIDE = 4_000
#: What its decoded pixels would take (width x height x bands), checked before decoding.
PHOTO_MAX_DECODED_BYTES = 8 * MIB

#: Pillow's limit for any image this process opens or any text it draws (the largest canvas
#: the station draws is a card sheet, 1014 x 1300 px); above it Pillow raises.
PILLOW_MAX_PIXELS = 4_000_000

#: WatchStation's interval_seconds: 0 (unset) is the default; anything else is clamped into
#: the range (infinity to the maximum). A stream wakes at once when its call ends, so the
#: interval never holds up a shutdown.
WATCH_INTERVAL_DEFAULT = 1.0
WATCH_INTERVAL_MIN = 0.2
WATCH_INTERVAL_MAX = 60.0


@dataclass(frozen=True)
class FieldLimit:
    """The most a field may hold: characters of a string, bytes of bytes, entries of a
    repeated field. `reason` is the ErrorInfo reason of a violation."""

    most: int
    reason: str = "FIELD_TOO_LONG"
    what: str = ""  # how the message names the field's content, e.g. "an ID number"


_ID_NUMBER = FieldLimit(64, "ID_NUMBER_INVALID", "an ID number has 18 characters")
_JOB_ID = FieldLimit(64, what="a job id has 32 characters")
_CODE = FieldLimit(32, what="a code or a date")
_NAME = FieldLimit(64, what="a name fits 50 GBK bytes")
_ADDRESS = FieldLimit(200, what="an address or a name of 100 characters")

#: Per field name (request messages of every cardstation.v1 service, nested ones included).
#: tests/test_request_limits.py checks that every string, bytes and repeated field has one.
FIELD_LIMITS: dict[str, FieldLimit] = {
    "id_number": _ID_NUMBER,
    "holder_id_number": _ID_NUMBER,
    "agent_id_number": _ID_NUMBER,
    "id": _JOB_ID,
    "remake_of": _JOB_ID,
    "page_token": _JOB_ID,
    "client_request_id": FieldLimit(128, what="a request id"),
    "remake_reason": FieldLimit(500, what="free text"),
    "name": _NAME,
    "holder_name": _NAME,
    "agent_name": _NAME,
    "bank_name": FieldLimit(64, what="a bank name"),
    "sex": _CODE,
    "nation": _CODE,
    "birth_date": _CODE,
    "birthplace": _CODE,
    "card_number": _CODE,
    "batch": _CODE,
    "issue_date": _CODE,
    "expiry_date": _CODE,
    "photo_jpeg": FieldLimit(PHOTO_MAX_BYTES, "PHOTO_TOO_LARGE", "a photo is at most 70 KB"),
    "ids": FieldLimit(1000, what="return ids"),
    # IntakeService: a camera frame or a loaded picture (the request's own limit, 1 MiB, is
    # below this; Pillow's pixel limit bounds its decoding), and the new application's texts
    "picture": FieldLimit(MAX_RECEIVE_BYTES, "PHOTO_TOO_LARGE", "a picture under 1 MiB"),
    "id_address": _ADDRESS,
    "hukou_address": _ADDRESS,
    "postal_address": _ADDRESS,
    "employer_name": _ADDRESS,
    "person_status": _CODE,
    "hukou_type": _CODE,
    "phone": _CODE,
    "employer_code": _CODE,
    "reason": FieldLimit(500, what="free text"),
    "lane": FieldLimit(32, what="a printer's name"),
}
#: A field the table does not name (a new one): still bounded.
DEFAULT_LIMIT = FieldLimit(256)

#: Enum fields whose violation has its own (older) reason; others are FIELD_INVALID.
ENUM_REASONS = {"state": "STATE_INVALID", "status": "STATUS_INVALID"}

_JPEG_SOI = b"\xff\xd8\xff"
#: Start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_frame(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) from a JPEG's frame header, read without decoding
    anything; None when the bytes end or the scan starts before a frame header."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _NO_LENGTH:
            at += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header came first
            return None
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if marker in _SOF:
            frame = data[at + 4:at + 10]
            if len(frame) < 6:
                return None
            height, width = int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big")
            return width, height, frame[5]
        at += 2 + length
    return None


def photo_problem(data: bytes) -> str | None:
    """Why a photo may not be decoded at all, from its frame header only, or None. Bytes
    that are not a JPEG, or whose header is damaged, are left to the photo rule (a finding)."""
    frame = jpeg_frame(data) if data.startswith(_JPEG_SOI) else None
    if frame is None:
        return None
    width, height, components = frame
    if max(width, height) > PHOTO_MAX_SIDE or width * height > PHOTO_MAX_PIXELS:
        return (f"it is {width}x{height} px (at most {PHOTO_MAX_PIXELS:,} px and "
                f"{PHOTO_MAX_SIDE} px a side are decoded; the card's photo is 358x441)")
    decoded = width * height * max(components, 1)
    if decoded > PHOTO_MAX_DECODED_BYTES:
        return (f"its pixels would take {decoded / MIB:.1f} MiB decoded (at most "
                f"{PHOTO_MAX_DECODED_BYTES // MIB} MiB)")
    return None


def watch_interval(value: float) -> float:
    """interval_seconds clamped into [WATCH_INTERVAL_MIN, WATCH_INTERVAL_MAX]; 0 (unset) and
    NaN are the default (the guard refuses NaN before it gets here)."""
    if not value or math.isnan(value):
        return WATCH_INTERVAL_DEFAULT
    return min(WATCH_INTERVAL_MAX, max(WATCH_INTERVAL_MIN, value))


def apply_pillow_limits() -> None:
    """Pillow refuses (raises) above PILLOW_MAX_PIXELS instead of warning up to twice that,
    and never decodes a truncated image as if it were whole."""
    Image.MAX_IMAGE_PIXELS = PILLOW_MAX_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
