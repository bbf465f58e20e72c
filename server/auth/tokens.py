"""The bearer-token store: tokens held as sha256 hashes only (the plaintext token is never
stored, logged, or echoed in an error), the token file's format, and expiry."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardstation.server.auth.identity import AuthError, Identity, Role


@dataclass(frozen=True)
class TokenEntry:
    """One bearer token as stored: its sha256 (hex), never the token itself."""

    name: str
    role: Role
    sha256: str
    expires_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The object written to the token file."""
        return {
            "name": self.name,
            "role": self.role.value,
            "sha256": self.sha256,
            "expires_at": self.expires_at,
        }


class TokenStore:
    """Bearer tokens, held as sha256 hashes.

    File format (JSON)::

        {"tokens": [{"name": "window-1", "role": "operator",
                     "sha256": "<hex sha256 of the token>", "expires_at": 1767225600.0}]}

    `expires_at` is seconds since the epoch, or null for no expiry.
    """

    def __init__(
        self,
        entries: Iterable[TokenEntry] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._entries: list[TokenEntry] = list(entries)
        self._clock = clock

    @staticmethod
    def hash(token: str) -> str:
        """The hex sha256 of a token, as the token file stores it."""
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
             ) -> TokenStore:
        """Read a token file. Raises ValueError naming the file and the bad entry."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"token file {p} does not exist") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"token file {p} cannot be read: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise ValueError(f'token file {p}: expected {{"tokens": [...]}}')
        entries = []
        for i, raw in enumerate(data["tokens"]):
            where = f"token file {p}, tokens[{i}]"
            if not isinstance(raw, dict):
                raise ValueError(f"{where}: expected an object")
            try:
                role = Role(str(raw.get("role")))
            except ValueError:
                allowed = ", ".join(r.value for r in Role)
                raise ValueError(f"{where}: role must be one of {allowed}") from None
            digest = str(raw.get("sha256", "")).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"{where}: sha256 must be 64 hex digits")
            if "token" in raw:
                raise ValueError(f"{where}: plaintext tokens are not allowed; store sha256")
            expires = raw.get("expires_at")
            if expires is not None and not isinstance(expires, int | float):
                raise ValueError(f"{where}: expires_at must be a number or null")
            name = raw.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError(f"{where}: name is required")
            entries.append(TokenEntry(name, role, digest, None if expires is None
                                      else float(expires)))
        return cls(entries, clock=clock)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the token file (mode 0600), replacing it atomically."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        payload = json.dumps({"tokens": [e.to_json() for e in self._entries]}, indent=2)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)

    @property
    def entries(self) -> tuple[TokenEntry, ...]:
        """The stored entries (hashes only)."""
        return tuple(self._entries)

    def add(self, entry: TokenEntry) -> None:
        """Add one entry."""
        self._entries.append(entry)

    def issue(
        self, name: str, role: Role | str, ttl_seconds: float | None
    ) -> tuple[str, TokenEntry]:
        """Make a new random token for `name`, store its hash, return (token, entry).

        The token is shown once to whoever asked for it; only its hash is kept.
        """
        token = secrets.token_urlsafe(32)
        expires = None if ttl_seconds is None else self._clock() + ttl_seconds
        entry = TokenEntry(name=name, role=Role(role), sha256=self.hash(token), expires_at=expires)
        self.add(entry)
        return token, entry

    def authenticate(self, token: str) -> Identity:
        """The identity a token stands for. Raises AuthError(TOKEN_INVALID / TOKEN_EXPIRED)."""
        digest = self.hash(token)
        found: TokenEntry | None = None
        # Compare against every entry, in constant time each, without stopping early.
        for entry in self._entries:
            if hmac.compare_digest(entry.sha256, digest) and found is None:
                found = entry
        if found is None:
            raise AuthError("TOKEN_INVALID", "the bearer token is not recognised")
        if found.expires_at is not None and self._clock() >= found.expires_at:
            raise AuthError("TOKEN_EXPIRED", f"the bearer token of {found.name!r} has expired")
        return Identity(name=found.name, role=found.role, via="token")
