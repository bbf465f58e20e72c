"""PIN pad driver: the cardstation PIN pad protocol (this project's own design) over pyserial.

The PIN is plaintext only inside the pad and, later, in the APDU sent to the card. The driver
returns encrypted PIN blocks; :class:`SessionKeys` turns one into digits for that APDU only.
"""

from cardstation.drivers.pinpad.errors import (
    FrameError,
    PinPadCancelled,
    PinPadError,
    PinPadException,
    PinPadNotResponding,
    PinPadRejected,
    PinPadTimeout,
)
from cardstation.drivers.pinpad.pinblock import (
    TEST_PINPAD_KEK,
    SessionKeys,
    decode_pin_block,
    decrypt_pin_block,
    encode_pin_block,
    encrypt_pin_block,
)
from cardstation.drivers.pinpad.pinpad import PinPad, PinPadInfo
from cardstation.drivers.pinpad.protocol import NakReason, PromptMessage

__all__ = [
    "TEST_PINPAD_KEK",
    "FrameError",
    "NakReason",
    "PinPad",
    "PinPadCancelled",
    "PinPadError",
    "PinPadException",
    "PinPadInfo",
    "PinPadNotResponding",
    "PinPadRejected",
    "PinPadTimeout",
    "PromptMessage",
    "SessionKeys",
    "decode_pin_block",
    "decrypt_pin_block",
    "encode_pin_block",
    "encrypt_pin_block",
]
