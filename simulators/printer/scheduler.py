"""Time in the printer simulator: an operation is a list of steps with durations scaled by the
model's `speed`; steps run when due, at once for speed 0, else from a background thread, and
whenever the model is queried (`advance()` with a fake clock). Mixed into PrinterModel, whose
lock, clock and step queue it uses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Step:
    due: float
    action: Callable[[], None]
    label: str


class StepScheduler:
    def _advance(self) -> None:
        if self._advancing:  # a step's action re-entered the model
            return
        self._advancing = True
        try:
            now = self.clock()
            while self._steps and self._steps[0].due <= now:
                step = self._steps.popleft()
                step.action()
        finally:
            self._advancing = False

    def advance(self) -> None:
        """Run the steps that are due (for a fake clock)."""
        with self._locked():
            pass

    @property
    def busy(self) -> bool:
        with self._locked():
            return bool(self._steps)

    def _schedule(self, steps: list[tuple[str, float, Callable[[], None]]]) -> None:
        t = self.clock()
        for label, base, action in steps:
            t += base * self.speed
            self._steps.append(_Step(t, action, label))
        self._advance()
        if self._steps and self.autorun:
            self._ensure_ticker()
            self._wake.notify_all()

    def _ensure_ticker(self) -> None:
        if self._ticker is None or not self._ticker.is_alive():
            self._ticker = threading.Thread(target=self._tick, name="printer-sim", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._closed:
            with self._locked():
                if not self._steps:
                    self._wake.wait(0.5)
                    continue
                delay = self._steps[0].due - self.clock()
                if delay > 0:
                    self._wake.wait(min(delay, 0.5))

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no operation runs (for tests at speed > 0)."""
        deadline = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True
