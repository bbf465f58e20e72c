"""Short command APDUs (ISO/IEC 7816-3/-4 cases 1-4) and responses."""

from __future__ import annotations

from dataclasses import dataclass

from .sw import SW, SwError


@dataclass(frozen=True)
class Apdu:
    """A parsed short command APDU. ``le`` is the raw Le byte (0 = 256/"all") or None."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Apdu:
        """Parse a short APDU; anything malformed raises ``SwError(6700)``.

        Extended-length APDUs are not supported (the card is T=0 only) and count as malformed.
        """
        if len(raw) < 4:
            raise SwError(SW.WRONG_LENGTH)
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2, b"", None, raw)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, b"", body[0], raw)
        lc = body[0]
        if lc == 0:
            raise SwError(SW.WRONG_LENGTH)
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, bytes(body[1:]), None, raw)
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, bytes(body[1 : 1 + lc]), body[-1], raw)
        raise SwError(SW.WRONG_LENGTH)

    @property
    def header(self) -> bytes:
        return bytes(self.raw[:4])

    def p1p2(self) -> int:
        return (self.p1 << 8) | self.p2

    def require_no_data(self) -> None:
        if self.data:
            raise SwError(SW.WRONG_LENGTH)

    def require_le(self) -> int:
        """The Le byte of a case-2 command (no data, Le present)."""
        if self.data or self.le is None:
            raise SwError(SW.WRONG_LENGTH)
        return self.le


@dataclass(frozen=True)
class Response:
    """Response data and status word."""

    data: bytes = b""
    sw: int = SW.OK

    def to_bytes(self) -> bytes:
        return bytes(self.data) + int(self.sw).to_bytes(2, "big")
