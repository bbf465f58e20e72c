"""Declarative layout of the social security card: names, item tables, file tree.

Confirmed facts cite ssc-chip.md; the tree as a whole follows the proposal of §13 [P].
"""

from __future__ import annotations

from dataclasses import dataclass

from cardstation.drivers.pcsc.ssc import ITEMS
from cardstation.personalization import cert_assumptions as ca
from cardstation.personalization.profiles import GEN3_FREE_READ

from .files import DF, FREE, NEVER, AccessRule, ItemDef, RecordEF, TransparentEF, by_key
from .tlv import ber_tlv

# --- names [C2 §3.1, §10] ----------------------------------------------------------------------
SSSE_NAME = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")  # "sx1.sh.社会保障" (GBK)
PSE_NAME = b"1PAY.SYS.DDF01"
DEBIT_AID = bytes.fromhex("A000000333010101")
DF01_AID = bytes.fromhex("D15600000500")  # 公共应用 [C §3.1]; DF01 mapping [I]
#: The other SSSE DFs (社会保障卡文件结构和数据项 V2.0 §5.4-5.7: DF02 就业与失业, DF03 社会保险 1,
#: DF04 社会保险 2, DF07 人事人才) with their AIDs (表2, D156000005 01..04; the FID-AID pairing
#: [I]). Field readers select them by FID with P1=01, e.g. `00 A4 01 00 02 DF 03`
#: (a7082633/HDOS_VC6 ICCInter2/ICCInter.cpp). Declared empty [P].
OTHER_DFS: tuple[tuple[int, bytes], ...] = tuple(
    (fid, bytes.fromhex(f"D156000005{n:02X}"))
    for fid, n in ((0xDF02, 1), (0xDF03, 2), (0xDF04, 3), (0xDF07, 4))
)

# --- key ids (P2 of EXTERNAL AUTHENTICATE) [C §8.1] --------------------------------------------
KID_UK = 0x04
KID_PUK = 0x06
KID_RK = 0x0A
KID_UK_EF0D = 0x0D

# --- item tables --------------------------------------------------------------------------------
#: EF05 发卡机构数据, record n = tag n [C S1 表9, §5.1].
EF05_ITEMS: tuple[ItemDef, ...] = (
    ItemDef(0x01, 0x10, "cn", "卡的识别码"),
    ItemDef(0x02, 0x01, "an", "卡的类别"),
    ItemDef(0x03, 0x04, "an", "规范版本"),
    ItemDef(0x04, 0x0C, "cn", "初始化机构编号"),
    ItemDef(0x05, 0x04, "cn", "发卡日期"),
    ItemDef(0x06, 0x04, "cn", "卡有效期"),
    ItemDef(0x07, 0x09, "an", "卡号"),
)
#: EF05 items readable without RK on 3rd-gen cards: the station's evidence-based set
#: (personalization/profiles.py GEN3_FREE_READ, from recorded real-card reads in
#: leithergit/SSCard_System; the reference's 01/03/07 is contradicted by them).
EF05_FREE_TAGS_GEN3 = frozenset(ITEMS[name].tag for name in GEN3_FREE_READ
                                if ITEMS[name].sfi == 0x05)

#: EF06 持卡人基本信息 in 2.0/3.0 record order [C §5.2].
EF06_ITEMS: tuple[ItemDef, ...] = (
    ItemDef(0x08, 0x12, "an", "社会保障号码"),
    ItemDef(0x09, 0x1E, "an", "姓名"),
    ItemDef(0x4E, 0x14, "an", "姓名扩展"),
    ItemDef(0x0A, 0x01, "an", "性别"),
    ItemDef(0x0B, 0x01, "cn", "民族"),
    ItemDef(0x0C, 0x03, "cn", "出生地"),
    ItemDef(0x0D, 0x04, "cn", "出生日期"),
)

#: Local extension EF0D [C S6 §3.2].
EF0D_ITEMS: tuple[ItemDef, ...] = (
    ItemDef(0xEA, 0x0C, "an", "人员识别号"),
    ItemDef(0xEB, 0x03, "cn", "初次申领地代码"),
)

#: DF01 EF05/EF06 [C S1 §5.3].
DF01_EF05_ITEMS: tuple[ItemDef, ...] = (
    ItemDef(0x20, 0x02, "an", "户口类别"),
    ItemDef(0x21, 0x50, "an", "户口所在地地址"),
    ItemDef(0x0E, 0x03, "cn", "户口所在地区划"),
)
DF01_EF06_ITEMS: tuple[ItemDef, ...] = (
    ItemDef(0x23, 0x50, "an", "常住地址"),
    ItemDef(0x24, 0x03, "cn", "常住地区划"),
    ItemDef(0x28, 0x0F, "an", "联系电话"),
    ItemDef(0x2C, 0x32, "an", "联系人"),
    ItemDef(0x2D, 0x0F, "an", "联系人电话"),
)

