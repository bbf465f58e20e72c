"""The block ciphers of the card, the PSAM and the PIN pad: 2-key 3DES and SM4 in ECB mode,
CBC-MAC (ISO/IEC 9797-1 MAC algorithm 1) and padding method 2. Primitives only, from the
`cryptography` library, below the drivers (the PIN pad's PIN blocks) and the key scheme
(personalization/keys/scheme.py) alike: no keys and no key derivation here."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 43 moved TripleDES to the "decrepit" namespace
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    TripleDES = algorithms.TripleDES  # type: ignore[misc]


class Alg(IntEnum):
    """Card algorithm flag, as carried in the SSSE FCI ``9F0C 03 86 01 <alg>`` [I §3.1]."""

    TDES = 0x01  # 2-key 3DES EDE, 8-byte block (2nd generation)
    SM4 = 0x03  # SM4 (GB/T 32907), 16-byte block (3rd generation)


KEY_LEN: Final[int] = 16


def block_size(alg: int) -> int:
    """Cipher block size in bytes: 8 for 3DES, 16 for SM4."""
    if alg == Alg.TDES:
        return 8
    if alg == Alg.SM4:
        return 16
    raise ValueError(f"unsupported algorithm flag {alg:#04x}")


def _cipher(alg: int, key: bytes, mode: modes.Mode) -> Cipher:
    if len(key) != KEY_LEN:
        raise ValueError("keys are 16 bytes")
    if alg == Alg.TDES:
        # 2-key 3DES given as K1 K2 K1 (cryptography deprecates the 16-byte form).
        return Cipher(TripleDES(key + key[:8]), mode)
    if alg == Alg.SM4:
        return Cipher(algorithms.SM4(key), mode)
    raise ValueError(f"unsupported algorithm flag {alg:#04x}")


def _check_blocks(alg: int, data: bytes) -> None:
    if not data or len(data) % block_size(alg):
        raise ValueError("data must be a non-empty multiple of the block size")


def ecb_encrypt(alg: int, key: bytes, data: bytes) -> bytes:
    """Encrypt whole blocks in ECB mode."""
    _check_blocks(alg, data)
    enc = _cipher(alg, key, modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def ecb_decrypt(alg: int, key: bytes, data: bytes) -> bytes:
    """Decrypt whole blocks in ECB mode."""
    _check_blocks(alg, data)
    dec = _cipher(alg, key, modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def pad_iso9797_m2(data: bytes, bs: int) -> bytes:
    """ISO/IEC 9797-1 padding method 2: append 80 then 00 up to a multiple of ``bs``."""
    padded = data + b"\x80"
    return padded + b"\x00" * (-len(padded) % bs)


def cbc_mac(alg: int, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 1 (full-cipher CBC-MAC) over already padded ``data``.

    Returns the whole last block; callers truncate (UNBLOCK uses the first 4 bytes).
    """
    bs = block_size(alg)
    _check_blocks(alg, data)
    iv = bytes(bs) if iv is None else iv
    if len(iv) != bs:
        raise ValueError("IV must be one block")
    enc = _cipher(alg, key, modes.CBC(iv)).encryptor()
    return (enc.update(data) + enc.finalize())[-bs:]
