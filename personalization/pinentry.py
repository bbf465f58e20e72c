"""PIN entry on the PIN pad, as a `PinSource` for the window services.

The holder types on the pad; the station receives a PIN block encrypted under a session key it
loaded into the pad (wrapped under the pad's key-encryption key from the key service), and only
the digit count for the operator's screen. `__call__` decrypts the block at the last moment; the
caller puts the PIN straight into the card APDU (see personalization.window).
"""

from __future__ import annotations

from collections.abc import Callable

from cardstation.drivers.pinpad.errors import PinPadCancelled, PinPadTimeout
from cardstation.drivers.pinpad.pinblock import SessionKeys
from cardstation.drivers.pinpad.pinpad import PinPad

from .window import PIN_ENTRY_CANCELLED, PIN_ENTRY_TIMEOUT, WindowError

ACCOUNT = "000000000000"  # no bank account is involved in the social-security PIN


class PinPadEntry:
    def __init__(self, pad: PinPad, kek: bytes, min_len: int = 6, max_len: int = 6,
                 timeout_s: int = 30, on_progress: Callable[[str, int], None] | None = None
                 ) -> None:
        self.pad = pad
        self.sessions = SessionKeys(kek)
        self.min_len, self.max_len, self.timeout_s = min_len, max_len, timeout_s
        self.on_progress = on_progress
        self._loaded = False

    def _ensure_session(self) -> None:
        if not self._loaded:
            encrypted, check = self.sessions.new_session()
            self.pad.load_session_key(encrypted, check)
            self._loaded = True

    def __call__(self, prompt: str) -> str:
        self._ensure_session()
        progress = None
        report = self.on_progress
        if report is not None:
            report(prompt, 0)  # the prompt is shown before the first key

            def progress(count: int) -> None:
                report(prompt, count)
        try:
            block = self.pad.read_pin_block(prompt, self.min_len, self.max_len, self.timeout_s,
                                            ACCOUNT, progress)
        except PinPadCancelled:
            raise WindowError(PIN_ENTRY_CANCELLED, "the PIN entry was cancelled on the PIN pad",
                              "start again when the holder is ready to type the PIN") from None
        except PinPadTimeout:
            raise WindowError(PIN_ENTRY_TIMEOUT, f"no PIN was entered within {self.timeout_s} s",
                              "start again and ask the holder to type the PIN and press the "
                              "confirm key") from None
        return self.sessions.pin_from_block(block, ACCOUNT)

    def close(self) -> None:
        self.sessions.end_session()
        self._loaded = False
