"""Photo normalisation (personalization/photo) on the astronaut test set: every accepted photo
passes the card rules, its head is 2/3 of the height (+-5 % of that) and centred (3 % of the
width); every refusal names its reason, with a cause and a remedy."""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
import pytest

from cardstation.benchmarks import photo_set
from cardstation.personalization.faults import CATALOGUE
from cardstation.personalization.photo import PhotoRefused, normalise, normalise_file
from cardstation.personalization.photo.background import measure
from cardstation.personalization.photo.encode import encode
from cardstation.personalization.photo.head import HEAD_SHARE
from cardstation.personalization.rules.photo import (
    KB,
    PHOTO_SPEC_SEED_000,
    PHOTO_SPEC_SEED_001,
    PhotoSpec,
    check_photo,
)

W, H = PHOTO_SPEC_SEED_000.width, PHOTO_SPEC_SEED_000.height


@lru_cache(maxsize=1)
def _variants() -> list[photo_set.Variant]:
    return photo_set.variants(60)


def _plain(size=(640, 480), colour=(248, 248, 248), seed=1) -> np.ndarray:
    """A plain wall (float RGB, what photo_set.place paints on)."""
    return photo_set.backdrop(size, colour, random.Random(seed))


def _frame(canvas: np.ndarray) -> np.ndarray:
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def _refusal(picture: np.ndarray, **kw) -> PhotoRefused:
    with pytest.raises(PhotoRefused) as caught:
        normalise(picture, **kw)
    refused = caught.value
    assert refused.code in CATALOGUE  # a named, catalogued reason
    assert refused.fault.cause and refused.fault.remedy and "Traceback" not in str(refused)
    return refused


def test_the_set_varies_what_the_issue_asks_for() -> None:
    variants = _variants()
    assert len(variants) >= 50
    angles = [v.angle for v in variants]
    assert max(angles) > 8 and min(angles) < -8 and max(abs(a) for a in angles) <= 10
    assert len({v.wall for v in variants}) >= 5  # background colours
    assert max(v.brightness for v in variants) - min(v.brightness for v in variants) > 0.2
    assert max(v.scale for v in variants) / min(v.scale for v in variants) > 1.8
    offsets = {round(v.crown[0] / v.picture.shape[1], 2) for v in variants}
    assert len(offsets) > 10  # the head at many places in the frame


def test_accepted_photos_pass_the_rules_with_the_head_two_thirds_and_centred() -> None:
    accepted, failures = 0, []
    for variant in _variants():
        try:
            photo = normalise(variant.picture)
        except PhotoRefused as refused:
            failures.append(f"{variant.name}: refused {refused.code}")
            continue
        accepted += 1
        assert check_photo(photo.jpeg, PHOTO_SPEC_SEED_000) == [], variant.name
        head, centre_x = photo_set.head_in_photo(variant, photo.crop.x, photo.crop.y,
                                                 photo.scale)
        if abs(head / H / HEAD_SHARE - 1) > 0.05:
            failures.append(f"{variant.name}: head {head / H:.3f} of the height")
        if abs(centre_x - W / 2) > 0.03 * W:
            failures.append(f"{variant.name}: head centre {centre_x - W / 2:+.1f} px off")
    assert accepted >= 0.95 * len(_variants()), failures
    assert not [f for f in failures if "refused" not in f], failures


def test_the_size_window_is_searched_for_both_seeds_specs() -> None:
    variant = _variants()[3]
    for spec in (PHOTO_SPEC_SEED_000, PHOTO_SPEC_SEED_001,
                 PhotoSpec(min_bytes=14 * KB, max_bytes=20 * KB)):
        photo = normalise(variant.picture, spec)
        assert spec.min_bytes <= len(photo.jpeg) <= spec.max_bytes
        assert check_photo(photo.jpeg, spec) == []
    # a tight window costs quality: the search went down
    assert photo.quality < normalise(variant.picture).quality


def test_a_window_no_quality_reaches_is_refused_with_its_reason() -> None:
    photo = np.full((H, W, 3), 250, np.uint8)
    with pytest.raises(PhotoRefused) as caught:
        encode(photo, PhotoSpec(min_bytes=14 * KB, max_bytes=70 * KB))
    assert caught.value.code == "PHOTO_SIZE_WINDOW" and "1024" in caught.value.fault.cause
    noisy = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    with pytest.raises(PhotoRefused) as caught:
        encode(noisy, PhotoSpec(min_bytes=1 * KB, max_bytes=5 * KB))
    assert caught.value.code == "PHOTO_SIZE_WINDOW"


def test_no_face() -> None:
    assert _refusal(_frame(_plain())).code == "PHOTO_NO_FACE"
    from skimage import data
    shuttle = np.ascontiguousarray(data.astronaut()[0:300, 340:512])  # the model shuttle
    assert _refusal(shuttle).code == "PHOTO_NO_FACE"


def test_two_faces() -> None:
    canvas = _plain((900, 600))
    picture, _, _ = photo_set.place(canvas, 1.3, 0, (250, 200))
    picture, _, _ = photo_set.place(picture.astype(np.float32), 1.2, 3, (650, 210))
    refused = _refusal(picture)
    assert refused.code == "PHOTO_TWO_FACES" and "2 faces" in refused.fault.cause


