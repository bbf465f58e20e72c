"""The key-service port: where the station gets cryptograms for a card, never the keys
themselves. Implemented by the PSAM, the remote encryption machine (HSM) and the test-only
software service (personalization/keys/)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping


class KeyServiceError(RuntimeError):
    """The key service cannot produce what was asked (refused, unreachable, unknown key)."""


class KeyServiceUnavailable(KeyServiceError):
    """The key service cannot be reached (network, TLS, no answer): try again later."""


class KeyService(ABC):
    """Cryptograms for one card: `city6` = first 6 hex digits of its 卡识别码."""

    @abstractmethod
    def external_auth(self, key_id: int, atr: bytes, city6: str, challenge: bytes,
                      algorithm: int, *, context: Mapping[str, str] | None = None) -> bytes:
        """The 16-byte data field of `00 82 00 <key_id> 10`. `context`: what the station knows
        of the card (card_id_code, decoded holder items) for a service that asks for it (the
        HSM); a PSAM and the software service ignore it."""

    @abstractmethod
    def unblock_mac(self, atr: bytes, city6: str, challenge: bytes, algorithm: int) -> bytes:
        """The 4-byte MAC of `84 24 00 00 04`."""

    def pinpad_kek(self) -> bytes:
        """The key-encryption key the PIN pad's session keys are wrapped under."""
        raise KeyServiceError("this key service holds no PIN pad key: configure one")

    def close(self) -> None:
        return None
