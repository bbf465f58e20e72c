"""APDUs to the simulated card OS: send one and split the status word, expect 9000, fetch a
61xx response, external authentication with the test master keys."""

from __future__ import annotations

from cardstation.personalization.keys import scheme
from cardstation.personalization.keys.scheme import TEST_MASTER_KEYS, KeyUsage
from cardstation.simulators.card import SmartCard, SSCard

SSSE = "7378312E73682EC9E7BBE1B1A3D5CF"
SELECT_SSSE = "00A404000F" + SSSE


def tx(card: SmartCard, apdu: str) -> tuple[bytes, int]:
    resp = card.process_apdu(bytes.fromhex(apdu.replace(" ", "")))
    assert isinstance(resp, bytes) and len(resp) >= 2
    return resp[:-2], int.from_bytes(resp[-2:], "big")


def ok(card: SmartCard, apdu: str) -> bytes:
    data, sw = tx(card, apdu)
    assert sw == 0x9000, f"{apdu}: {sw:04X}"
    return data


def sw_of(card: SmartCard, apdu: str) -> int:
    return tx(card, apdu)[1]


def with_response(card: SmartCard, apdu: str) -> bytes:
    data, sw = tx(card, apdu)
    assert sw >> 8 == 0x61 and not data, f"{apdu}: {sw:04X}"
    return ok(card, f"00C00000{sw & 0xFF:02X}")


def ext_auth(card: SSCard, kid: int, usage: KeyUsage) -> int:
    challenge = ok(card, "0084000008")
    data = scheme.compute_external_auth(
        card.alg, TEST_MASTER_KEYS[usage], card.atr, card.city, challenge
    )
    return sw_of(card, f"008200{kid:02X}10" + data.hex())
