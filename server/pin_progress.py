"""Where the holder is in a PIN entry: the operation, the PIN pad's prompt and the number of
digits typed (never the digits), for WatchPinEntry and the console's dots.

One PIN operation runs at a time (the window servicer serializes them), so one state suffices.
Watchers block on a condition with a version number, so each hears every change once and none
polls; `wait` returns after `timeout` at the latest, so a stream notices its caller leaving and
the server stopping.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .streams import LoopSignal


@dataclass(frozen=True)
class PinEntryState:
    version: int = 0
    active: bool = False
    operation: str = ""
    prompt: str = ""
    digits: int = 0
    max_digits: int = 0


class PinProgress:
    def __init__(self) -> None:
        self._state = PinEntryState()
        self._changed = threading.Condition()
        self.signal = LoopSignal()  # the watch streams on the server's loop

    @property
    def state(self) -> PinEntryState:
        return self._state

    def _set(self, **fields: object) -> None:
        with self._changed:
            old = self._state
            values = {"active": old.active, "operation": old.operation, "prompt": old.prompt,
                      "digits": old.digits, "max_digits": old.max_digits, **fields}
            self._state = PinEntryState(old.version + 1, **values)  # type: ignore[arg-type]
            self._changed.notify_all()
        self.signal.notify()

    def begin(self, operation: str, max_digits: int) -> None:
        self._set(active=True, operation=operation, prompt="", digits=0, max_digits=max_digits)

    def update(self, prompt: str, digits: int) -> None:
        """The PIN pad's progress callback: `prompt` asked, `digits` typed so far."""
        self._set(prompt=prompt, digits=digits)

    def end(self) -> None:
        self._set(active=False, operation="", prompt="", digits=0)

    def wait(self, after_version: int, timeout: float) -> PinEntryState:
        """The state once it is newer than `after_version`, or the current one after `timeout`."""
        with self._changed:
            self._changed.wait_for(lambda: self._state.version > after_version, timeout)
            return self._state
