"""Short non-reversible tags for masked data, so a trace still shows that two values match.

A plain hash of an ID number or a PIN can be reversed by trying every candidate (a PIN has a
million, an ID number's birth date and sequence a few hundred million), so the tag is an HMAC
under a key drawn once per process and never written anywhere: tags match within one run's
logs (the record written and the one read back) and mean nothing outside it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_KEY = secrets.token_bytes(32)


def tag(data: bytes) -> str:
    """8 hex digits identifying `data` within this process only."""
    return hmac.new(_KEY, data, hashlib.sha256).hexdigest()[:8]


def masked(what: str, data: bytes) -> str:
    """The trace form of a masked field: what it is, its length and its tag."""
    if not data:
        return f"<{what} 0 bytes>"
    return f"<{what} {len(data)} bytes #{tag(data)}>"
