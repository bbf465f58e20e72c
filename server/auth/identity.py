"""Who a caller is: the roles a station knows, an authenticated identity, and the error raised
when no credential identifies the caller. Shared by the token store, the policy tables and the
interceptor, so it depends on none of them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a caller is for: the window operator, an upstream system, or an administrator."""

    OPERATOR = "operator"
    UPSTREAM = "upstream"
    ADMIN = "admin"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. `via` is "token", "mtls" or "loopback-simulate"."""

    name: str
    role: Role
    via: str


LOOPBACK_IDENTITY = Identity(name="loopback", role=Role.ADMIN, via="loopback-simulate")


class AuthError(Exception):
    """Authentication failed. `reason` is the ErrorInfo reason; the message holds no secret."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
