"""Answer-to-reset parsing: just what the driver needs (protocols offered, historical bytes)."""

from __future__ import annotations


def _walk(atr: bytes) -> tuple[set[int], int]:
    """Return (protocols offered, index of the first historical byte)."""
    if len(atr) < 2:
        raise ValueError(f"ATR too short ({len(atr)} bytes)")
    if atr[0] not in (0x3B, 0x3F):
        raise ValueError(f"ATR TS byte {atr[0]:02X} is neither 3B nor 3F")
    protocols: set[int] = set()
    index = 1
    y = atr[1] >> 4
    index = 2
    first_td = True
    while True:
        for bit in (0x1, 0x2, 0x4):  # TAi, TBi, TCi
            if y & bit:
                index += 1
        if not y & 0x8:
            break
        if index >= len(atr):
            raise ValueError("ATR truncated in its interface bytes")
        td = atr[index]
        index += 1
        protocols.add(td & 0x0F)
        first_td = False
        y = td >> 4
    if first_td:
        protocols.add(0)  # no TD1: T=0 only (ISO 7816-3)
    return protocols, index


def protocols_from_atr(atr: bytes) -> set[int]:
    """Transmission protocols the ATR offers (e.g. {0} for the SSC's 3B6D0000... ATR)."""
    return {p for p in _walk(atr)[0] if p in (0, 1)} or {0}


def historical_bytes(atr: bytes) -> bytes:
    """The K historical bytes (T0 low nibble), as iReadCardBas reports them."""
    _, start = _walk(atr)
    count = atr[1] & 0x0F
    return atr[start : start + count]