EF07_SIZE = 0x300  # 指纹 [C S1]
EF08_SIZE = 0x1000  # 数字相片 [C S1]


def ssse_fci_proprietary(alg: int) -> bytes:
    """A5 content of the SSSE FCI: ``9F0C 03 86 01 <alg>`` [C S5 §3.1; FCI layout §13 P]."""
    return ber_tlv(0x9F0C, bytes([0x86, 0x01, alg]))


def fci(df: DF) -> bytes:
    """``6F L [84 name | 83 FID] [A5 L proprietary]`` [P §13]."""
    body = ber_tlv(0x84, df.name) if df.name else ber_tlv(0x83, (df.fid or 0).to_bytes(2, "big"))
    if df.proprietary:
        body += ber_tlv(0xA5, df.proprietary)
    return ber_tlv(0x6F, body)


@dataclass
class CardTree:
    """The built file tree with handles on the files the OS needs by name."""

    mf: DF
    ssse: DF
    ef05: RecordEF
    ef06: RecordEF
    bank_adf: DF | None


def _item_rules(items: tuple[ItemDef, ...], free_tags: frozenset[int]) -> tuple[ItemDef, ...]:
    return tuple(
        ItemDef(i.tag, i.max_len, i.fmt, i.label, FREE) if i.tag in free_tags else i for i in items
    )


def build_ssse(generation: int, alg: int, with_ef0d: bool) -> tuple[DF, RecordEF, RecordEF]:
    """SSSE DDF with EF05/06/07/08 (+EF0D) and DF01 [C S1 表3-表8, access per §3.2/§13]."""
    uk = by_key(KID_UK)
    rk = by_key(KID_RK)
    protected: AccessRule = rk if generation >= 3 else FREE
    ef05 = RecordEF(
        "EF05", 0xEF05, 0x05, protected, uk, _item_rules(EF05_ITEMS, EF05_FREE_TAGS_GEN3)
    )
    ef06 = RecordEF("EF06", 0xEF06, 0x06, protected, uk, EF06_ITEMS)
    ssse = DF("SSSE", None, SSSE_NAME, ssse_fci_proprietary(alg))
    ssse.add(
        ef05,
        ef06,
        TransparentEF("EF07", 0xEF07, 0x07, EF07_SIZE, rk, uk),
        TransparentEF("EF08", 0xEF08, 0x08, EF08_SIZE, rk, uk),
    )
    if generation >= 3:
        # the signing key pair's public key and the certificate step's files
        # (personalization/cert_assumptions.py, all [P])
        for f in ca.CARD_FILES:
            write = NEVER if f is ca.SIGN_PUBLIC_KEY else uk
            ssse.add(TransparentEF(f"{f.fid:04X}", f.fid, None, f.size,
                                   FREE if f.readable else NEVER, write))
    if with_ef0d:
        ssse.add(RecordEF("EF0D", 0xEF0D, 0x0D, FREE, by_key(KID_UK_EF0D), EF0D_ITEMS))
    # DF01: read "PIN or RK1DF01", write UK1..6DF01 [C S1]; simplified to the SSSE RK/UK [P].
    df01_read = by_key(KID_RK, pin=True)
    df01 = DF("DF01", 0xDF01, DF01_AID)
    df01.add(
        RecordEF("EF05", 0xEF05, 0x05, df01_read, uk, DF01_EF05_ITEMS),
        RecordEF("EF06", 0xEF06, 0x06, df01_read, uk, DF01_EF06_ITEMS),
    )
    ssse.add(df01)
    for fid, aid in OTHER_DFS:
        ssse.add(DF(f"{fid:04X}", fid, aid))
    return ssse, ef05, ef06


def build_tree(generation: int, alg: int, with_ef0d: bool, bank: tuple[DF, DF] | None) -> CardTree:
    """MF with the SSSE and, when given, the PBOC PSE and debit ADF."""
    mf = DF("3F00", 0x3F00)
    ssse, ef05, ef06 = build_ssse(generation, alg, with_ef0d)
    mf.add(ssse)
    adf = None
    if bank is not None:
        pse, adf = bank
        mf.add(pse, adf)
    return CardTree(mf, ssse, ef05, ef06, adf)


__all__ = [
    "DEBIT_AID",
    "DF01_AID",
    "EF05_ITEMS",
    "EF06_ITEMS",
    "KID_PUK",
    "KID_RK",
    "KID_UK",
    "KID_UK_EF0D",
    "PSE_NAME",
    "SSSE_NAME",
    "CardTree",
    "build_tree",
    "fci",
]
