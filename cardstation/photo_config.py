"""The photo size window of cardstation.toml ([photo] min_kb, max_kb) as the rules' PhotoSpec.

KB is 1024 bytes here as in the rules (personalization/rules/photo.py); the seeds' "14-70 KB"
does not say, and 1024 is the stricter reading at the top of the window.
"""

from __future__ import annotations

from cardstation.config import Config
from cardstation.personalization.rules.photo import KB, PhotoSpec


def photo_spec(config: Config) -> PhotoSpec:
    """The configured window; dimensions and background floor as the rules have them."""
    return PhotoSpec(min_bytes=config.photo.min_kb * KB, max_bytes=config.photo.max_kb * KB)
