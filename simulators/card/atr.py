"""ATR of the simulated cards.

``3B 6D 00 00`` + 13 historical bytes (T0 = 6D: TB1 and TC1 present, no TD1, so T=0 only and no
TCK) [I ssc-chip.md §2]. The historical-byte layout is not documented [§2]; proposal [P]:

    00 81 <vendor 2 B ASCII> <chip 2 B> <region 3 B BCD> <serial 4 B>

The task brief listed ``<3 B> <3 B region> <4 B serial>``, which makes 14 bytes; T0 = 6D fixes
13, so the undocumented middle field is 2 bytes here. The serial (ATR tail) is NOT forced to
equal the 卡流水号 in bytes 9-12 of the 卡识别码: the public pairs disagree for 411600 and
371600 (ssc-chip.md corrections; the reference's §2 inference held for 639900 only). The key
diversifier ATR8 is the last 8 bytes [C2 §2].
"""

from __future__ import annotations

from dataclasses import dataclass

from .tlv import HistoricalBytes

ATR_PREFIX = bytes.fromhex("3B6D0000")


@dataclass(frozen=True)
class AtrInfo:
    """The fields of a simulated ATR."""

    vendor: str
    chip: bytes
    region: str
    serial: bytes


def build_atr(vendor: str, chip: bytes, region: str, serial: bytes) -> bytes:
    """Build the 17-byte ATR."""
    if len(vendor) != 2 or not vendor.isascii():
        raise ValueError("vendor is 2 ASCII characters")
    hist = HistoricalBytes.build(
        {
            "category": 0x00,
            "indicator": 0x81,
            "vendor": vendor.encode("ascii"),
            "chip": chip,
            "region": bytes.fromhex(region),
            "serial": serial,
        }
    )
    return ATR_PREFIX + hist


def parse_atr(atr: bytes) -> AtrInfo:
    """Inverse of :func:`build_atr`."""
    if atr[:4] != ATR_PREFIX:
        raise ValueError("not a 3B6D0000 ATR")
    h = HistoricalBytes.parse(atr[4:])
    return AtrInfo(h.vendor.decode("ascii"), bytes(h.chip), h.region.hex().upper(), bytes(h.serial))


def historical_bytes(atr: bytes) -> bytes:
    """The 13 historical bytes (what iReadCardBas reports as 卡复位信息) [C §2, §9]."""
    return bytes(atr[4:])
