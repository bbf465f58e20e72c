"""The resident ID card as the GA 467 reader returns it (ssc-chip.md §12).

The 256-byte text block is UCS-2 little-endian, fields padded with spaces, sizes in bytes:
name 30 | sex 2 | nation 4 | birth 16 | address 70 | ID 36 | issuer 30 | valid-from 16 |
valid-to 16 | reserved 36 [C S14 IDReader.h]. The photo is 1024 bytes of WLT, a vendor
compression: decoding it into an image needs the reader vendor's library (not shipped here), so
the driver keeps it opaque. The fingerprint block is 1024 bytes (2 x 512), also opaque.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from construct import Adapter, Bytes, Struct

from cardstation.drivers.idreader.frames import TEXT_SIZE
from cardstation.logs import mask_id_number

#: Sex codes of GB/T 2261.1 as written on the card.
SEX_LABELS: dict[str, str] = {"0": "未知", "1": "男", "2": "女", "9": "未说明"}

#: Nationality codes of GB 3304 (the card stores the two-digit code).
NATION_LABELS: dict[str, str] = {
    "01": "汉族", "02": "蒙古族", "03": "回族", "04": "藏族", "05": "维吾尔族", "06": "苗族",
    "07": "彝族", "08": "壮族", "09": "布依族", "10": "朝鲜族", "11": "满族", "12": "侗族",
    "13": "瑶族", "14": "白族", "15": "土家族", "16": "哈尼族", "17": "哈萨克族", "18": "傣族",
    "19": "黎族", "20": "傈僳族", "21": "佤族", "22": "畲族", "23": "高山族", "24": "拉祜族",
    "25": "水族", "26": "东乡族", "27": "纳西族", "28": "景颇族", "29": "柯尔克孜族",
    "30": "土族", "31": "达斡尔族", "32": "仫佬族", "33": "羌族", "34": "布朗族", "35": "撒拉族",
    "36": "毛南族", "37": "仡佬族", "38": "锡伯族", "39": "阿昌族", "40": "普米族",
    "41": "塔吉克族", "42": "怒族", "43": "乌孜别克族", "44": "俄罗斯族", "45": "鄂温克族",
    "46": "德昂族", "47": "保安族", "48": "裕固族", "49": "京族", "50": "塔塔尔族",
    "51": "独龙族", "52": "鄂伦春族", "53": "赫哲族", "54": "门巴族", "55": "珞巴族",
    "56": "基诺族", "97": "其他", "98": "外国血统中国籍人士",
}


class Ucs2Field(Adapter):
    """A fixed-size UCS-2 LE text field, space-padded on build, trailing spaces/NULs trimmed."""

    def __init__(self, size: int) -> None:
        super().__init__(Bytes(size))
        self.size = size

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:
        return obj.decode("utf-16-le", errors="replace").rstrip(" \x00")

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:
        raw = obj.encode("utf-16-le")
        if len(raw) > self.size:
            raise ValueError(f"text of {len(obj)} characters does not fit {self.size} bytes")
        return raw + " ".encode("utf-16-le") * ((self.size - len(raw)) // 2)


#: The 256-byte text block (ssc-chip.md §12).
TextBlock = Struct(
    "name" / Ucs2Field(30),
    "sex" / Ucs2Field(2),
    "nation" / Ucs2Field(4),
    "birth_date" / Ucs2Field(16),
    "address" / Ucs2Field(70),
    "id_number" / Ucs2Field(36),
    "issuer" / Ucs2Field(30),
    "valid_from" / Ucs2Field(16),
    "valid_to" / Ucs2Field(16),
    "reserved" / Ucs2Field(36),
)
assert TextBlock.sizeof() == TEXT_SIZE

_TEXT_FIELDS = (
    "name", "sex", "nation", "birth_date", "address", "id_number", "issuer", "valid_from",
    "valid_to",
)


@dataclass(frozen=True)
class IdCard:
    """One second-generation resident ID card as read by a GA 467 reader.

    `photo_wlt` is the 1024-byte WLT photo, opaque: decoding WLT needs the reader vendor's
    library. `fingerprint` is the 1024-byte fingerprint block or None. `valid_to` is YYYYMMDD
    or "长期" (long-term). The repr masks the ID number; `to_dict(show_id=False)` too.
    """

    name: str
    sex: str
    nation: str
    birth_date: str
    address: str
    id_number: str = field(repr=False)
    issuer: str
    valid_from: str
    valid_to: str
    photo_wlt: bytes = field(default=b"", repr=False)
    fingerprint: bytes | None = field(default=None, repr=False)

    @property
    def sex_label(self) -> str:
        """男/女 (or 未知/未说明) for the GB/T 2261.1 code."""
        return SEX_LABELS.get(self.sex, "?")

    @property
    def nation_label(self) -> str:
        """The GB 3304 name of the nationality code, or "?" for a code not in the table."""
        return NATION_LABELS.get(self.nation, "?")

    @property
    def masked_id_number(self) -> str:
        return mask_id_number(self.id_number)

    def __repr__(self) -> str:
        fp = "None" if self.fingerprint is None else f"<{len(self.fingerprint)} bytes>"
        return (
            f"IdCard(name={self.name!r}, sex={self.sex!r}, nation={self.nation!r}, "
            f"birth_date={self.birth_date!r}, address={self.address!r}, "
            f"id_number={self.masked_id_number!r}, issuer={self.issuer!r}, "
            f"valid_from={self.valid_from!r}, valid_to={self.valid_to!r}, "
            f"photo_wlt=<{len(self.photo_wlt)} bytes>, fingerprint={fp})"
        )

    __str__ = __repr__

    def to_text_block(self) -> bytes:
        """Encode the 256-byte UCS-2 LE text block (space padded, ssc-chip.md §12)."""
        values = {name: getattr(self, name) for name in _TEXT_FIELDS}
        return TextBlock.build({**values, "reserved": ""})

    @classmethod
    def from_blocks(cls, text: bytes, photo: bytes, fingerprint: bytes | None = None) -> IdCard:
        """Decode the text block and keep the photo (and fingerprint) opaque."""
        if len(text) != TEXT_SIZE:
            raise ValueError(f"text block has {len(text)} bytes, expected {TEXT_SIZE}")
        parsed = TextBlock.parse(text)
        return cls(**{name: parsed[name] for name in _TEXT_FIELDS},
                   photo_wlt=bytes(photo), fingerprint=fingerprint)

    def to_dict(self, show_id: bool = False) -> dict[str, Any]:
        """JSON-friendly fields; the ID number masked unless `show_id`. Photo as its size only."""
        return {
            "name": self.name,
            "sex": self.sex,
            "sex_label": self.sex_label,
            "nation": self.nation,
            "nation_label": self.nation_label,
            "birth_date": self.birth_date,
            "address": self.address,
            "id_number": self.id_number if show_id else self.masked_id_number,
            "issuer": self.issuer,
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
            "photo_wlt_bytes": len(self.photo_wlt),
            "photo_note": "WLT; decoding needs the reader vendor's library",
            "fingerprint_bytes": None if self.fingerprint is None else len(self.fingerprint),
        }

