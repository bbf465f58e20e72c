"""The ID cards a GA 467 reader returns: resident ID card and the permits on the same chip.

The 256-byte text block is UCS-2 little-endian, fields padded with spaces. Its characters at
bytes 248-250 are a card-type flag that selects the layout (sizes in bytes):

- resident ID card (flag blank): name 30 | sex 2 | nation 4 | birth 16 | address 70 | ID 36 |
  issuer 30 | valid-from 16 | valid-to 16 | reserved 36 [C S14 IDReader.h];
- 'J', HK/Macao/Taiwan residence permit: the resident fields up to valid-to, then pass number
  18 (bytes 220-238) | issue count 4 (238-242) | reserved 6 | flag 2 | reserved 6;
- 'I', foreigner permanent residence card, 2017 layout: English name 120 | sex 2 | permit
  number 30 | nationality 6 | Chinese name 30 | valid-from 16 | valid-to 16 | birth 16 | card
  version 4 | authority code 8 | flag 2 | reserved 6;
- 'Y', foreigner permanent residence card, 2023 layout: Chinese name 30 | sex 2 | renewal count
  4 | birth 16 | English name (characters 1-35) 70 | permit number 36 | reserved 30 |
  valid-from 16 | valid-to 16 | English name (characters 36-46) 22 | nationality 6 | flag 2 |
  link to the former permit number 6.

The J, I and Y layouts are those of the public reader SDK header Johann356/readinfo
`PCSCGetData.h` (commit b527fda2: t_idcardinfor, t_idforeigner, t_idforeigner2023); the
reference (ssc-chip.md §12) knew the resident layout only, its corrections list the flag. The
photo is 1024 bytes of WLT, a vendor compression: decoding it into an image needs the reader
vendor's library (not shipped here), so the driver keeps it opaque. The fingerprint block is
1024 bytes (2 x 512), also opaque.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from construct import Adapter, Bytes, Struct

from cardstation.drivers.idreader.frames import TEXT_SIZE
from cardstation.drivers.redaction import mask_id_number

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


#: The card-type flag: bytes 248-250 of the text block, one UCS-2 character.
CARD_TYPE_OFFSET = 248
RESIDENT = ""
HMT_RESIDENCE_PERMIT = "J"
FOREIGN_PERMANENT_2017 = "I"
FOREIGN_PERMANENT_2023 = "Y"
CARD_TYPE_LABELS: dict[str, str] = {
    RESIDENT: "resident ID card",
    HMT_RESIDENCE_PERMIT: "HK/Macao/Taiwan residence permit",
    FOREIGN_PERMANENT_2017: "foreigner permanent residence card (2017)",
    FOREIGN_PERMANENT_2023: "foreigner permanent residence card (2023)",
}

#: The 256-byte text block of a resident ID card (ssc-chip.md §12).
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

#: 'J' HK/Macao/Taiwan residence permit (Johann356/readinfo PCSCGetData.h t_idcardinfor).
HmtPermitBlock = Struct(
    "name" / Ucs2Field(30),
    "sex" / Ucs2Field(2),
    "nation" / Ucs2Field(4),
    "birth_date" / Ucs2Field(16),
    "address" / Ucs2Field(70),
    "id_number" / Ucs2Field(36),
    "issuer" / Ucs2Field(30),
    "valid_from" / Ucs2Field(16),
    "valid_to" / Ucs2Field(16),
    "pass_number" / Ucs2Field(18),
    "issue_count" / Ucs2Field(4),
    "reserved1" / Ucs2Field(6),
    "card_type" / Ucs2Field(2),
    "reserved2" / Ucs2Field(6),
)
#: 'I' foreigner permanent residence card, 2017 (PCSCGetData.h t_idforeigner).
Foreign2017Block = Struct(
    "english_name" / Ucs2Field(120),
    "sex" / Ucs2Field(2),
    "id_number" / Ucs2Field(30),
    "nationality" / Ucs2Field(6),
    "name" / Ucs2Field(30),
    "valid_from" / Ucs2Field(16),
    "valid_to" / Ucs2Field(16),
    "birth_date" / Ucs2Field(16),
    "card_version" / Ucs2Field(4),
    "authority_code" / Ucs2Field(8),
    "card_type" / Ucs2Field(2),
    "reserved2" / Ucs2Field(6),
)
#: 'Y' foreigner permanent residence card, 2023 (PCSCGetData.h t_idforeigner2023).
Foreign2023Block = Struct(
    "name" / Ucs2Field(30),
    "sex" / Ucs2Field(2),
    "renewal_count" / Ucs2Field(4),
    "birth_date" / Ucs2Field(16),
    "english_name" / Ucs2Field(70),
    "id_number" / Ucs2Field(36),
    "reserved1" / Ucs2Field(30),
    "valid_from" / Ucs2Field(16),
    "valid_to" / Ucs2Field(16),
    "english_name_ext" / Ucs2Field(22),
    "nationality" / Ucs2Field(6),
    "card_type" / Ucs2Field(2),
    "previous_number_link" / Ucs2Field(6),
)
LAYOUTS: dict[str, Struct] = {
    RESIDENT: TextBlock,
    HMT_RESIDENCE_PERMIT: HmtPermitBlock,
    FOREIGN_PERMANENT_2017: Foreign2017Block,
    FOREIGN_PERMANENT_2023: Foreign2023Block,
}
for _layout in LAYOUTS.values():
    assert _layout.sizeof() == TEXT_SIZE


class UnknownCardTypeFlag(ValueError):
    """The text block's card-type flag names no layout this driver knows."""


