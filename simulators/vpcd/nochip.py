"""What sits in the encoder slot when a card is loaded the wrong way: no chip under the contacts.

A real encoder's card-detect switch sees the card, but the contacts touch plastic, so reset gets
no answer. vpcd reproduces that when the virtual card reports an ATR longer than 33 bytes: it
fails the power-up while presence stays true, and pcscd marks the slot MUTE (SCardConnect then
fails with SCARD_W_UNPOWERED/UNRESPONSIVE_CARD). That is the one trick this module relies on.
"""

from __future__ import annotations

_NO_ANSWER_ATR = b"\x3b" * 40  # > MAX_ATR_SIZE (33): vpcd's power-up fails


class NoChipUnderContacts:
    """A present card that never answers reset (loaded chip-far-end or face down)."""

    atr = _NO_ANSWER_ATR

    def power_on(self) -> bytes:
        return self.atr

    def power_off(self) -> None:
        return None

    def reset(self) -> bytes:
        return self.atr

    def process_apdu(self, apdu: bytes) -> bytes:
        return b"\x6f\x00"  # never reached through pcscd: the chip is not powered
