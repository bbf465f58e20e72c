"""Card key scheme shared by the card/PSAM simulators and the station's software key service.

**This is NOT the ministry's key-derivation algorithm.** The real PSAM/HSM algorithms that turn
an issuer master key into a card key and a session cryptogram are secret (ssc-chip.md §8.2,
§14 item 2); only the *shapes* of the exchanges are public. This module is a self-consistent
stand-in, isolated in one place, so that the simulated card, the simulated PSAM and the
station's software key service agree with each other. A real station talks to a real PSAM or
HSM, which the card (a real one) checks with the real algorithm; nothing here is used then.

What is confirmed by the reference (ssc-chip.md) and what is proposed here:

- [C §2, §8.2] the card diversifier is the last 8 bytes of the ATR (``ATR8``); the 2-factor
  diversification data is ``ATR8 || ASCII(city6) || "sx"`` where city6 = the first 6 hex digits
  of the 卡识别码; 1-factor is ``ATR8``; 3-factor adds ``ASCII(city6[0:2]) "0000" "sh"``. The card
  challenge R8 (``0084000008``) is appended as the session/process factor.
- [C §8.2] the external-authentication data field is 16 bytes: ``C8 || X8`` with C8 computed by
  the PSAM from X8 (X8 = the card challenge in one source, a constant in another).
- [C §8.2, §13] the UNBLOCK MAC is the first 4 bytes of a CBC-MAC with IV 0 over the command
  header ``84 24 00 00 04`` padded by ISO/IEC 9797-1 method 2.
- [I §3.1] algorithm flag 01 = 3DES (8-byte block), 03 = SM4 (16-byte block).
- [P] everything below about *how* keys are combined:

  * ``diversify(K, F8)``: 3DES: ``E(K, F8) || E(K, ~F8)``; SM4: ``E(K, F8 || ~F8)``
    (PBOC-style; 16-byte keys in and out).
  * card key: diversify the master key by the factors from the outermost (province, city) to
    the innermost (ATR8); cards are personalised with the 2-factor key.
  * session key ``SK = diversify(card key, R8)``.
  * external auth, 3DES (alg 01): ``C8 || X8`` with ``C8 = E(SK, X8)``; X8 defaults to R8.
    SM4 (alg 03, the 3rd-generation 16-byte variant): ``E_SM4(SK, R8 || X8)``; the card decrypts
    and checks the first half against its challenge.
  * internal auth of 16 bytes D: ``SK = diversify(card INT key, D[0:8])``; 3DES answers
    ``E(SK, D[8:16])`` (8 B), SM4 answers ``E(SK, D)`` (16 B).
  * UNBLOCK MAC key: the session key of the card's STK key and the last challenge.
  * 卡认证码 (last 4 bytes of 卡识别码): first 4 bytes of the CBC-MAC under the issuer AUTH_CODE
    master key of the 12-byte prefix.

Test master keys are in :data:`TEST_MASTER_KEYS`, which is for tests and simulators only.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from cardstation.drivers.crypto import (
    Alg,
    block_size,
    cbc_mac,
    ecb_decrypt,
    ecb_encrypt,
    pad_iso9797_m2,
)


class KeyUsage(StrEnum):
    """What a key is for. Card-side key ids are in :data:`EXT_AUTH_KEY_IDS` [C/I §8.1]."""

    UK = "UK"  # UKSSSE: update EF05/EF06/EF07/EF08 (ext-auth key id 04)
    RK = "RK"  # RKSSSE: read protected items on 3rd-gen cards (ext-auth key id 0A)
    UK_EF0D = "UK_EF0D"  # update the local EF0D (ext-auth key id 0D)
    PUK = "PUK"  # PIN unblock/reload pre-authentication (ext-auth key id 06)
    STK = "STK"  # application maintenance key: MAC of UNBLOCK PIN (84 24)
    INT = "INT"  # internal authentication (00 88) [P]
    AUTH_CODE = "AUTH_CODE"  # issuer key computing the 卡认证码 of the 卡识别码 [P]


#: EXTERNAL AUTHENTICATE P2 (key id) -> key usage [C §8.1 for 04, 0A, 0D, 06; labels I].
EXT_AUTH_KEY_IDS: Final[Mapping[int, KeyUsage]] = {
    0x04: KeyUsage.UK,
    0x0A: KeyUsage.RK,
    0x0D: KeyUsage.UK_EF0D,
    0x06: KeyUsage.PUK,
}

#: PSAM ``BF DE P1 P2`` key selector -> key usage. 4812/4813/4810/4809 are confirmed [C §8.2];
#: 4811 (RK) and 4808 (INT) are proposals [P].
PSAM_KEY_USAGES: Final[Mapping[int, KeyUsage]] = {
    0x4812: KeyUsage.UK,
    0x4813: KeyUsage.UK_EF0D,
    0x4810: KeyUsage.PUK,
    0x4809: KeyUsage.STK,
    0x4811: KeyUsage.RK,
    0x4808: KeyUsage.INT,
}

#: Keys a card holds (diversified from the master keys at manufacture).
CARD_KEY_USAGES: Final[tuple[KeyUsage, ...]] = (
    KeyUsage.UK,
    KeyUsage.RK,
    KeyUsage.UK_EF0D,
    KeyUsage.PUK,
    KeyUsage.STK,
    KeyUsage.INT,
)

# ---------------------------------------------------------------------------------------------
# TEST-ONLY master keys. Published in the source, therefore worthless as secrets: use them only
# in tests and simulators. A real station never holds master keys in software.
TEST_MASTER_KEYS: Final[Mapping[KeyUsage, bytes]] = {
    KeyUsage.UK: bytes.fromhex("11111111111111112222222222222222"),
    KeyUsage.RK: bytes.fromhex("33333333333333334444444444444444"),
    KeyUsage.UK_EF0D: bytes.fromhex("55555555555555556666666666666666"),
    KeyUsage.PUK: bytes.fromhex("77777777777777778888888888888888"),
    KeyUsage.STK: bytes.fromhex("9999999999999999AAAAAAAAAAAAAAAA"),
    KeyUsage.INT: bytes.fromhex("BBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCC"),
    KeyUsage.AUTH_CODE: bytes.fromhex("DDDDDDDDDDDDDDDDEEEEEEEEEEEEEEEE"),
}
# ---------------------------------------------------------------------------------------------

#: Header of UNBLOCK PIN, the data of its MAC [C §7, §8.2].
UNBLOCK_HEADER: Final[bytes] = bytes.fromhex("8424000004")


# --- diversification [P] ---------------------------------------------------------------------


def _invert(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data)


def diversify(alg: int, key: bytes, factor: bytes) -> bytes:
    """Derive a 16-byte child key from ``key`` and an 8-byte factor [P]."""
    if len(factor) != 8:
        raise ValueError("diversification factors are 8 bytes")
    if alg == Alg.TDES:
        return ecb_encrypt(alg, key, factor) + ecb_encrypt(alg, key, _invert(factor))
    return ecb_encrypt(alg, key, factor + _invert(factor))


def atr_diversifier(atr: bytes) -> bytes:
    """ATR8: the last 8 bytes of the ATR [C2 §2]."""
    if len(atr) < 8:
        raise ValueError("ATR shorter than 8 bytes")
    return bytes(atr[-8:])


def city_factor(city6: str) -> bytes:
    """``ASCII(city6) || "sx"`` (e.g. 330300 -> 3333303330307378) [C2 §8.2]."""
    if len(city6) != 6 or not city6.isascii():
        raise ValueError("city code is 6 ASCII characters")
    return city6.encode("ascii") + b"sx"


def province_factor(city6: str) -> bytes:
    """``ASCII(city6[0:2]) || "0000" || "sh"`` (3-factor level) [C §8.2]."""
    return city_factor(city6)[:2] + b"0000sh"


def diversification_data(atr: bytes, city6: str, level: int = 2) -> bytes:
    """The factor data sent to a PSAM before R8: 8, 16 or 24 bytes for levels 1, 2, 3 [C §8.2]."""
    if level == 1:
        return atr_diversifier(atr)
    if level == 2:
        return atr_diversifier(atr) + city_factor(city6)
    if level == 3:
        return atr_diversifier(atr) + city_factor(city6) + province_factor(city6)
    raise ValueError("diversification level is 1, 2 or 3")


def derive_key_from_data(alg: int, master_key: bytes, data: bytes) -> bytes:
    """Diversify by the 8-byte factors of ``data`` (innermost first, as a PSAM receives them),
    applying the outermost factor first [P]."""
    if not data or len(data) % 8:
        raise ValueError("factor data is a non-empty multiple of 8 bytes")
    key = master_key
    for i in range(len(data) - 8, -1, -8):
        key = diversify(alg, key, data[i : i + 8])
    return key


def derive_card_key(alg: int, master_key: bytes, atr: bytes, city6: str, level: int = 2) -> bytes:
    """The key a card holds for one usage (cards are personalised with level 2) [P]."""
    return derive_key_from_data(alg, master_key, diversification_data(atr, city6, level))


def derive_session_key(alg: int, card_key: bytes, challenge: bytes) -> bytes:
    """Session key from the card challenge R8 (first 8 bytes of the challenge) [P]."""
    return diversify(alg, card_key, bytes(challenge[:8]))


# --- cryptograms -----------------------------------------------------------------------------


def external_auth_data(
    alg: int, session_key: bytes, challenge: bytes, terminal_random: bytes | None = None
) -> bytes:
    """The 16-byte EXTERNAL AUTHENTICATE data field from a session key [P, shape C §8.2]."""
    r8 = bytes(challenge[:8])
    x8 = r8 if terminal_random is None else bytes(terminal_random)
    if len(r8) != 8 or len(x8) != 8:
        raise ValueError("challenge and terminal random are 8 bytes")
    if alg == Alg.TDES:
        return ecb_encrypt(alg, session_key, x8) + x8
    return ecb_encrypt(alg, session_key, r8 + x8)


def check_external_auth(alg: int, card_key: bytes, challenge: bytes, data: bytes) -> bool:
    """Card side: is ``data`` (16 B) a valid cryptogram for ``challenge``?"""
    if len(data) != 16 or len(challenge) < 8:
        return False
    sk = derive_session_key(alg, card_key, challenge)
    if alg == Alg.TDES:
        expected = ecb_encrypt(alg, sk, data[8:16])
        return hmac.compare_digest(expected, data[:8])
    plain = ecb_decrypt(alg, sk, data)
    return hmac.compare_digest(plain[:8], bytes(challenge[:8]))


def internal_auth(alg: int, card_key: bytes, data: bytes) -> bytes:
    """Card side INTERNAL AUTHENTICATE answer: 8 B (3DES) or 16 B (SM4) [P, lengths §13]."""
    if len(data) != 16:
        raise ValueError("internal authentication data is 16 bytes")
    sk = diversify(alg, card_key, data[:8])
    if alg == Alg.TDES:
        return ecb_encrypt(alg, sk, data[8:16])
    return ecb_encrypt(alg, sk, data)


def unblock_mac(
    alg: int, stk_card_key: bytes, challenge: bytes, header: bytes = UNBLOCK_HEADER
) -> bytes:
    """First 4 bytes of CBC-MAC(SK_STK, IV 0, pad_M2(header)) [C shape §8.2, key P]."""
    sk = derive_session_key(alg, stk_card_key, challenge)
    return cbc_mac(alg, sk, pad_iso9797_m2(header, block_size(alg)))[:4]


def card_auth_code(alg: int, master_key: bytes, prefix12: bytes) -> bytes:
    """卡认证码: 4 bytes over region(3) || D156000005 || serial(4) [C shape §6, algorithm P]."""
    if len(prefix12) != 12:
        raise ValueError("the 卡识别码 prefix is 12 bytes")
    return cbc_mac(alg, master_key, pad_iso9797_m2(prefix12, block_size(alg)))[:4]


def city_of(card_identification_code: bytes) -> str:
    """city6 = the first 6 hex digits of the 卡识别码 [C2 §8.2]."""
    return bytes(card_identification_code[:3]).hex().upper()


# --- station-side helpers (what the software key service computes) ---------------------------


def compute_external_auth(
    alg: int,
    master_key: bytes,
    atr: bytes,
    city6: str,
    challenge: bytes,
    terminal_random: bytes | None = None,
) -> bytes:
    """The 16-byte data field of ``00 82 00 <kid> 10 <data>`` for a card.

    ``master_key`` is the master of the usage the key id stands for (04 -> UK, 0A -> RK, ...),
    ``city6`` the first 6 hex digits of the card's 卡识别码, ``challenge`` the card's R8.
    """
    card_key = derive_card_key(alg, master_key, atr, city6)
    sk = derive_session_key(alg, card_key, challenge)
    return external_auth_data(alg, sk, challenge, terminal_random)


def compute_unblock_mac(
    alg: int, master_key: bytes, atr: bytes, city6: str, challenge: bytes
) -> bytes:
    """The 4-byte MAC of ``84 24 00 00 04 <MAC>`` (``master_key`` = the STK master key)."""
    card_key = derive_card_key(alg, master_key, atr, city6)
    return unblock_mac(alg, card_key, challenge)


def internal_auth_expected(
    alg: int, master_key: bytes, atr: bytes, city6: str, data: bytes
) -> bytes:
    """What a genuine card answers to ``00 88 00 00 10 <data>`` (``master_key`` = INT master)."""
    return internal_auth(alg, derive_card_key(alg, master_key, atr, city6), data)


def compute_card_identification_code(
    alg: int, master_key: bytes, region6: str, serial: bytes
) -> bytes:
    """卡识别码 = region(3) || D156000005 || serial(4) || 卡认证码(4) [C §6]."""
    if len(region6) != 6 or not region6.isdigit() or len(serial) != 4:
        raise ValueError("region is 6 digits, serial 4 bytes")
    prefix = bytes.fromhex(region6) + bytes.fromhex("D156000005") + bytes(serial)
    return prefix + card_auth_code(alg, master_key, prefix)
