"""Card OS: GET CHALLENGE, EXTERNAL/INTERNAL AUTHENTICATE, security state, PIN (§7, §8)."""

from __future__ import annotations

import pytest

from cardstation.personalization.keys import scheme
from cardstation.personalization.keys.scheme import TEST_MASTER_KEYS, KeyUsage
from cardstation.simulators.card import SW, SSCard, make_card
from tests.support.card_os import SELECT_SSSE, ext_auth, ok, sw_of, tx


def auth_data(card: SSCard, usage: KeyUsage, challenge: bytes) -> str:
    return scheme.compute_external_auth(
        card.alg, TEST_MASTER_KEYS[usage], card.atr, card.city, challenge
    ).hex()


@pytest.fixture(params=["blank2", "blank3"])
def card(request: pytest.FixtureRequest) -> SSCard:
    c = make_card(request.param)
    c.power_on()
    tx(c, SELECT_SSSE)
    return c


# --- GET CHALLENGE -------------------------------------------------------------------------------


@pytest.mark.parametrize("le", [4, 8, 16])
def test_get_challenge_lengths(card: SSCard, le: int) -> None:
    a = ok(card, f"00840000{le:02X}")
    b = ok(card, f"00840000{le:02X}")
    assert len(a) == len(b) == le and a != b


def test_get_challenge_errors(card: SSCard) -> None:
    assert sw_of(card, "0084000006") == SW.WRONG_LENGTH
    assert sw_of(card, "00840000") == SW.WRONG_LENGTH
    assert sw_of(card, "008400000100") == SW.WRONG_LENGTH
    assert sw_of(card, "0084000108") == SW.WRONG_P1P2


# --- EXTERNAL AUTHENTICATE -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kid", "usage"),
    [(0x04, KeyUsage.UK), (0x0A, KeyUsage.RK), (0x0D, KeyUsage.UK_EF0D), (0x06, KeyUsage.PUK)],
)
def test_ext_auth_each_key(card: SSCard, kid: int, usage: KeyUsage) -> None:
    assert ext_auth(card, kid, usage) == 0x9000
    assert kid in card.security.keys


def test_ext_auth_s7_constant_x8_on_3des() -> None:
    c = make_card("blank2")
    c.power_on()
    challenge = ok(c, "0084000008")
    data = scheme.compute_external_auth(
        c.alg,
        TEST_MASTER_KEYS[KeyUsage.UK],
        c.atr,
        c.city,
        challenge,
        terminal_random=bytes.fromhex("0102030405060708"),
    )
    assert sw_of(c, "0082000410" + data.hex()) == 0x9000


def test_ext_auth_three_tries_then_blocked(card: SSCard) -> None:
    for left in (2, 1, 0):
        assert ext_auth(card, 0x04, KeyUsage.RK) == 0x63C0 | left  # wrong master key
    assert ext_auth(card, 0x04, KeyUsage.UK) == SW.AUTH_BLOCKED  # even the right one
    assert ext_auth(card, 0x0A, KeyUsage.RK) == 0x9000  # other keys unaffected
    card.power_off()
    card.power_on()
    assert ext_auth(card, 0x04, KeyUsage.UK) == SW.AUTH_BLOCKED  # survives power cycle


def test_ext_auth_success_resets_counter(card: SSCard) -> None:
    assert ext_auth(card, 0x04, KeyUsage.RK) == 0x63C2
    assert ext_auth(card, 0x04, KeyUsage.RK) == 0x63C1
    assert ext_auth(card, 0x04, KeyUsage.UK) == 0x9000
    assert ext_auth(card, 0x04, KeyUsage.RK) == 0x63C2


def test_ext_auth_needs_a_fresh_challenge(card: SSCard) -> None:
    data = auth_data(card, KeyUsage.UK, bytes(8))
    assert sw_of(card, "0082000410" + data) == SW.REF_DATA_INVALID  # no challenge yet
    challenge = ok(card, "0084000008")
    good = auth_data(card, KeyUsage.UK, challenge)
    assert sw_of(card, "0082000410" + good) == 0x9000
    assert sw_of(card, "0082000410" + good) == SW.REF_DATA_INVALID  # single use (replay)
    ok(card, "0084000004")
    assert sw_of(card, "0082000410" + good) == SW.REF_DATA_INVALID  # 4-byte challenge
    old = ok(card, "0084000008")
    ok(card, "0084000008")  # a newer challenge replaces the old one
    assert sw_of(card, "0082000410" + auth_data(card, KeyUsage.UK, old)) == 0x63C2