def card_type_flag(text: bytes) -> str:
    """The card-type flag of a text block: "" (resident), "J", "I", "Y" or another letter."""
    flag = text[CARD_TYPE_OFFSET : CARD_TYPE_OFFSET + 2].decode("utf-16-le", errors="replace")
    return flag.strip(" \x00")

_EXTRA_FIELDS = ("english_name", "nationality", "pass_number", "issue_count", "card_version",
                 "authority_code", "renewal_count", "previous_number_link")
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
    #: The text block's card-type flag: "" resident ID card, "J", "I" or "Y" (see module doc).
    card_type: str = RESIDENT
    #: Foreigner cards (I, Y): English name and ISO 3166 nationality code.
    english_name: str = ""
    nationality: str = ""
    #: HK/Macao/Taiwan residence permit (J): pass number and issue count.
    pass_number: str = ""
    issue_count: str = ""
    #: 2017 foreigner card (I): card version and the accepting authority's code.
    card_version: str = ""
    authority_code: str = ""
    #: 2023 foreigner card (Y): renewal count and the link to the former permit number.
    renewal_count: str = ""
    previous_number_link: str = ""

    @property
    def card_type_label(self) -> str:
        return CARD_TYPE_LABELS.get(self.card_type, f"unknown card type {self.card_type!r}")

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
        """Encode the 256-byte UCS-2 LE text block in the layout of `card_type`."""
        layout = LAYOUTS.get(self.card_type)
        if layout is None:
            raise UnknownCardTypeFlag(f"no text layout for card type {self.card_type!r}")
        values: dict[str, str] = {}
        for sub in layout.subcons:
            name = sub.name
            if name == "card_type":
                values[name] = self.card_type
            elif name == "english_name" and self.card_type == FOREIGN_PERMANENT_2023:
                values[name] = self.english_name[:35]
            elif name == "english_name_ext":
                values[name] = self.english_name[35:]
            elif name.startswith("reserved"):
                values[name] = ""
            else:
                values[name] = getattr(self, name)
        return layout.build(values)

    @classmethod
    def from_blocks(cls, text: bytes, photo: bytes, fingerprint: bytes | None = None) -> IdCard:
        """Decode the text block in the layout its card-type flag names; keep the photo (and
        fingerprint) opaque. UnknownCardTypeFlag for a flag with no known layout."""
        if len(text) != TEXT_SIZE:
            raise ValueError(f"text block has {len(text)} bytes, expected {TEXT_SIZE}")
        flag = card_type_flag(text)
        layout = LAYOUTS.get(flag)
        if layout is None:
            raise UnknownCardTypeFlag(f"text block card-type flag {flag!r} names no known layout")
        parsed = layout.parse(text)
        values = {sub.name: parsed[sub.name] for sub in layout.subcons
                  if not sub.name.startswith("reserved")}
        values.pop("card_type", None)
        for name in _TEXT_FIELDS:  # fields this card type does not carry are empty
            values.setdefault(name, "")
        if flag == FOREIGN_PERMANENT_2023:
            values["english_name"] += values.pop("english_name_ext")
        return cls(**values, card_type=flag, photo_wlt=bytes(photo), fingerprint=fingerprint)

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
            "card_type": self.card_type,
            "card_type_label": self.card_type_label,
            **{name: getattr(self, name) for name in _EXTRA_FIELDS if getattr(self, name)},
        }

