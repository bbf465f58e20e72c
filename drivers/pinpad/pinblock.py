"""PIN blocks and session keys of the cardstation PIN pad protocol (this project's own design).

PIN block layout "CS-PB16" (16 bytes = one SM4 block)::

    bytes 0..7   ISO 9564-1 format 0:  PIN field XOR account field
                 PIN field     = 0 | N | P1 .. PN | F .. F        (16 nibbles, N = 4..12)
                 account field = 0 0 0 0 | A1 .. A12              (16 nibbles)
    bytes 8..15  8 random bytes, fresh for every block, ignored when decoding

The account field is the 12-digit "PAN-like" field the host gives in PROMPT (for a bank PAN,
ISO's rightmost 12 digits excluding the check digit; ``000000000000`` when there is none). The
random half makes the SM4 cryptogram of the same PIN differ every time, even under one session
key. Decoding checks the control nibble (0), the length (4..12), that the PIN nibbles are
decimal and that the fill nibbles are F; a block failing any check is refused with ValueError
(whose message never contains a digit of the PIN).

Session keys: the host makes a fresh 16-byte SM4 key SK per PIN session, sends it to the pad as
``SM4-ECB(KEK, SK)`` with the check value ``SM4-ECB(SK, 00*16)[:4]``; the pad returns
``SM4-ECB(SK, CS-PB16 block)``. See ``protocol.py`` for the frames.
"""

from __future__ import annotations

import hmac
import os
from typing import Final

from cardstation.drivers.crypto import Alg, ecb_decrypt, ecb_encrypt
from cardstation.drivers.pinpad.protocol import (
    ACCOUNT_DIGITS,
    CHECK_VALUE_LEN,
    PIN_BLOCK_LEN,
    PIN_MAX,
    PIN_MIN,
    SESSION_KEY_LEN,
)

# ---------------------------------------------------------------------------------------------
# TEST-ONLY PIN pad master key (KEK). Published in the source, therefore worthless as a secret:
# the simulator and the tests use it. A real pad gets its KEK at a key ceremony and the station
# keeps its copy in the key service (PSAM/HSM), never in source or configuration files.
TEST_PINPAD_KEK: Final[bytes] = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
# ---------------------------------------------------------------------------------------------

_FORMAT0_HALF: Final = 8


def _check_account(account: str) -> None:
    if len(account) != ACCOUNT_DIGITS or not account.isascii() or not account.isdigit():
        raise ValueError(f"account must be {ACCOUNT_DIGITS} ASCII digits")


def _account_field(account: str) -> bytes:
    _check_account(account)
    return bytes.fromhex("0000" + account)


def encode_pin_block(pin: str, account: str, *, fill: bytes | None = None) -> bytes:
    """Build the 16-byte CS-PB16 plaintext block for ``pin`` (4..12 digits) and ``account``.

    ``fill`` (8 bytes) replaces the random second half; tests use it for fixed vectors.
    """
    if not PIN_MIN <= len(pin) <= PIN_MAX or not pin.isascii() or not pin.isdigit():
        raise ValueError(f"a PIN is {PIN_MIN}..{PIN_MAX} decimal digits")
    if fill is None:
        fill = os.urandom(_FORMAT0_HALF)
    if len(fill) != _FORMAT0_HALF:
        raise ValueError("fill is 8 bytes")
    nibbles = f"0{len(pin):X}{pin}".ljust(2 * _FORMAT0_HALF, "F")
    pin_field = bytes.fromhex(nibbles)
    acc = _account_field(account)
    return bytes(p ^ a for p, a in zip(pin_field, acc, strict=True)) + fill


def decode_pin_block(block: bytes, account: str) -> str:
    """Recover the PIN from a CS-PB16 plaintext block; ValueError if the block is malformed."""
    if len(block) != PIN_BLOCK_LEN:
        raise ValueError(f"a PIN block is {PIN_BLOCK_LEN} bytes")
    acc = _account_field(account)
    nibbles = bytes(b ^ a for b, a in zip(block[:_FORMAT0_HALF], acc, strict=True)).hex().upper()
    if nibbles[0] != "0":
        raise ValueError("not a format 0 PIN block (control nibble)")
    n = int(nibbles[1], 16)
    if not PIN_MIN <= n <= PIN_MAX:
        raise ValueError("PIN block length out of range")
    pin, rest = nibbles[2 : 2 + n], nibbles[2 + n :]
    if not pin.isdigit() or rest != "F" * len(rest):
        raise ValueError("malformed PIN block (wrong key or account?)")
    return pin


