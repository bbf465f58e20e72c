"""Card OS: ATR, SELECT, T=0, records, binary files, bank application, malformed APDUs, JSON.

Byte strings are those of ssc-chip.md §4, §5.2 and §10, replayed against the simulated card.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cardstation.personalization.keys.scheme import KeyUsage
from cardstation.simulators.card import SW, SmartCard, SSCard, make_card, parse_atr
from cardstation.simulators.card.tlv import bcd_to_digits, find_ber, parse_ber
from tests.support.card_os import SELECT_SSSE, SSSE, ext_auth, ok, sw_of, tx, with_response


@pytest.fixture
def card3() -> SSCard:
    card = make_card("blank3")
    card.power_on()
    return card


@pytest.fixture
def card2() -> SSCard:
    card = make_card("blank2")
    card.power_on()
    return card


# --- ATR -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["blank3", "blank2", "temporary", "personalised"])
def test_atr_layout(profile: str) -> None:
    card = make_card(profile)
    atr = card.power_on()
    assert atr == card.atr and len(atr) == 17
    assert atr[:4] == bytes.fromhex("3B6D0000")
    assert atr[4:6] == bytes.fromhex("0081")
    info = parse_atr(atr)
    assert info.region == "410700"
    cid = card.card_identification_code
    # The ATR tail is not the 卡流水号 (bytes 9-12 of the 卡识别码): public pairs for 411600
    # and 371600 differ (leithergit/SSCard_System logs, ssc-chip.md corrections).
    assert atr[-4:] != cid[8:12]
    assert cid[:8] == bytes.fromhex("410700D156000005")
    assert card.historical_bytes == atr[4:]


def test_serial_override_changes_atr_and_card_id() -> None:
    a, b = make_card(serial=1), make_card(serial="00000002", card_serial="C38275EE")
    assert a.atr != b.atr and b.atr[-4:] == bytes.fromhex("00000002")
    assert b.card_identification_code[8:12] == bytes.fromhex("C38275EE")
    assert a.pan != b.pan


# --- SELECT and T=0 ------------------------------------------------------------------------------


def test_select_ssse_fci(card3: SSCard) -> None:
    data, sw = tx(card3, SELECT_SSSE)
    assert not data and sw >> 8 == 0x61
    fci = ok(card3, f"00C00000{sw & 0xFF:02X}")
    assert len(fci) == sw & 0xFF
    assert fci.hex().upper() == (
        "6F19840F" + SSSE + "A5069F0C03860103"
    )  # 6F L [84 0F name] [A5 L [9F0C 03 86 01 03]]


def test_select_ssse_fci_alg01_on_2nd_gen(card2: SSCard) -> None:
    fci = with_response(card2, SELECT_SSSE)
    assert fci.endswith(bytes.fromhex("9F0C03860101"))


def test_get_response_wrong_le_then_right(card3: SSCard) -> None:
    _, sw = tx(card3, SELECT_SSSE)
    n = sw & 0xFF
    assert sw_of(card3, "00C0000005") == 0x6C00 | n
    assert len(ok(card3, f"00C00000{n:02X}")) == n  # still pending after 6Cxx
    assert sw_of(card3, "00C0000005") == SW.CONDITIONS_NOT_SATISFIED  # nothing pending now


def test_get_response_le00_and_pending_dropped_by_other_command(card3: SSCard) -> None:
    tx(card3, SELECT_SSSE)
    assert ok(card3, "00C0000000").startswith(b"\x6f")
    tx(card3, SELECT_SSSE)
    ok(card3, "00A4020002EF05")
    assert sw_of(card3, "00C0000000") == SW.CONDITIONS_NOT_SATISFIED


def test_select_ef_by_p1_00_and_02(card3: SSCard) -> None:
    tx(card3, SELECT_SSSE)
    assert tx(card3, "00A4020002EF05") == (b"", 0x9000)  # no FCI on EF select
    assert tx(card3, "00A4000002EF06") == (b"", 0x9000)


def test_select_errors(card3: SSCard) -> None:
    assert sw_of(card3, "00A4020002EF05") == SW.FILE_NOT_FOUND  # not under the MF
    tx(card3, SELECT_SSSE)
    assert sw_of(card3, "00A4020002EF99") == SW.FILE_NOT_FOUND
    assert sw_of(card3, "00A4040005A000000999") == SW.FILE_NOT_FOUND
    assert sw_of(card3, "00A4080002EF05") == SW.WRONG_P1P2
    assert sw_of(card3, "00A4020402EF05") == SW.WRONG_P1P2
    assert sw_of(card3, "00A4020001EF") == SW.WRONG_LENGTH
    assert sw_of(card3, "00A4020002DF01") == SW.FILE_NOT_FOUND  # P1=02 selects EFs only


def test_select_df_by_fid_and_mf(card3: SSCard) -> None:
    tx(card3, SELECT_SSSE)
    fci = with_response(card3, "00A4000002DF01")
    assert find_ber(fci, 0x84) == bytes.fromhex("D15600000500")
    assert find_ber(with_response(card3, "00A40000023F00"), 0x83) == b"\x3f\x00"
    assert tx(card3, "00A4000C023F00") == (b"", 0x9000)  # P2=0C: no FCI


# --- records (§4, §5) ----------------------------------------------------------------------------


def test_read_card_id_by_number_current_and_sfi(card3: SSCard) -> None:
    tx(card3, SELECT_SSSE)
    ok(card3, "00A4020002EF05")
    rec = ok(card3, "00B2010412")
    assert rec[:2] == b"\x01\x10" and rec[2:] == card3.card_identification_code
    assert ok(card3, "00B2012C12") == rec  # P2 2C = SFI 05, record number
    assert ok(card3, "00B2012812") == rec  # P2 28 = SFI 05, by tag 01
    assert ok(card3, "00B2010012") == rec  # current EF, by tag
    assert ok(card3, "00B2010400") == rec  # Le=00: whole record


def test_gen3_free_reads_follow_recorded_real_cards(card3: SSCard) -> None:
    """Golden, leithergit/SSCard_System (SSCard_System/Gloabal.cpp, 2025 snapshot): a real
    3.0 card read without authentication gives the card identification code, the spec
    version and the issue and expiry dates, and no card number."""
    tx(card3, SELECT_SSSE)
    assert ok(card3, "00B2032C06") == bytes.fromhex("0304") + b"3.00"
    assert ok(card3, "00B2032806") == bytes.fromhex("0304") + b"3.00"
    assert ok(card3, "00B2012C12")[:2] == b"\x01\x10"
    assert ok(card3, "00B2052C06")[:2] == b"\x05\x04"  # 发卡日期
    assert ok(card3, "00B2062C06")[:2] == b"\x06\x04"  # 卡有效期
    assert sw_of(card3, "00B2072C0B") == SW.SECURITY_NOT_SATISFIED  # 卡号


def test_wrong_le_gives_6cxx(card3: SSCard) -> None:
    tx(card3, SELECT_SSSE)
    assert sw_of(card3, "00B2012C10") == 0x6C12
    assert sw_of(card3, "00B2012C13") == 0x6C12
    assert sw_of(card3, "00B2012C") == SW.WRONG_LENGTH  # no Le at all


def test_record_errors(card3: SSCard) -> None:
    tx(card3, SELECT_SSSE)
    assert sw_of(card3, "00B2080412") == SW.NO_CURRENT_EF  # nothing selected yet
    ok(card3, "00A4020002EF05")
    assert sw_of(card3, "00B2080400") == SW.RECORD_NOT_FOUND
    assert sw_of(card3, "00B2000400") == SW.RECORD_NOT_FOUND
    assert sw_of(card3, "00B2090000") == SW.RECORD_NOT_FOUND  # tag 09 is not in EF05
    assert sw_of(card3, "00B2010500") == SW.WRONG_P1P2  # P2 low bits 101
    assert sw_of(card3, "00B2014C00") == SW.FILE_NOT_FOUND  # SFI 09 does not exist
    assert sw_of(card3, "00B2013C00") == SW.FILE_STRUCTURE  # SFI 07 is transparent


def test_gen3_protected_reads_need_rk(card3: SSCard) -> None:
    tx(card3, SELECT_SSSE)
    assert sw_of(card3, "00B2072C0B") == SW.SECURITY_NOT_SATISFIED  # 卡号
    assert sw_of(card3, "00B2022C03") == SW.SECURITY_NOT_SATISFIED  # 卡类别
    assert sw_of(card3, "00B2013414") == SW.SECURITY_NOT_SATISFIED  # EF06 社会保障号码
    assert ext_auth(card3, 0x0A, KeyUsage.RK) == 0x9000
    assert ok(card3, "00B2022C03") == b"\x02\x01" + b"3"
    assert ok(card3, "00B2052806") == bytes.fromhex("0504FFFFFFFF")  # blank cn item
    assert ok(card3, "00B2013414") == b"\x08\x12" + bytes(18)  # blank an item


def test_gen2_reads_are_free(card2: SSCard) -> None:
    tx(card2, SELECT_SSSE)
    assert ok(card2, "00B2013414")[:2] == b"\x08\x12"
    assert ok(card2, "00B24E3016")[:2] == b"\x4e\x14"  # S10: by tag 4E, SFI 06
    assert ok(card2, "00B2032C06")[2:] == b"2.00"


def test_ef06_record_numbering(card2: SSCard) -> None:
    tx(card2, SELECT_SSSE)
    expected = {1: (0x08, 0x12), 2: (0x09, 0x1E), 3: (0x4E, 0x14), 4: (0x0A, 1), 5: (0x0B, 1)}
    expected |= {6: (0x0C, 3), 7: (0x0D, 4)}
    for rec, (tag, length) in expected.items():
        data = ok(card2, f"00B2{rec:02X}3400")
        assert (data[0], data[1], len(data)) == (tag, length, length + 2)
    assert sw_of(card2, "00B2083400") == SW.RECORD_NOT_FOUND
    for n in range(1, 8):  # EF05 record n = tag n
        assert ok(card2, f"00B2{n:02X}2C00")[0] == n


def test_update_record_needs_uk(card2: SSCard) -> None:
    tx(card2, SELECT_SSSE)
    assert sw_of(card2, "00DC0528060504" + "20240101") == SW.SECURITY_NOT_SATISFIED
    assert ext_auth(card2, 0x0A, KeyUsage.RK) == 0x9000  # RK does not grant writing
    assert sw_of(card2, "00DC0528060504" + "20240101") == SW.SECURITY_NOT_SATISFIED


def test_s6_update_strings_after_ext_auth(card2: SSCard) -> None:
    tx(card2, SELECT_SSSE)
    ok(card2, "00A4000002EF05")
    assert ext_auth(card2, 0x04, KeyUsage.UK) == 0x9000
    name = "张三".encode("gbk").ljust(30, b"\x00").hex()
    writes = [
        "00DC0830140812" + b"11010519491231002X".hex(),
        "00DC093020091E" + name,
        "00DC4E30164E14" + "00" * 20,
        "00DC0A30030A01" + "32",
        "00DC0B30030B01" + "01",
        "00DC0D30060D04" + "19491231",
        "00DC0C30050C03" + "110105",
        "00DC0528060504" + "20240101",
        "00DC07280B0709" + b"A12345678".hex(),
    ]
    for apdu in writes:
        assert sw_of(card2, apdu) == 0x9000, apdu
    assert ok(card2, "00B2013414") == bytes.fromhex("0812") + b"11010519491231002X"
    assert ok(card2, "00B2093020")[2:].rstrip(b"\x00").decode("gbk") == "张三"
    assert ok(card2, "00B2052806") == bytes.fromhex("050420240101")
    assert ok(card2, "00B20C3005") == bytes.fromhex("0C03110105")
    assert card2.item("EF05", 0x07) == b"A12345678"


def test_s3_update_by_record_number_on_current_ef(card3: SSCard) -> None:
    tx(card3, SELECT_SSSE)
    ok(card3, "00A4020002EF06")
    assert ext_auth(card3, 0x04, KeyUsage.UK) == 0x9000
    ok(card3, "00DC040403" + "0A0131")  # rec 4 = 性别
    ok(card3, "00DC070406" + "0D0419850602")
    assert ext_auth(card3, 0x0A, KeyUsage.RK) == 0x9000  # both keys now in the state
    assert ok(card3, "00B2040403") == bytes.fromhex("0A0131")
    assert ok(card3, "00B20D0000") == bytes.fromhex("0D0419850602")


def test_update_record_length_rules_and_atomicity(card2: SSCard) -> None:
    tx(card2, SELECT_SSSE)
    assert ext_auth(card2, 0x04, KeyUsage.UK) == 0x9000
    before = ok(card2, "00B2013400")
    # value longer than the item (0x12) -> 6700, record unchanged
    assert sw_of(card2, "00DC0830150813" + "31" * 19) == SW.WRONG_LENGTH
    assert ok(card2, "00B2013400") == before
    # TLV length byte inconsistent with the data -> 6700, unchanged
    assert sw_of(card2, "00DC0830050812313233") == SW.WRONG_LENGTH
    # tag of the data is not the record's -> 6A80, unchanged
    assert sw_of(card2, "00DC083005090331 3233") == SW.WRONG_DATA
    assert sw_of(card2, "00DC010405090331 3233") == SW.WRONG_DATA
    assert ok(card2, "00B2013400") == before
    # unknown record / tag
    assert sw_of(card2, "00DC0934050903313233") == SW.RECORD_NOT_FOUND
    assert sw_of(card2, "00DC4F30050903313233") == SW.RECORD_NOT_FOUND
    # no data
    assert sw_of(card2, "00DC080030") == SW.WRONG_LENGTH
    # shorter value: stored as given, read back with its own length
    ok(card2, "00DC0830050803313233")
    assert sw_of(card2, "00B2013414") == 0x6C05
    assert ok(card2, "00B2013405") == bytes.fromhex("0803313233")


def test_ef0d_needs_key_0d(card2: SSCard) -> None:
    tx(card2, SELECT_SSSE)
    apdu = "00DCEA680EEA0C" + b"410700000001".hex()
    assert ext_auth(card2, 0x04, KeyUsage.UK) == 0x9000
    assert sw_of(card2, apdu) == SW.SECURITY_NOT_SATISFIED
    assert ext_auth(card2, 0x0D, KeyUsage.UK_EF0D) == 0x9000
    assert sw_of(card2, apdu) == 0x9000
    assert ok(card2, "00B2EA680E")[2:] == b"410700000001"
    assert sw_of(card2, "00DCEB6806EB04110105FF") == SW.WRONG_LENGTH


# --- binary --------------------------------------------------------------------------------------


def test_ef07_ef08_binary(card3: SSCard) -> None:
    tx(card3, SELECT_SSSE)
    ok(card3, "00A4020002EF08")
    assert sw_of(card3, "00B0000010") == SW.SECURITY_NOT_SATISFIED
    assert sw_of(card3, "00D6000004FFD8FFE0") == SW.SECURITY_NOT_SATISFIED
    assert ext_auth(card3, 0x04, KeyUsage.UK) == 0x9000
    ok(card3, "00D6000004FFD8FFE0")
    ok(card3, "00D60FFC0401020304")
    assert sw_of(card3, "00D60FFD0401020304") == SW.WRONG_LENGTH  # past the end
    assert sw_of(card3, "00D6100001AA") == SW.WRONG_OFFSET
    assert ext_auth(card3, 0x0A, KeyUsage.RK) == 0x9000
    assert ok(card3, "00B0000004") == bytes.fromhex("FFD8FFE0")
    assert len(ok(card3, "00B0000000")) == 256
    assert ok(card3, "00B00FFC00") == bytes.fromhex("01020304")
    assert sw_of(card3, "00B00FFC08") == 0x6C04
    assert sw_of(card3, "00B0100000") == SW.WRONG_OFFSET
    assert len(ok(card3, "00B0870000")) == 256  # SFI 07 (EF07, 0x300 bytes)
    assert ok(card3, "00B087FF01") == b"\x00"  # SFI mode: P2 is the offset
    ok(card3, "00A4020002EF05")
    assert sw_of(card3, "00B0000001") == SW.FILE_STRUCTURE


# --- DF01 ---------------------------------------------------------------------------------------


def test_df01_read_needs_pin_or_rk(card3: SSCard) -> None:
    tx(card3, SELECT_SSSE)
    with_response(card3, "00A4000002DF01")
    assert sw_of(card3, "00B2012C00") == SW.SECURITY_NOT_SATISFIED
    ok(card3, "0020000003123456")
    assert ok(card3, "00B2012C00") == bytes.fromhex("20020000")


# --- bank application (§10) ----------------------------------------------------------------------


def _pan_via_gpo(card: SSCard) -> str:
    fci = with_response(card, "00A404000E315041592E5359532E4444463031")
    assert find_ber(fci, 0x84) == b"1PAY.SYS.DDF01"
    entry = ok(card, "00B2010C00")
    aid = find_ber(entry, 0x4F)
    assert aid == bytes.fromhex("A000000333010101")
    fci = with_response(card, "00A4040008" + aid.hex() + "00")
    assert find_ber(fci, 0x9F38) is not None
    gpo = with_response(card, "80A800000B8309000000000000000156" + "00")
    afl = find_ber(gpo, 0x94)
    assert afl is not None and len(afl) % 4 == 0
    for i in range(0, len(afl), 4):
        sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
        for rec in range(first, last + 1):
            record = ok(card, f"00B2{rec:02X}{(sfi << 3) | 4:02X}00")
            assert parse_ber(record)[0][0] == 0x70
            pan = find_ber(record, 0x5A)
            if pan is not None:
                assert find_ber(record, 0x5F24) == bytes.fromhex("301231")
                return bcd_to_digits(pan)
    raise AssertionError("no 5A")


def test_pan_via_pse_gpo_and_afl(card3: SSCard) -> None:
    pan = _pan_via_gpo(card3)
    assert pan == card3.pan and len(pan) == 19


def test_pan_shortcut_without_gpo(card2: SSCard) -> None:
    with_response(card2, "00A4040008A000000333010101")
    record = ok(card2, "00B2011400")  # S9: SFI 2 record 1
    raw = find_ber(record, 0x5A)
    assert raw is not None and len(raw) == 10 and raw.hex().upper().endswith("F")
    assert bcd_to_digits(raw) == card2.pan


def test_gpo_errors(card3: SSCard) -> None:
    assert sw_of(card3, "80A80000028300") == SW.CONDITIONS_NOT_SATISFIED  # ADF not selected
    with_response(card3, "00A4040008A000000333010101")
    assert sw_of(card3, "80A8000002830500") == SW.WRONG_DATA
    assert sw_of(card3, "00A80000028300") == SW.CLA_NOT_SUPPORTED


def test_temporary_card_has_no_bank_app() -> None:
    card = make_card("temporary")
    card.power_on()
    assert card.pan is None
    assert sw_of(card, "00A404000E315041592E5359532E4444463031") == SW.FILE_NOT_FOUND
    assert sw_of(card, "00A4040008A000000333010101") == SW.FILE_NOT_FOUND


# --- personalised profile -----------------------------------------------------------------------


def test_personalised_profile_reads_back() -> None:
    card = make_card("personalised")
    card.power_on()
    tx(card, SELECT_SSSE)
    assert ext_auth(card, 0x0A, KeyUsage.RK) == 0x9000
    assert ok(card, "00B2013414")[2:] == b"11010519491231002X"
    assert ok(card, "00B2093020")[2:].rstrip(b"\x00").decode("gbk") == "张三"
    assert ok(card, "00B2073406") == bytes.fromhex("0D0419491231")
    assert ok(card, "00B2072C0B")[2:] == card.item("EF05", 0x07)


# --- malformed APDUs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("", SW.WRONG_LENGTH),
        ("00", SW.WRONG_LENGTH),
        ("00A404", SW.WRONG_LENGTH),
        ("00A4020003EF05", SW.WRONG_LENGTH),  # Lc says 3, 2 bytes follow
        ("00A4020001EF0500AA", SW.WRONG_LENGTH),
        ("00A4020000", SW.WRONG_LENGTH),  # Lc = 0 with no data: treated as Le on SELECT
        ("00A40200000000", SW.WRONG_LENGTH),  # Lc = 00 with data: malformed
        ("10A4020002EF05", SW.CLA_NOT_SUPPORTED),
        ("FFA4020002EF05", SW.CLA_NOT_SUPPORTED),
        ("80A4020002EF05", SW.CLA_NOT_SUPPORTED),
        ("0002000000", SW.INS_NOT_SUPPORTED),
        ("00CA9F7F00", SW.INS_NOT_SUPPORTED),
        ("00A4080002EF05", SW.WRONG_P1P2),
        ("0084010008", SW.WRONG_P1P2),
        ("0084000005", SW.WRONG_LENGTH),
        ("0084000000", SW.WRONG_LENGTH),
    ],
)
def test_malformed_apdus(card3: SSCard, apdu: str, sw: int) -> None:
    assert tx(card3, apdu) == (b"", sw)


def test_process_apdu_never_raises(card3: SSCard) -> None:
    assert card3.process_apdu(None) == bytes.fromhex("6F00")  # type: ignore[arg-type]
    assert card3.process_apdu(bytearray.fromhex("00A4040000"))[-2:] == bytes.fromhex("6700")


def test_unpowered_card_answers_6f00() -> None:
    card = make_card()
    assert card.process_apdu(bytes.fromhex(SELECT_SSSE)) == bytes.fromhex("6F00")
    card.power_on()
    assert card.process_apdu(bytes.fromhex(SELECT_SSSE))[0] == 0x61
    card.power_off()
    assert card.process_apdu(bytes.fromhex(SELECT_SSSE)) == bytes.fromhex("6F00")


def test_smartcard_protocol() -> None:
    card = make_card()
    assert isinstance(card, SmartCard)
    assert card.reset() == card.atr == card.power_on()


# --- persistence ---------------------------------------------------------------------------------


def _modified_card() -> SSCard:
    card = make_card("blank2", serial=7)
    card.power_on()
    tx(card, SELECT_SSSE)
    assert ext_auth(card, 0x04, KeyUsage.UK) == 0x9000
    ok(card, "00DC0830140812" + b"11010519491231002X".hex())
    ok(card, "00A4020002EF08")
    ok(card, "00D6010003ABCDEF")
    ok(card, "805E0100071234 56FF654321".replace(" ", ""))
    assert sw_of(card, "0020000003111111") == 0x63C5
    assert ext_auth(card, 0x0A, KeyUsage.UK) == 0x63C2  # wrong key: RK counter 2
    return card


def test_json_round_trip() -> None:
    card = _modified_card()
    again = SSCard.from_json(card.to_json())
    assert again.to_json() == card.to_json()
    assert again.atr == card.atr and again.info() == card.info()
    assert not again.powered
    again.power_on()
    tx(again, SELECT_SSSE)
    assert ok(again, "00B2013414")[2:] == b"11010519491231002X"
    assert sw_of(again, "0020000003111111") == 0x63C4  # counter kept
    ok(again, "0020000003654321")  # changed PIN kept
    assert ext_auth(again, 0x0A, KeyUsage.UK) == 0x63C1  # key counter kept
    assert ext_auth(again, 0x04, KeyUsage.UK) == 0x9000  # keys kept
    ok(again, "00A4020002EF08")
    assert ext_auth(again, 0x0A, KeyUsage.RK) == 0x9000
    assert ok(again, "00B0010003") == bytes.fromhex("ABCDEF")


def test_save_and_load(tmp_path: Path) -> None:
    card = _modified_card()
    path = tmp_path / "card.json"
    card.save(path)
    loaded = SSCard.load(path)
    assert loaded.to_json() == card.to_json()


def test_from_json_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        SSCard.from_json('{"format": "something else"}')
    text = make_card().to_json().replace('"3F00/SSSE/EF07"', '"3F00/SSSE/EF77"')
    with pytest.raises(ValueError):
        SSCard.from_json(text)


def test_make_card_rejects_unknown() -> None:
    with pytest.raises(ValueError):
        make_card("blank9")
    with pytest.raises(TypeError):
        make_card(colour="red")
