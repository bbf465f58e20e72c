"""Synthetic applicant portraits for simulators: drawn shapes, never a real person.

Each is a 358x441 JPEG on a white background that passes the photo rules (14-70 KB): a light
noise texture keeps the JPEG above the minimum size the way a real photo's detail does.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw


def synthetic_portrait(seed: int = 0) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", (358, 441), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    skin = (rng.randint(200, 235), rng.randint(160, 195), rng.randint(130, 165))
    shirt = tuple(rng.randint(30, 120) for _ in range(3))
    draw.rectangle((40, 330, 318, 441), fill=shirt)  # shoulders
    draw.ellipse((104, 60, 254, 260), fill=skin)  # head, about 2/3 of the height with hair
    draw.pieslice((96, 40, 262, 200), 180, 360, fill=(40, 30, 25))  # hair
    for x in (145, 200):
        draw.ellipse((x, 140, x + 14, 150), fill=(30, 30, 30))
    draw.arc((150, 190, 210, 225), 20, 160, fill=(120, 50, 50), width=3)
    noise = Image.effect_noise((358, 441), 40).convert("RGB")
    img = Image.blend(img, noise, 0.12)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()
