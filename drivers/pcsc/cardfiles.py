"""What the station's cards and key module hold, and which of it is personal: declarations only.

The SSSE items (ssc-chip.md sections 4-5), the applications selected by name, and the PSAM
file the station reads. The card API (ssc.py, psam.py) and the APDU trace (trace.py) both
read these, so the trace knows which record or file an APDU touches without importing the
card API (which sits above the transport the trace belongs to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SSSE_NAME = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")  # "sx1.sh.社会保障" in GBK
PSE_NAME = b"1PAY.SYS.DDF01"
DEBIT_AID = bytes.fromhex("A000000333010101")

Format = Literal["an", "cn", "b"]


@dataclass(frozen=True)
class Item:
    """One data item: which EF (SFI) holds it, its tag, record number (2.0/3.0), length.

    `nibbles` is set for a cn item whose value has a fixed number of digits (a date, a region
    code, the 32-digit card identification code): such a value fills the item exactly and is
    never stripped on reading, because a trailing F there is data, not padding (the card
    identification code is hex and ends in F on about 1 card in 16). A cn item without
    `nibbles` is variable-length and decimal: it alone is right-padded with F, and only that
    padding is removed on reading. `hex_digits` allows A-F inside a fixed cn value (the card
    identification code's serial and authenticator; an initialising-institution number with a
    non-decimal nibble is recorded in the field, ssc-chip.md 5.1).

    `personal` marks an item that says who the holder is (or, like the card number, points
    at one person): the APDU trace never shows its bytes (cardstation.drivers.pcsc.trace).
    """

    name: str
    sfi: int
    tag: int
    record: int
    length: int
    fmt: Format
    nibbles: int | None = None
    hex_digits: bool = False
    personal: bool = False


ITEMS: dict[str, Item] = {
    item.name: item
    for item in (
        # Lengths and formats: 社会保障卡文件结构和数据项 V2.0, 表9. Fixed digit counts: 表10
        # (卡识别码 = region 3 B + D156000005 + serial 4 B + authenticator 4 B), 表12 (初始化机构
        # 编号, 12 B), YYYYMMDD dates, GB 3304 two-digit nation, GB/T 2260 six-digit region.
        Item("card_id_code", 0x05, 0x01, 1, 16, "cn", 32, True),  # 卡的识别码
        Item("card_type", 0x05, 0x02, 2, 1, "an"),  # 卡的类别
        Item("spec_version", 0x05, 0x03, 3, 4, "an"),  # 规范版本
        Item("init_org", 0x05, 0x04, 4, 12, "cn", 24, True),  # 初始化机构编号
        Item("issue_date", 0x05, 0x05, 5, 4, "cn", 8),  # 发卡日期
        Item("expiry_date", 0x05, 0x06, 6, 4, "cn", 8),  # 卡有效期
        Item("card_number", 0x05, 0x07, 7, 9, "an", personal=True),  # 卡号
        Item("id_number", 0x06, 0x08, 1, 18, "an", personal=True),  # 社会保障号码
        Item("name", 0x06, 0x09, 2, 30, "an", personal=True),  # 姓名
        Item("name_ext", 0x06, 0x4E, 3, 20, "an", personal=True),  # 姓名扩展
        Item("sex", 0x06, 0x0A, 4, 1, "an", personal=True),  # 性别
        Item("nation", 0x06, 0x0B, 5, 1, "cn", 2, personal=True),  # 民族
        Item("birthplace", 0x06, 0x0C, 6, 3, "cn", 6, personal=True),  # 出生地
        Item("birth_date", 0x06, 0x0D, 7, 4, "cn", 8, personal=True),  # 出生日期
    )
}

#: The PSAM's application and the file with the terminal number (not personal: it names the
#: station). The EF is an assumption, as on many PSAMs, not from the SSC spec.
PSAM_AID = bytes.fromhex("D15600000590")
TERMINAL_NUMBER_FID = 0x0016
#: Binary files whose content the trace may show, by the application selected before them;
#: every other file's data is masked.
PUBLIC_FILES: frozenset[tuple[bytes, int]] = frozenset({(PSAM_AID, TERMINAL_NUMBER_FID)})
#: Items by where an APDU addresses them: (SFI, tag).
ITEMS_BY_ADDRESS: dict[tuple[int, int], Item] = {(i.sfi, i.tag): i for i in ITEMS.values()}
