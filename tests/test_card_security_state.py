"""The station's belief about the card's security state, from the commands on the wire
(ssc-chip.md section 13: a presented key holds until the SSSE is selected again; selecting
outside the SSSE clears it). APDU bytes: ISO 7816-4 SELECT A4, EXTERNAL AUTHENTICATE 82."""

from __future__ import annotations

from cardstation.drivers.pcsc.cardfiles import DEBIT_AID, SSSE_NAME
from cardstation.drivers.pcsc.security_state import SecurityState

OK, DF_OK, REFUSED = b"\x90\x00", b"\x61\x1b", b"\x63\xc2"
SELECT_SSSE = bytes([0x00, 0xA4, 0x04, 0x00, len(SSSE_NAME)]) + SSSE_NAME
SELECT_BANK = bytes([0x00, 0xA4, 0x04, 0x00, len(DEBIT_AID)]) + DEBIT_AID
SELECT_EF = bytes.fromhex("00A4020002EF05")
SELECT_BY_FID = bytes.fromhex("00A40000023F00")


def auth(key_id: int) -> bytes:
    return bytes([0x00, 0x82, 0x00, key_id, 0x10]) + bytes(16)


def test_nothing_is_assumed_of_a_new_connection() -> None:
    state = SecurityState(SSSE_NAME)
    assert not state.in_ssse and not state.keys


def test_keys_accumulate_in_the_ssse_and_survive_ef_selection() -> None:
    state = SecurityState(SSSE_NAME)
    state.observe(SELECT_SSSE, DF_OK)
    state.observe(auth(0x0A), OK)
    state.observe(auth(0x04), OK)
    state.observe(SELECT_EF, OK)
    assert state.in_ssse and state.keys == {0x0A, 0x04}


def test_reselecting_the_ssse_clears_its_keys() -> None:
    state = SecurityState(SSSE_NAME)
    state.observe(SELECT_SSSE, DF_OK)
    state.observe(auth(0x04), OK)
    state.observe(SELECT_SSSE, DF_OK)
    assert state.in_ssse and not state.keys


def test_another_application_or_a_select_by_fid_leaves_the_ssse() -> None:
    for leaving in (SELECT_BANK, SELECT_BY_FID):
        state = SecurityState(SSSE_NAME)
        state.observe(SELECT_SSSE, DF_OK)
        state.observe(auth(0x04), OK)
        state.observe(leaving, DF_OK)
        assert not state.in_ssse and not state.keys


def test_a_refused_authentication_or_select_changes_no_belief_for_the_better() -> None:
    state = SecurityState(SSSE_NAME)
    state.observe(SELECT_SSSE, DF_OK)
    state.observe(auth(0x04), OK)
    state.observe(auth(0x04), REFUSED)  # a wrong cryptogram: the card may have dropped it
    assert 0x04 not in state.keys
    state.observe(SELECT_BANK, b"\x6a\x82")  # not found: still in the SSSE
    assert state.in_ssse