def test_ext_auth_errors(card: SSCard) -> None:
    ok(card, "0084000008")
    assert sw_of(card, "0082000510" + "00" * 16) == SW.KEY_NOT_FOUND
    assert sw_of(card, "0082010410" + "00" * 16) == SW.WRONG_P1P2
    assert sw_of(card, "0082000408" + "00" * 8) == SW.WRONG_LENGTH
    assert sw_of(card, "00820004") == SW.WRONG_LENGTH


def test_security_state_cleared_on_reselect_and_power(card: SSCard) -> None:
    assert ext_auth(card, 0x04, KeyUsage.UK) == 0x9000
    ok(card, "00A4020002EF05")  # EF select keeps the state
    assert card.security.keys == {0x04}
    tx(card, "00A4000002DF01")  # DF01 below the SSSE keeps it
    assert card.security.keys == {0x04}
    tx(card, SELECT_SSSE)  # reselect SSSE clears it
    assert card.security.keys == set()
    assert sw_of(card, "00DC0528060504" + "20240101") == SW.SECURITY_NOT_SATISFIED
    assert ext_auth(card, 0x04, KeyUsage.UK) == 0x9000
    ok(card, "00DC0528060504" + "20240101")
    card.power_off()
    card.power_on()
    tx(card, SELECT_SSSE)
    assert sw_of(card, "00DC0528060504" + "20240101") == SW.SECURITY_NOT_SATISFIED
    assert ext_auth(card, 0x04, KeyUsage.UK) == 0x9000
    card.reset()
    assert card.security.keys == set()
    tx(card, SELECT_SSSE)
    assert ext_auth(card, 0x04, KeyUsage.UK) == 0x9000
    tx(card, "00A40000023F00")  # leaving the SSSE clears it too
    assert card.security.keys == set()


def test_gen3_rk_cleared_on_reselect() -> None:
    c = make_card("blank3")
    c.power_on()
    tx(c, SELECT_SSSE)
    assert ext_auth(c, 0x0A, KeyUsage.RK) == 0x9000
    assert ok(c, "00B2013414")[0] == 0x08
    tx(c, SELECT_SSSE)
    assert sw_of(c, "00B2013414") == SW.SECURITY_NOT_SATISFIED


# --- INTERNAL AUTHENTICATE -----------------------------------------------------------------------


def test_internal_authenticate(card: SSCard) -> None:
    data = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    _, sw = tx(card, "0088000010" + data.hex())
    expected = scheme.internal_auth_expected(
        card.alg, TEST_MASTER_KEYS[KeyUsage.INT], card.atr, card.city, data
    )
    assert sw == 0x6100 | len(expected)
    assert len(expected) == (8 if card.generation == 2 else 16)
    assert ok(card, f"00C00000{len(expected):02X}") == expected
    assert sw_of(card, "0088000008" + "00" * 8) == SW.WRONG_LENGTH
    assert sw_of(card, "0088000110" + data.hex()) == SW.WRONG_P1P2


# --- PIN (§7) ------------------------------------------------------------------------------------


def test_verify_initial_pin(card: SSCard) -> None:
    assert sw_of(card, "00200000") == 0x63C6  # status query: 6 tries
    ok(card, "0020000003123456")
    assert card.security.pin_verified
    assert sw_of(card, "00200000") == 0x9000


def test_pin_countdown_lock_and_unblock(card: SSCard) -> None:
    for left in range(5, -1, -1):
        assert sw_of(card, "0020000003654321") == 0x63C0 | left
    assert sw_of(card, "0020000003123456") == SW.AUTH_BLOCKED
    assert sw_of(card, "00200000") == SW.AUTH_BLOCKED
    assert sw_of(card, "805E0100071234 56FF654321".replace(" ", "")) == SW.AUTH_BLOCKED
    challenge = ok(card, "0084000008")
    mac = scheme.compute_unblock_mac(
        card.alg, TEST_MASTER_KEYS[KeyUsage.STK], card.atr, card.city, challenge
    )
    ok(card, "8424000004" + mac.hex())
    assert sw_of(card, "00200000") == 0x63C6  # counter reset
    ok(card, "0020000003123456")  # PIN unchanged


