"""The PSAM (reader-side key module) of 2nd-generation personalization (ssc-chip.md 8.2).

Confirmed command shapes: SELECT `00A4040006 D15600000590`, diversify `BF DE P1 P2 Lc data`
(P1P2 chooses the key: 4812 UK/04, 4813 EF0D/0D, 4810 PUK/06, 4809 STK), encrypt
`80 FA 00 00 08 X8` answered 61xx then GET RESPONSE, MAC mode `80 FA 05 00 ...`. What the PSAM
computes inside is secret; the simulator's stand-in lives in personalization/keys/scheme.py.
The terminal number's file (EF 0016, 6 BCD bytes) is an assumption, as on many PSAMs.
"""

from __future__ import annotations

from .cardfiles import PSAM_AID, TERMINAL_NUMBER_FID
from .transport import ApduTransport

__all__ = ["CARD_KEY_ID", "KEY_EF0D", "KEY_PUK", "KEY_STK", "KEY_UK", "PSAM_AID",
           "TERMINAL_NUMBER_FID", "Psam", "diversification_data"]

# Diversification key selectors (P1 P2 of BFDE), ssc-chip.md 8.2 [C S6, S7].
KEY_UK = 0x4812
KEY_EF0D = 0x4813
KEY_PUK = 0x4810
KEY_STK = 0x4809
CARD_KEY_ID = {KEY_UK: 0x04, KEY_EF0D: 0x0D, KEY_PUK: 0x06}


def diversification_data(atr: bytes, city6: str, challenge: bytes) -> bytes:
    """The 2-factor BFDE data (Lc 18): ATR8 || ASCII(city6) || "sx" || R8 [C2 S6, S7]."""
    if len(city6) != 6:
        raise ValueError("city code is the first 6 hex digits of the card identification code")
    return atr[-8:] + city6.encode("ascii") + b"sx" + challenge


class Psam:
    def __init__(self, transport: ApduTransport) -> None:
        self.t = transport

    def select(self) -> None:
        self.t.command(b"\x00\xa4\x04\x00\x06" + PSAM_AID, "select PSAM application")

    def terminal_number(self) -> str:
        self.t.command(b"\x00\xa4\x02\x00\x02" + TERMINAL_NUMBER_FID.to_bytes(2, "big"),
                       "select PSAM terminal number")
        return self.t.command(b"\x00\xb0\x00\x00\x06", "read PSAM terminal number").hex()

    def diversify(self, key: int, data: bytes) -> None:
        apdu = bytes([0xBF, 0xDE, key >> 8, key & 0xFF, len(data)]) + data
        self.t.command(apdu, "PSAM diversify")

    def encrypt(self, data8: bytes) -> bytes:
        return self.t.command(b"\x80\xfa\x00\x00" + bytes([len(data8)]) + data8, "PSAM encrypt")

    def mac(self, data: bytes) -> bytes:
        return self.t.command(b"\x80\xfa\x05\x00" + bytes([len(data)]) + data, "PSAM MAC")

    def external_auth_data(
        self, key: int, atr: bytes, city6: str, challenge: bytes, algorithm: int = 0x01
    ) -> bytes:
        """The 16-byte data of `00 82 00 <kid> 10`. 3DES cards (flag 01): C8 || R8 as S6 does
        it (X = the card's challenge). SM4 cards (03, proposal): one block E(SK, R8 || R8)."""
        self.diversify(key, diversification_data(atr, city6, challenge))
        if algorithm == 0x03:
            return self.encrypt(challenge + challenge)
        return self.encrypt(challenge) + challenge
