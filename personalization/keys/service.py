"""Key services: where the station gets cryptograms for a card, never the keys themselves.

Two implementations of the key-service port (personalization/ports/keys.py):
- `PsamKeyService`: a PSAM (reader-side key module) in a PC/SC reader; production path of
  2nd-generation personalization, and the PSAM simulator on the second vpcd slot in tests.
- `SoftwareKeyService`: computes with the TEST master keys of `scheme`; it refuses to exist
  unless the configuration says `test_keys = true`, so a production station cannot fall back to
  it by accident.
Neither logs inputs or outputs; the APDU trace masks the PSAM's data and answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from cardstation.drivers.pcsc.psam import KEY_STK, Psam, diversification_data
from cardstation.drivers.pcsc.transport import ApduTransport
from cardstation.personalization.ports.keys import (
    KeyService,
    KeyServiceError,
    KeyServiceUnavailable,
)

from .scheme import (
    EXT_AUTH_KEY_IDS,
    PSAM_KEY_USAGES,
    TEST_MASTER_KEYS,
    UNBLOCK_HEADER,
    KeyUsage,
    block_size,
    compute_external_auth,
    compute_unblock_mac,
    pad_iso9797_m2,
)

# card external-auth key id -> PSAM diversification selector (P1 P2 of BFDE)
_SELECTOR_OF_USAGE = {usage: selector for selector, usage in PSAM_KEY_USAGES.items()}
_PSAM_SELECTOR = {
    key_id: _SELECTOR_OF_USAGE[usage]
    for key_id, usage in EXT_AUTH_KEY_IDS.items()
    if usage in _SELECTOR_OF_USAGE
}


def _test_pinpad_kek() -> bytes:
    from cardstation.drivers.pinpad.pinblock import TEST_PINPAD_KEK

    return TEST_PINPAD_KEK


class SoftwareKeyService(KeyService):
    """TEST-ONLY keys computed in software (scheme.TEST_MASTER_KEYS)."""

    def __init__(self, test_keys_allowed: bool) -> None:
        if not test_keys_allowed:
            raise KeyServiceError(
                "the software key service holds test keys only; set `test_keys = true` in the "
                "[keys] section of cardstation.toml to use it (never on a production station)"
            )

    def external_auth(self, key_id: int, atr: bytes, city6: str, challenge: bytes,
                      algorithm: int, *, context: Mapping[str, str] | None = None) -> bytes:
        usage = EXT_AUTH_KEY_IDS.get(key_id)
        if usage is None:
            raise KeyServiceError(f"no key for external authentication key id {key_id:02X}")
        return compute_external_auth(algorithm, TEST_MASTER_KEYS[usage], atr, city6, challenge)

    def unblock_mac(self, atr: bytes, city6: str, challenge: bytes, algorithm: int) -> bytes:
        return compute_unblock_mac(algorithm, TEST_MASTER_KEYS[KeyUsage.STK], atr, city6,
                                   challenge)

    def pinpad_kek(self) -> bytes:
        return _test_pinpad_kek()  # TEST-ONLY, like every key of this service


class PsamKeyService(KeyService):
    """A PSAM in a PC/SC reader. `connect` opens the transport lazily (and again after a loss).

    The PSAM holds state between APDUs (a diversified session key, then the cipher or MAC under
    it), so every operation runs under one lock: the pipeline's worker and the window's gRPC
    threads never interleave their sequences on the one module."""

    def __init__(self, connect: Callable[[], ApduTransport],
                 test_pinpad_kek: bool = False) -> None:
        self._connect = connect
        self._test_pinpad_kek = test_pinpad_kek
        self._transport: ApduTransport | None = None
        self._psam: Psam | None = None
        self._lock = threading.RLock()

    def _ready(self) -> Psam:
        if self._psam is None:
            self._transport = self._connect()
            self._psam = Psam(self._transport)
            self._psam.select()
        return self._psam

    def _call(self, action: Callable[[Psam], bytes]) -> bytes:
        with self._lock:
            try:
                return action(self._ready())
            except Exception:
                self.close()  # next call reconnects and reselects
                raise

    def external_auth(self, key_id: int, atr: bytes, city6: str, challenge: bytes,
                      algorithm: int, *, context: Mapping[str, str] | None = None) -> bytes:
        selector = _PSAM_SELECTOR.get(key_id)
        if selector is None:
            raise KeyServiceError(f"the PSAM has no key for key id {key_id:02X}")
        return self._call(lambda p: p.external_auth_data(selector, atr, city6, challenge,
                                                         algorithm))

    def unblock_mac(self, atr: bytes, city6: str, challenge: bytes, algorithm: int) -> bytes:
        def mac(p: Psam) -> bytes:
            # MAC mode takes IV || data padded to the cipher's block (ISO 9797-1 method 2)
            bs = block_size(algorithm)
            p.diversify(KEY_STK, diversification_data(atr, city6, challenge))
            return p.mac(bytes(bs) + pad_iso9797_m2(UNBLOCK_HEADER, bs))[:4]

        return self._call(mac)

    def pinpad_kek(self) -> bytes:
        """A PSAM holds no PIN pad key; with `test_keys = true` the TEST key is used (a
        production station gets its pad key from the HSM, not implemented here)."""
        if not self._test_pinpad_kek:
            raise KeyServiceError("no PIN pad key-encryption key: the PSAM holds none and "
                                  "`test_keys` is off")
        return _test_pinpad_kek()

    def terminal_number(self) -> str:
        with self._lock:
            return self._ready().terminal_number()

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                try:
                    self._transport.close()  # releases the PC/SC context too
                except Exception:
                    pass
            self._transport = None
            self._psam = None

# the port's names, re-exported for the callers that import them from here
__all__ = ["KeyService", "KeyServiceError", "KeyServiceUnavailable", "PsamKeyService",
           "SoftwareKeyService"]
