"""PSAM simulator and the PSAM-driven flows of ssc-chip.md §8.2 / §13 against the card."""

from __future__ import annotations

import pytest

from cardstation.personalization.keys import scheme
from cardstation.personalization.keys.scheme import TEST_MASTER_KEYS, Alg, KeyUsage
from cardstation.simulators.card import SW, Psam, SmartCard, SSCard, make_card
from tests.support.card_os import SELECT_SSSE, ok, sw_of, tx, with_response

SELECT_PSAM = "00A4040006D15600000590"


@pytest.fixture
def psam() -> Psam:
    p = Psam()
    p.power_on()
    return p


def psam_ext_auth(card: SSCard, psam: Psam, key_ref: str, kid: int) -> int:
    """S6: challenge, BFDE <key> 18 ATR8||city||sx||R8, 80FA, GET RESPONSE, 0082."""
    r8 = ok(card, "0084000008")
    div = card.atr[-8:] + card.city.encode("ascii") + b"sx"
    ok(psam, f"BFDE{key_ref}18" + (div + r8).hex())
    if psam.alg == Alg.TDES:
        data, sw = tx(psam, "80FA000008" + r8.hex())
        assert sw == 0x6108 and not data
        c8 = ok(psam, "00C0000008")
        field = c8 + r8
    else:  # SM4 variant: R8 || X8 encrypted as one 16-byte block
        field = with_response(psam, "80FA000010" + (r8 + r8).hex())
    return sw_of(card, f"008200{kid:02X}10" + field.hex())


def test_psam_select_and_terminal_number(psam: Psam) -> None:
    fci = with_response(psam, SELECT_PSAM)
    assert bytes.fromhex("D15600000590") in fci
    assert ok(psam, "00B0960006") == bytes.fromhex("410700000001")  # SFI 16
    ok(psam, "00A40000020016")
    assert ok(psam, "00B0000006") == bytes.fromhex("410700000001")
    assert ok(psam, "00B0000000") == bytes.fromhex("410700000001")
    assert sw_of(psam, "00B0000008") == 0x6C06
    assert len(ok(psam, "00B095000A")) == 10  # EF0015: PSAM serial
    with_response(psam, "00A40000023F00")
    with_response(psam, "00A4000002DF01")  # app by FID [C S7]


def test_psam_terminal_number_override() -> None:
    p = Psam(terminal_number="420100000001")
    p.power_on()
    assert ok(p, "00B0960006").hex() == "420100000001"
    with pytest.raises(ValueError):
        Psam(terminal_number="4201")


def test_psam_errors(psam: Psam) -> None:
    r8 = "1122334455667788"
    div = "0102030405060708" + "3431303730307378"
    assert sw_of(psam, "BFDE481218" + div + r8) == SW.CONDITIONS_NOT_SATISFIED  # no app
    with_response(psam, SELECT_PSAM)
    assert sw_of(psam, "80FA000008" + r8) == SW.CONDITIONS_NOT_SATISFIED  # no BFDE yet
    assert sw_of(psam, "BFDE999918" + div + r8) == SW.KEY_NOT_FOUND
    assert sw_of(psam, "BFDE481211" + div + r8 + "00") == SW.WRONG_LENGTH
    assert sw_of(psam, "80DE481218" + div + r8) == SW.CLA_NOT_SUPPORTED
    ok(psam, "BFDE481218" + div + r8)
    assert sw_of(psam, "80FA000007" + r8[:14]) == SW.WRONG_LENGTH
    assert sw_of(psam, "80FA010008" + r8) == SW.WRONG_P1P2
    assert sw_of(psam, "80FA050008" + r8) == SW.WRONG_LENGTH  # MAC mode needs IV + data
    assert sw_of(psam, "00FA000008" + r8) == SW.CLA_NOT_SUPPORTED
    assert sw_of(psam, "00A4040006D15600000591") == SW.FILE_NOT_FOUND
    assert sw_of(psam, "0020000003123456") == SW.INS_NOT_SUPPORTED
    assert sw_of(psam, "") == SW.WRONG_LENGTH


def test_psam_levels_match_scheme(psam: Psam) -> None:
    with_response(psam, SELECT_PSAM)
    atr = make_card().atr
    r8 = bytes.fromhex("8877665544332211")
    for level, lc in ((1, "10"), (2, "18"), (3, "20")):
        data = scheme.diversification_data(atr, "410700", level)
        ok(psam, f"BFDE4812{lc}" + (data + r8).hex())
        c8 = with_response(psam, "80FA000008" + r8.hex())
        card_key = scheme.derive_card_key(
            Alg.TDES, TEST_MASTER_KEYS[KeyUsage.UK], atr, "410700", level
        )
        sk = scheme.derive_session_key(Alg.TDES, card_key, r8)
        assert c8 == scheme.ecb_encrypt(Alg.TDES, sk, r8)