def test_face_too_small() -> None:
    picture, _, _ = photo_set.place(_plain(), 0.55, 0, (320, 160))
    refused = _refusal(picture)
    assert refused.code == "PHOTO_FACE_TOO_SMALL" and "at least 80" in refused.fault.cause


def test_a_picture_smaller_than_a_face_is_refused_as_too_small_not_faceless() -> None:
    tiny = np.full((64, 64, 3), 240, dtype=np.uint8)
    refused = _refusal(tiny)
    assert refused.code == "PHOTO_FACE_TOO_SMALL" and "64x64" in refused.fault.cause


def test_a_black_and_white_picture_is_refused_and_its_colour_twin_accepted() -> None:
    """The card photo is 24-bit RGB colour (社会保障卡文件结构和数据项 V2.0 表15)."""
    colour, _, _ = photo_set.place(_plain(), 1.4, 0, (320, 200))
    assert check_photo(normalise(colour).jpeg) == []
    grey = np.repeat(colour.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    assert _refusal(grey).code == "PHOTO_NOT_COLOUR"


def test_a_greyscale_jpeg_fails_the_card_rules() -> None:
    from io import BytesIO

    from PIL import Image

    colour, _, _ = photo_set.place(_plain(), 1.4, 0, (320, 200))
    photo = Image.open(BytesIO(normalise(colour).jpeg))
    out = BytesIO()
    photo.convert("L").save(out, "JPEG", quality=95)
    assert "not_colour" in [f.code for f in check_photo(out.getvalue())]


def test_too_dark() -> None:
    picture, _, _ = photo_set.place(_plain(), 1.4, 0, (320, 200), brightness=0.3)
    assert _refusal(picture).code == "PHOTO_TOO_DARK"


def test_patterned_background_is_not_uniform_until_whitened() -> None:
    canvas = _plain((640, 480))
    canvas[:, (np.arange(640) // 40) % 2 == 1] *= 0.75  # vertical stripes, a curtain
    picture, _, _ = photo_set.place(canvas, 1.4, 0, (320, 200))
    assert _refusal(picture).code == "PHOTO_BACKGROUND_NOT_UNIFORM"
    whitened = normalise(picture, whiten_background=True)
    assert whitened.whitened and check_photo(whitened.jpeg) == []


def test_coloured_background_is_not_white_until_whitened() -> None:
    picture, _, _ = photo_set.place(_plain(colour=(110, 150, 215)), 1.4, 4, (320, 200))
    refused = _refusal(picture)
    assert refused.code == "PHOTO_BACKGROUND_NOT_WHITE"
    photo = normalise(picture, whiten_background=True)
    assert check_photo(photo.jpeg) == []
    from cardstation.personalization.photo import decode
    figures = measure(decode(photo.jpeg))
    assert figures.luma > 245 and figures.chroma < 8


def test_a_grey_wall_is_brought_to_white_by_the_exposure_gain() -> None:
    picture, _, _ = photo_set.place(_plain(colour=(196, 196, 196)), 1.4, 0, (320, 200))
    photo = normalise(picture)
    assert photo.background.gain > 1.2 and photo.background.luma >= 240


@pytest.mark.parametrize("head_at", [(70, 200), (570, 200), (320, 100)],
                         ids=["left", "right", "top"])
def test_a_head_at_the_picture_edge_is_refused(head_at) -> None:
    picture, _, _ = photo_set.place(_plain((640, 480)), 1.6, 0, head_at)
    assert _refusal(picture).code == "PHOTO_HEAD_AT_EDGE"


def test_a_picture_that_is_not_rgb_bytes_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        normalise(_plain())


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff\xe0" + b"\0" * 64])
def test_unreadable_bytes(data: bytes) -> None:
    with pytest.raises(PhotoRefused) as caught:
        normalise_file(data)
    assert caught.value.code == "PHOTO_UNREADABLE"


def test_a_file_decodes_like_the_frame_it_holds() -> None:
    import io

    from PIL import Image
    variant = _variants()[0]
    out = io.BytesIO()
    Image.fromarray(variant.picture).save(out, "PNG")
    assert normalise_file(out.getvalue()).crop == normalise(variant.picture).crop


def test_a_hit_on_the_holders_clothes_is_not_a_second_face() -> None:
    from cardstation.personalization.photo.detect import _on_torso
    from cardstation.personalization.photo.head import Box
    face = Box(190, 165, 145, 145)
    assert _on_torso(Box(173, 490, 60, 60), face)  # seen on the set: a fold of the suit
    assert not _on_torso(Box(420, 170, 130, 130), face)  # someone beside the holder


def test_whitening_keeps_the_exposure_the_grey_wall_called_for() -> None:
    from cardstation.personalization.photo import decode
    from cardstation.personalization.photo.background import face_luma
    from cardstation.personalization.photo.head import Box

    picture, _, _ = photo_set.place(_plain(colour=(196, 196, 196)), 1.4, 0, (320, 200))
    plain, whitened = normalise(picture), normalise(picture, whiten_background=True)
    scale = plain.scale
    face = Box((plain.face.x - plain.crop.x) * scale, (plain.face.y - plain.crop.y) * scale,
               plain.face.w * scale, plain.face.h * scale)
    lit, white = face_luma(decode(plain.jpeg), face), face_luma(decode(whitened.jpeg), face)
    assert plain.background.gain > 1.2 and abs(white / lit - 1) < 0.05, (lit, white)