def test_correct_pin_resets_counter(card: SSCard) -> None:
    assert sw_of(card, "0020000003000000") == 0x63C5
    ok(card, "0020000003123456")
    assert sw_of(card, "0020000003000000") == 0x63C5


def test_unblock_errors(card: SSCard) -> None:
    assert sw_of(card, "8424000004" + "00" * 4) == SW.REF_DATA_INVALID  # no challenge
    ok(card, "0084000008")
    assert sw_of(card, "8424000004" + "00" * 4) == SW.SM_DATA_INCORRECT
    challenge = ok(card, "0084000008")
    mac = scheme.compute_unblock_mac(
        card.alg, TEST_MASTER_KEYS[KeyUsage.STK], card.atr, card.city, challenge
    )
    ok(card, "8424000004" + mac.hex())
    assert sw_of(card, "8424000004" + mac.hex()) == SW.REF_DATA_INVALID  # challenge used
    assert sw_of(card, "0024000004" + mac.hex()) == SW.CLA_NOT_SUPPORTED
    assert sw_of(card, "8424000003" + mac.hex()[:6]) == SW.WRONG_LENGTH
    assert sw_of(card, "8424010004" + mac.hex()) == SW.WRONG_P1P2


def test_verify_formats(card: SSCard) -> None:
    assert sw_of(card, "002000000112") == SW.WRONG_LENGTH  # 1 byte: < 4 digits
    assert sw_of(card, "0020000009" + "11" * 9) == SW.WRONG_LENGTH  # > 16 digits
    assert sw_of(card, "00200000031234A6") == SW.WRONG_DATA  # not BCD
    assert sw_of(card, "0020000003123FFF") == SW.WRONG_DATA
    assert sw_of(card, "0020000102123456") == SW.WRONG_P1P2
    assert sw_of(card, "00200000") == 0x63C6  # none of these counted


def test_change_pin(card: SSCard) -> None:
    ok(card, "805E010007123456FF654321")
    assert sw_of(card, "0020000003123456") == 0x63C5
    ok(card, "0020000003654321")
    # odd length: 5 digits, F-padded
    ok(card, "805E010007654321FF12345F")
    ok(card, "002000000312345F")
    # 16 digits
    ok(card, "805E01000C12345FFF" + "1234567890123456")
    ok(card, "00200000081234567890123456")


def test_change_pin_rules(card: SSCard) -> None:
    assert sw_of(card, "805E010007123456FF123456") == SW.WRONG_DATA  # not the initial PIN
    assert sw_of(card, "00200000") == 0x63C6  # and no try lost
    assert sw_of(card, "805E010007111111FF654321") == 0x63C5  # wrong old PIN counts
    assert sw_of(card, "805E010006123456654321") == SW.WRONG_DATA  # no FF separator
    assert sw_of(card, "805E010007123456FF6543") == SW.WRONG_LENGTH
    assert sw_of(card, "805E0200051234FF1234") == SW.WRONG_P1P2
    assert sw_of(card, "005E010007123456FF654321") == SW.CLA_NOT_SUPPORTED
    ok(card, "0020000003123456")  # still the initial PIN


def test_pin_reload_after_puk_auth(card: SSCard) -> None:
    for _ in range(6):
        tx(card, "0020000003000000")
    assert sw_of(card, "0020000003123456") == SW.AUTH_BLOCKED
    assert sw_of(card, "805E000003888888") == SW.SECURITY_NOT_SATISFIED
    assert ext_auth(card, 0x06, KeyUsage.PUK) == 0x9000
    ok(card, "805E000003888888")  # proposal: 80 5E 00 00 Lc <new BCD>
    ok(card, "0020000003888888")
    assert sw_of(card, "00200000") == 0x9000
    tx(card, SELECT_SSSE)
    assert sw_of(card, "805E000003777777") == SW.SECURITY_NOT_SATISFIED  # state cleared


def test_pin_state_in_json() -> None:
    c = make_card("blank3", pin="2468")
    c.power_on()
    assert sw_of(c, "0020000003123456") == 0x63C5
    again = SSCard.from_json(c.to_json())
    again.power_on()
    assert sw_of(again, "00200000") == 0x63C5
    ok(again, "00200000022468")
