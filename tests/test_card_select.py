"""SELECT as field readers send it, and the 3rd-generation free reads (issue 14, item 5)."""

from __future__ import annotations

from cardstation.drivers.pcsc.ssc import ITEMS, SscCard
from cardstation.drivers.pcsc.transport import InProcessTransport
from cardstation.personalization.profiles import GEN3_FREE_READ
from cardstation.simulators.card import Psam, make_card
from cardstation.simulators.card.layout import EF05_FREE_TAGS_GEN3
from tests.support.card_os import SELECT_SSSE, ok, sw_of, tx


def _ok_or_61(card: object, apdu: str) -> None:
    _, sw = tx(card, apdu)  # type: ignore[arg-type]
    assert sw == 0x9000 or sw >> 8 == 0x61, f"{apdu}: {sw:04X}"


def test_field_reader_sequence_selects_df03_by_fid_with_p1_01() -> None:
    """Golden, a7082633/HDOS_VC6 ICCInter2/ICCInter.cpp (commit 375fb65e): SELECT SSSE by
    name, EF05 by FID (P1=00), records by number, then `00 A4 01 00 02 DF 03` (a DF by FID,
    answer 61xx or 9000 accepted) and VERIFY PIN 123456."""
    card = make_card("blank2")
    card.power_on()
    _ok_or_61(card, SELECT_SSSE)
    assert ok(card, "00A4000002EF05") == b""
    assert ok(card, "00B2020403")[:2] == b"\x02\x01"  # 卡的类别
    assert ok(card, "00B2010412")[:2] == b"\x01\x10"  # 卡识别码
    assert ok(card, "00B207040B")[:2] == b"\x07\x09"  # 卡号
    _ok_or_61(card, "00A4010002DF03")
    assert ok(card, "0020000003123456") == b""


def test_p1_01_selects_every_ssse_df_and_no_ef() -> None:
    """社会保障卡文件结构和数据项 V2.0 §5.3-5.7: DF01-DF04 and DF07 under the SSSE; ISO 7816-4
    P1=01 selects a DF under the current DF (an EF FID there is not found)."""
    card = make_card("blank3")
    card.power_on()
    _ok_or_61(card, SELECT_SSSE)
    for fid in ("DF01", "DF02", "DF03", "DF04", "DF07"):
        _ok_or_61(card, SELECT_SSSE)
        assert ok(card, f"00A4010C02{fid}") == b""  # P2=0C: no FCI
    _ok_or_61(card, SELECT_SSSE)
    assert sw_of(card, "00A4010002EF05") == 0x6A82
    assert sw_of(card, "00A4010002DF09") == 0x6A82


def test_driver_select_df_uses_p1_01() -> None:
    """a7082633/HDOS_VC6 ICCInter2/ICCInter.cpp: `00 A4 01 00 02 DF 03`."""
    card = make_card("blank3")
    transport = InProcessTransport(card)
    transport.connect()
    ssc = SscCard(transport)
    ssc.select_ssse()
    ssc.select_df(0xDF03)
    assert card.current_df.fid == 0xDF03


def test_psam_answers_select_mf_without_data() -> None:
    """Golden, a7082633/HDOS_VC6 ICCInter2/ICCInter.cpp: the PSAM is opened with
    `00 A4 00 00 00` (61xx or 9000 accepted), then `00 A4 00 00 02 0016` and
    `00 B0 00 00 06` read the terminal number."""
    psam = Psam(terminal_number="410700000001")
    psam.power_on()
    _ok_or_61(psam, "00A4000000")
    assert psam.current_df is psam.mf
    _ok_or_61(psam, "00A40000020016")
    assert ok(psam, "00B0000006") == bytes.fromhex("410700000001")


def test_card_selects_mf_without_data() -> None:
    """ISO 7816-4 (SELECT, P1=00 with no data field selects the MF), as the same field reader
    sends it to the PSAM."""
    card = make_card("blank3")
    card.power_on()
    _ok_or_61(card, SELECT_SSSE)
    _ok_or_61(card, "00A4000000")
    assert card.current_df is card.tree.mf


def test_gen3_free_read_set_is_one_place_and_the_card_follows_it() -> None:
    """leithergit/SSCard_System recorded 3.0 reads without authentication (Gloabal.cpp):
    card identification code, spec version, issue and expiry dates; no card number."""
    assert GEN3_FREE_READ == {"card_id_code", "spec_version", "issue_date", "expiry_date"}
    assert {ITEMS[n].tag for n in GEN3_FREE_READ} == EF05_FREE_TAGS_GEN3


def test_read_basic_info_without_authentication_matches_the_recorded_shape() -> None:
    """leithergit/SSCard_System (SSCard_System/Gloabal.cpp, a recorded iReadCardBas of a real
    3.0 card without authentication): `411600|||411600D156000005C382...||<ATR hist>|3.00|
    20211203|20311202|`: region, empty ID number and card number, the code, empty name, the
    ATR's historical bytes, version, issue date, expiry date."""
    card = make_card("personalised")
    transport = InProcessTransport(card)
    transport.connect()
    fields = SscCard(transport).read_basic_info().to_pipe_string().split("|")
    code = card.card_identification_code.hex().upper()
    assert fields[:5] == [code[:6], "", "", code, ""]
    assert fields[6:9] == ["3.00", "20240101", "20340101"]
    assert fields[5]  # ATR historical bytes