def test_s6_personalization_flow_with_psam(psam: Psam) -> None:
    """§13: the 2.0 profile replayed exactly as S6 does, the PSAM computing C8."""
    card = make_card("blank2")
    card.power_on()
    with_response(card, SELECT_SSSE)
    ok(card, "00A4000002EF05")
    cid = ok(card, "00B2010412")[2:]
    assert cid == card.card_identification_code
    with_response(psam, SELECT_PSAM)
    assert psam_ext_auth(card, psam, "4812", 0x04) == 0x9000
    ok(card, "00DC0830140812" + b"11010519491231002X".hex())
    ok(card, "00DC0A30030A01" + "32")
    ok(card, "00DC0528060504" + "20240101")
    # EF0D needs its own key: new challenge, BFDE4813, 0082000D
    assert sw_of(card, "00DCEA680EEA0C" + b"410700000001".hex()) == SW.SECURITY_NOT_SATISFIED
    assert psam_ext_auth(card, psam, "4813", 0x0D) == 0x9000
    ok(card, "00DCEA680EEA0C" + b"410700000001".hex())
    ok(card, "00DCEB6805EB03" + "410700")
    # read back
    assert ok(card, "00B2013414")[2:] == b"11010519491231002X"
    assert ok(card, "00B2EB6805") == bytes.fromhex("EB03410700")


def test_psam_wrong_key_counts_down(psam: Psam) -> None:
    card = make_card("blank2")
    card.power_on()
    with_response(card, SELECT_SSSE)
    with_response(psam, SELECT_PSAM)
    assert psam_ext_auth(card, psam, "4813", 0x04) == 0x63C2  # EF0D key used for UK


def test_sm4_psam_with_3rd_gen_card() -> None:
    psam = Psam(alg=Alg.SM4)
    psam.power_on()
    card = make_card("blank3")
    card.power_on()
    with_response(card, SELECT_SSSE)
    with_response(psam, SELECT_PSAM)
    assert psam_ext_auth(card, psam, "4811", 0x0A) == 0x9000  # RK (proposed 4811)
    assert psam_ext_auth(card, psam, "4812", 0x04) == 0x9000
    ok(card, "00DC0830140812" + b"11010519491231002X".hex())
    assert ok(card, "00B2013414")[2:] == b"11010519491231002X"


@pytest.mark.parametrize(("profile", "alg"), [("blank2", Alg.TDES), ("blank3", Alg.SM4)])
def test_unblock_via_psam_mac(profile: str, alg: Alg) -> None:
    """S7: BFDE4809 ... R8, 80FA05 IV || padded 8424000004, first 4 bytes -> 8424."""
    psam = Psam(alg=alg)
    psam.power_on()
    card = make_card(profile)
    card.power_on()
    with_response(card, SELECT_SSSE)
    for _ in range(6):
        tx(card, "0020000003000000")
    assert sw_of(card, "0020000003123456") == SW.AUTH_BLOCKED
    with_response(psam, SELECT_PSAM)
    r8 = ok(card, "0084000008")
    div = card.atr[-8:] + card.city.encode("ascii") + b"sx"
    ok(psam, "BFDE480918" + (div + r8).hex())
    bs = scheme.block_size(alg)
    block = scheme.pad_iso9797_m2(bytes.fromhex("8424000004"), bs)
    mac_in = bytes(bs) + block
    full = with_response(psam, f"80FA0500{len(mac_in):02X}" + mac_in.hex())
    assert len(full) == bs
    if alg == Alg.TDES:
        assert mac_in.hex().upper() == "0000000000000000" + "8424000004800000"  # S7 verbatim
    ok(card, "8424000004" + full[:4].hex())
    ok(card, "0020000003123456")


def test_psam_power_cycle_drops_session_key(psam: Psam) -> None:
    with_response(psam, SELECT_PSAM)
    ok(psam, "BFDE481218" + "00" * 24)
    psam.power_off()
    psam.power_on()
    with_response(psam, SELECT_PSAM)
    assert sw_of(psam, "80FA000008" + "00" * 8) == SW.CONDITIONS_NOT_SATISFIED


def test_psam_json_round_trip() -> None:
    p = Psam(alg=Alg.SM4, terminal_number="410700000009")
    again = Psam.from_json(p.to_json())
    assert again.atr == p.atr and again.alg == p.alg
    again.power_on()
    assert ok(again, "00B0960006").hex() == "410700000009"
    assert isinstance(again, SmartCard)
