"""A clock the test moves by hand, for whatever takes `clock=` (journal, tokens, simulators)."""

from __future__ import annotations


class FakeClock:
    """Seconds, from `start` until the test sets `now` or calls `advance`."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