def encrypt_pin_block(block: bytes, session_key: bytes) -> bytes:
    """SM4-ECB encrypt a 16-byte PIN block under the session key (what the pad sends)."""
    if len(block) != PIN_BLOCK_LEN:
        raise ValueError(f"a PIN block is {PIN_BLOCK_LEN} bytes")
    return ecb_encrypt(Alg.SM4, session_key, block)


def decrypt_pin_block(encrypted_block: bytes, session_key: bytes) -> bytes:
    """SM4-ECB decrypt a 16-byte encrypted PIN block under the session key."""
    if len(encrypted_block) != PIN_BLOCK_LEN:
        raise ValueError(f"a PIN block is {PIN_BLOCK_LEN} bytes")
    return ecb_decrypt(Alg.SM4, session_key, encrypted_block)


def key_check_value(session_key: bytes) -> bytes:
    """First 4 bytes of ``SM4-ECB(session_key, 00 * 16)``."""
    return ecb_encrypt(Alg.SM4, session_key, bytes(16))[:CHECK_VALUE_LEN]


def wrap_session_key(session_key: bytes, kek: bytes) -> tuple[bytes, bytes]:
    """``(SM4-ECB(kek, session_key), check value)``: the LOAD_SESSION_KEY payload."""
    if len(session_key) != SESSION_KEY_LEN:
        raise ValueError(f"a session key is {SESSION_KEY_LEN} bytes")
    return ecb_encrypt(Alg.SM4, kek, session_key), key_check_value(session_key)


def unwrap_session_key(encrypted_key: bytes, check_value: bytes, kek: bytes) -> bytes:
    """Pad side of LOAD_SESSION_KEY: decrypt and verify; ValueError if the check value differs."""
    if len(encrypted_key) != SESSION_KEY_LEN or len(check_value) != CHECK_VALUE_LEN:
        raise ValueError("bad LOAD_SESSION_KEY payload size")
    session_key = ecb_decrypt(Alg.SM4, kek, encrypted_key)
    if not hmac.compare_digest(key_check_value(session_key), check_value):
        raise ValueError("session key check value mismatch")
    return session_key


class SessionKeys:
    """Host side of the PIN pad session keys.

    Holds the pad's KEK (a real station gets it from the key service) and the current session
    key; never logs, prints or reprs either.
    """

    def __init__(self, kek: bytes) -> None:
        if len(kek) != SESSION_KEY_LEN:
            raise ValueError("the KEK is 16 bytes")
        self._kek = kek
        self._session_key: bytes | None = None

    def __repr__(self) -> str:
        state = "active" if self._session_key is not None else "none"
        return f"SessionKeys(kek=<masked>, session={state})"

    def new_session(self) -> tuple[bytes, bytes]:
        """Make a fresh random session key (replacing the previous one) and return
        ``(encrypted under the KEK, check value)`` for :meth:`PinPad.load_session_key`."""
        self._session_key = os.urandom(SESSION_KEY_LEN)
        return wrap_session_key(self._session_key, self._kek)

    def end_session(self) -> None:
        """Forget the session key; blocks encrypted under it can no longer be opened."""
        self._session_key = None

    def pin_from_block(self, encrypted_block: bytes, account: str = "0" * ACCOUNT_DIGITS) -> str:
        """Decrypt a PIN block returned by the pad and return the PIN as digits.

        **This is the only place where a plaintext PIN leaves the pad side.** The caller must put
        the result straight into the card APDU (VERIFY / CHANGE PIN / RELOAD PIN), drop every
        reference to it right after, and never log, display, store or compare it anywhere but
        on the way to the card. ``account`` must equal the one given to the PROMPT.
        Raises ValueError (no session, or a block that does not decode under this session key).
        """
        if self._session_key is None:
            raise ValueError("no PIN pad session key: call new_session() first")
        return decode_pin_block(decrypt_pin_block(encrypted_block, self._session_key), account)
