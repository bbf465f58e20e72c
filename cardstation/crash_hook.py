"""Test-only fault injection for the crash drills: SIGKILL this process at a journal commit.

The drill (`make drill`, tests/test_crash_drill.py) sets one of these in the environment of a
`cardstation run` or `cardstation serve` it is about to kill; a station never has them set.

- CARDSTATION_TEST_KILL_AFTER_COMMITS=N: die right after the N-th journal commit.
- CARDSTATION_TEST_KILL_AT_STATE=STATE[:N]: die right after the N-th (default first) commit
  that enters STATE (a name from personalization.journal.State): one state boundary.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

KILL_AFTER_ENV = "CARDSTATION_TEST_KILL_AFTER_COMMITS"
KILL_AT_STATE_ENV = "CARDSTATION_TEST_KILL_AT_STATE"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def from_environment() -> Callable[[object], None] | None:
    """The pipeline's `after_commit` hook the environment asks for, or None (the usual)."""
    budget = os.environ.get(KILL_AFTER_ENV)
    at_state = os.environ.get(KILL_AT_STATE_ENV)
    if not budget and not at_state:
        return None
    remaining = [int(budget)] if budget else [0]
    state_name, _, nth = (at_state or "").partition(":")
    state_left = [int(nth or 1)]

    def after_commit(state: object) -> None:
        if budget:
            remaining[0] -= 1
            if remaining[0] <= 0:
                _die()
        if state_name and str(state) == state_name:  # State is a StrEnum
            state_left[0] -= 1
            if state_left[0] <= 0:
                _die()

    return after_commit
