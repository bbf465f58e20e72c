"""The shared key scheme (personalization/keys/scheme.py): cipher vectors and self-consistency."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cardstation.personalization.keys import scheme
from cardstation.personalization.keys.scheme import TEST_MASTER_KEYS, Alg, KeyUsage

ATR = bytes.fromhex("3B6D000000814353300141070030000001")
R8 = bytes.fromhex("1122334455667788")


def test_sm4_gbt32907_example() -> None:
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    assert scheme.ecb_encrypt(Alg.SM4, key, key).hex().upper() == (
        "681EDF34D206965E86B3E94F536E4246"
    )
    assert (
        scheme.ecb_decrypt(Alg.SM4, key, bytes.fromhex("681EDF34D206965E86B3E94F536E4246")) == key
    )


def test_3des_degenerates_to_des_fips81_vector() -> None:
    # K1 = K2: 3DES EDE equals single DES; FIPS 81 "Now is t" under 0123456789ABCDEF.
    key = bytes.fromhex("0123456789ABCDEF0123456789ABCDEF")
    assert scheme.ecb_encrypt(Alg.TDES, key, b"Now is t").hex().upper() == "3FA40E8A984D4815"


def test_block_sizes_and_bad_alg() -> None:
    assert scheme.block_size(Alg.TDES) == 8
    assert scheme.block_size(Alg.SM4) == 16
    with pytest.raises(ValueError):
        scheme.block_size(0x02)  # SSF33 is not implemented


def test_iso9797_m2_padding() -> None:
    assert scheme.pad_iso9797_m2(bytes.fromhex("8424000004"), 8).hex().upper() == (
        "8424000004800000"
    )
    assert len(scheme.pad_iso9797_m2(bytes(8), 8)) == 16
    assert scheme.pad_iso9797_m2(bytes.fromhex("8424000004"), 16).hex().upper() == (
        "8424000004800000" + "00" * 8
    )


def test_diversification_data_matches_psam_layout() -> None:
    # §8.2: GetHexFromChs("330300") + "7378" = 3333303330307378
    assert scheme.city_factor("330300").hex().upper() == "3333303330307378"
    data = scheme.diversification_data(ATR, "330300", level=2)
    assert data == ATR[-8:] + bytes.fromhex("3333303330307378")
    assert len(scheme.diversification_data(ATR, "330300", level=1)) == 8
    level3 = scheme.diversification_data(ATR, "330300", level=3)
    assert level3[16:] == b"330000sh"


@pytest.mark.parametrize("alg", [Alg.TDES, Alg.SM4])
def test_psam_style_derivation_equals_card_key(alg: Alg) -> None:
    master = TEST_MASTER_KEYS[KeyUsage.UK]
    data = scheme.diversification_data(ATR, "410700")
    assert scheme.derive_key_from_data(alg, master, data) == scheme.derive_card_key(
        alg, master, ATR, "410700"
    )
    assert len(scheme.derive_card_key(alg, master, ATR, "410700")) == 16


@pytest.mark.parametrize("alg", [Alg.TDES, Alg.SM4])
def test_external_auth_roundtrip(alg: Alg) -> None:
    master = TEST_MASTER_KEYS[KeyUsage.UK]
    card_key = scheme.derive_card_key(alg, master, ATR, "410700")
    data = scheme.compute_external_auth(alg, master, ATR, "410700", R8)
    assert len(data) == 16
    assert scheme.check_external_auth(alg, card_key, R8, data)
    # other challenge, other city, other key: rejected
    assert not scheme.check_external_auth(alg, card_key, bytes(8), data)
    other_city = scheme.compute_external_auth(alg, master, ATR, "410800", R8)
    assert not scheme.check_external_auth(alg, card_key, R8, other_city)
    wrong_key = scheme.compute_external_auth(alg, TEST_MASTER_KEYS[KeyUsage.RK], ATR, "410700", R8)
    assert not scheme.check_external_auth(alg, card_key, R8, wrong_key)


def test_external_auth_shapes() -> None:
    x8 = bytes.fromhex("0102030405060708")
    tdes = scheme.compute_external_auth(
        Alg.TDES, TEST_MASTER_KEYS[KeyUsage.UK], ATR, "410700", R8, terminal_random=x8
    )
    assert tdes[8:] == x8  # C8 || X8 (S7 uses a constant X8)
    default = scheme.compute_external_auth(
        Alg.TDES, TEST_MASTER_KEYS[KeyUsage.UK], ATR, "410700", R8
    )
    assert default[8:] == R8  # X8 = R8 (S6)
    sm4 = scheme.compute_external_auth(Alg.SM4, TEST_MASTER_KEYS[KeyUsage.UK], ATR, "410700", R8)
    assert R8 not in sm4  # 16-byte cryptogram, no plaintext


@pytest.mark.parametrize(("alg", "length"), [(Alg.TDES, 8), (Alg.SM4, 16)])
def test_internal_auth_lengths(alg: Alg, length: int) -> None:
    out = scheme.internal_auth_expected(alg, TEST_MASTER_KEYS[KeyUsage.INT], ATR, "410700", R8 * 2)
    assert len(out) == length


@pytest.mark.parametrize("alg", [Alg.TDES, Alg.SM4])
def test_unblock_mac_is_4_bytes_and_challenge_bound(alg: Alg) -> None:
    stk = TEST_MASTER_KEYS[KeyUsage.STK]
    mac = scheme.compute_unblock_mac(alg, stk, ATR, "410700", R8)
    assert len(mac) == 4
    assert mac != scheme.compute_unblock_mac(alg, stk, ATR, "410700", bytes(8))


def test_tdes_unblock_mac_equals_psam_mac_mode_input() -> None:
    # S7: PSAM MAC input is IV(8 x 00) || 8424000004 800000, first 4 bytes of the result.
    card_key = scheme.derive_card_key(Alg.TDES, TEST_MASTER_KEYS[KeyUsage.STK], ATR, "410700")
    sk = scheme.derive_session_key(Alg.TDES, card_key, R8)
    full = scheme.cbc_mac(Alg.TDES, sk, bytes.fromhex("8424000004800000"), iv=bytes(8))
    assert scheme.unblock_mac(Alg.TDES, card_key, R8) == full[:4]


def test_card_identification_code_layout() -> None:
    serial = bytes.fromhex("30000001")
    cid = scheme.compute_card_identification_code(
        Alg.SM4, TEST_MASTER_KEYS[KeyUsage.AUTH_CODE], "410700", serial
    )
    assert len(cid) == 16
    assert cid[:8] == bytes.fromhex("410700D156000005")
    assert cid[8:12] == serial
    assert scheme.city_of(cid) == "410700"


def test_scheme_docstring_and_isolation() -> None:
    assert "NOT the ministry" in (scheme.__doc__ or "")
    # the shared scheme must not pull in the simulators
    code = (
        "import sys, cardstation.personalization.keys.scheme as s; "
        "print(any(m.startswith('cardstation.simulators') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
