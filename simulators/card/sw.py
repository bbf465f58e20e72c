"""Status words used by the simulated card and PSAM, in one table [C ssc-chip.md §2].

6B00 and 6F00 are ISO/IEC 7816-4 words not seen in the corpus; the card uses them for an offset
outside a transparent EF and for "no precise diagnosis" (an internal error that must not escape
``process_apdu``; also a command to an unpowered card).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class SW(IntEnum):
    """Fixed status words. Parametrised ones (61xx, 6Cxx, 63Cx) have helpers below."""

    OK = 0x9000
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    FILE_STRUCTURE = 0x6981  # command incompatible with file structure
    SECURITY_NOT_SATISFIED = 0x6982
    AUTH_BLOCKED = 0x6983  # authentication method (PIN / key) blocked
    REF_DATA_INVALID = 0x6984  # reference data invalid, e.g. no challenge fetched
    CONDITIONS_NOT_SATISFIED = 0x6985
    NO_CURRENT_EF = 0x6986
    SM_DATA_INCORRECT = 0x6988  # secure-messaging data / MAC incorrect
    WRONG_DATA = 0x6A80
    FUNC_NOT_SUPPORTED = 0x6A81  # also "application locked"
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    WRONG_P1P2 = 0x6A86
    KEY_NOT_FOUND = 0x6A88
    WRONG_OFFSET = 0x6B00  # ISO 7816-4, not in corpus
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00  # ISO 7816-4, not in corpus
    APP_PERMANENTLY_LOCKED = 0x9303


SW_MEANINGS: Final[dict[int, str]] = {
    SW.OK: "normal processing",
    SW.MEMORY_FAILURE: "memory failure",
    SW.WRONG_LENGTH: "wrong length",
    SW.FILE_STRUCTURE: "command incompatible with file structure",
    SW.SECURITY_NOT_SATISFIED: "security status not satisfied",
    SW.AUTH_BLOCKED: "authentication method blocked",
    SW.REF_DATA_INVALID: "reference data invalid (e.g. no valid challenge)",
    SW.CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied",
    SW.NO_CURRENT_EF: "no current EF",
    SW.SM_DATA_INCORRECT: "secure messaging data / MAC incorrect",
    SW.WRONG_DATA: "incorrect data field",
    SW.FUNC_NOT_SUPPORTED: "function not supported / application locked",
    SW.FILE_NOT_FOUND: "file or application not found",
    SW.RECORD_NOT_FOUND: "record not found",
    SW.WRONG_P1P2: "incorrect P1 P2",
    SW.KEY_NOT_FOUND: "referenced key / data not found",
    SW.WRONG_OFFSET: "offset outside the EF",
    SW.INS_NOT_SUPPORTED: "instruction not supported",
    SW.CLA_NOT_SUPPORTED: "class not supported",
    SW.NO_PRECISE_DIAGNOSIS: "no precise diagnosis",
    SW.APP_PERMANENTLY_LOCKED: "application permanently locked",
}


def sw_bytes_available(n: int) -> int:
    """61xx: ``n`` response bytes wait for GET RESPONSE (xx = 00 means 256)."""
    return 0x6100 | (n & 0xFF)


def sw_wrong_le(n: int) -> int:
    """6Cxx: wrong Le, resend with Le = xx."""
    return 0x6C00 | (n & 0xFF)


def sw_tries_left(n: int) -> int:
    """63Cx: verification failed, x tries left."""
    return 0x63C0 | (n & 0x0F)


def describe(sw: int) -> str:
    """Human-readable meaning of a status word."""
    if sw in SW_MEANINGS:
        return SW_MEANINGS[sw]
    hi, lo = sw >> 8, sw & 0xFF
    if hi == 0x61:
        return f"{lo or 256} response bytes available"
    if hi == 0x6C:
        return f"wrong Le, exact length {lo or 256}"
    if hi == 0x63 and lo & 0xF0 == 0xC0:
        return f"verification failed, {lo & 0x0F} tries left"
    return "unknown status word"


class SwError(Exception):
    """Raised by command handlers; turned into the response status word in one place."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X} {describe(sw)}")
        self.sw = sw
