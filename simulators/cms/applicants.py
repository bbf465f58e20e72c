"""Sample applicants for the CMS simulator: synthetic people with valid numbers and photos.

Every ID number and card number carries a correct check character (computed with the station's
own rules, so a simulator bug cannot hide a rules bug behind matching mistakes), every photo is
a drawn portrait from `synthetic_portrait`, never a real person. Generation is deterministic in
the seed so a test, a demo and a crash drill that share a seed see the same people.
"""

from __future__ import annotations

import io
import random
from functools import lru_cache

from PIL import Image, ImageDraw

from cardstation.personalization.model import Application
from cardstation.personalization.rules import card_number_check_char, id_check_char
from cardstation.simulators.photos import synthetic_portrait

# Drawing a portrait takes ~10 ms; tests and drills build many simulators with the same seeds.
_portrait = lru_cache(maxsize=512)(synthetic_portrait)

# The worked example of GB 11643 (its check character is X); region 110105 is Beijing Chaoyang.
EXAMPLE_ID_NUMBER = "11010519491231002X"
EXAMPLE_CARD_NUMBER = "D2143569X"

# Issue date of every sample card: a constant (not "today") keeps the samples deterministic.
SAMPLE_ISSUE_DATE = "20250601"
SAMPLE_EXPIRY_DATE = "20350601"  # social security cards are issued for ten years

# Xinxiang (410700) districts and counties: the stations this project serves (business-flows.md).
_REGIONS = ("410702", "410703", "410704", "410711", "410721", "410724", "410725", "410781")
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗"
_GIVEN = (
    "秀英",
    "桂英",
    "建国",
    "建华",
    "志强",
    "海燕",
    "丽",
    "军",
    "伟",
    "芳",
    "敏",
    "静",
    "磊",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
)
_BANKS = ("中国工商银行", "中国农业银行", "中国银行", "中国建设银行", "中国邮政储蓄银行")
_NATIONS = ("01", "01", "01", "01", "03", "04")  # mostly Han (01), some Hui (03) and Zang (04)
# Card-number first letters; I and O are avoided because operators misread them as 1 and 0.
_CARD_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def example_applicant(photo_seed: int = 0) -> Application:
    """The GB 11643 example holder: 李秀英, female (17th digit 2 is even), born 1949-12-31."""
    return Application(
        id_number=EXAMPLE_ID_NUMBER,
        name="李秀英",
        sex="2",
        nation="01",
        birth_date="19491231",
        birthplace="110105",
        card_number=EXAMPLE_CARD_NUMBER,
        bank_name="中国工商银行",
        batch="41070020250601001",
        issue_date=SAMPLE_ISSUE_DATE,
        expiry_date=SAMPLE_EXPIRY_DATE,
        photo=_portrait(photo_seed),
    )


def generate_applicants(
    count: int, seed: int = 0, *, exclude: set[str] | None = None
) -> list[Application]:
    """`count` synthetic applicants with unique, valid ID numbers and card numbers.

    ID numbers are Xinxiang region codes, birth dates 1940-2009 and a random sequence; sex
    follows the sequence parity and birthplace the region, so the validation's consistency
    checks pass. `exclude` holds ID numbers and card numbers that must not be produced (those
    already in a ledger). Photos are `synthetic_portrait` seeded per applicant.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(f"cms-applicants-{seed}")
    taken = set(exclude or ()) | {EXAMPLE_ID_NUMBER, EXAMPLE_CARD_NUMBER}
    people: list[Application] = []
    while len(people) < count:
        region = rng.choice(_REGIONS)
        birth = f"{rng.randint(1940, 2009):04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        sequence = f"{rng.randint(0, 999):03d}"
        body = region + birth + sequence
        id_number = body + id_check_char(body)
        card_body = rng.choice(_CARD_LETTERS) + f"{rng.randint(0, 9_999_999):07d}"
        card_number = card_body + card_number_check_char(card_body)
        if id_number in taken or card_number in taken:
            continue  # drawn again: uniqueness matters more than the exact sequence
        taken |= {id_number, card_number}
        index = len(people)
        people.append(
            Application(
                id_number=id_number,
                name=rng.choice(_SURNAMES) + rng.choice(_GIVEN),
                sex="1" if int(sequence[-1]) % 2 else "2",
                nation=rng.choice(_NATIONS),
                birth_date=birth,
                birthplace=region,
                card_number=card_number,
                bank_name=rng.choice(_BANKS),
                batch=f"410700{SAMPLE_ISSUE_DATE}{index + 2:03d}",
                issue_date=SAMPLE_ISSUE_DATE,
                expiry_date=SAMPLE_EXPIRY_DATE,
                photo=_portrait(seed * 10_007 + index + 1),
            )
        )
    return people


def bad_photo(seed: int = 0) -> bytes:
    """A photo that fails the photo rules twice over: dark blue background and under 14 KB.

    It stands for the CMS sending a scan the operator must stop at preview.
    """
    rng = random.Random(f"cms-bad-photo-{seed}")
    img = Image.new("RGB", (358, 441), (20, 40, rng.randint(90, 130)))
    draw = ImageDraw.Draw(img)
    draw.ellipse((104, 60, 254, 260), fill=(150, 120, 100))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=30)  # a low quality keeps it far below the 14 KB minimum
    return out.getvalue()
