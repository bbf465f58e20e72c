"""Counts kept where things happen (APDUs by status word, CMS requests, PC/SC resets), read by
the metrics endpoint when it is scraped (server/metrics.py). A plain, locked counter: the low
layers count without depending on the metrics library or on the layers above."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Hashable


class Tally:
    def __init__(self) -> None:
        self._counts: Counter[Hashable] = Counter()
        self._lock = threading.Lock()

    def add(self, key: Hashable, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def snapshot(self) -> dict[Hashable, int]:
        with self._lock:
            return dict(self._counts)


#: APDU responses by status-word class: "9000", "61xx", "6Cxx", "63Cx", "6Axx", ...
APDUS = Tally()
#: PC/SC contexts given up after an error and made again (pcscd restarted, a reader replugged)
PCSC_CONTEXT_RESETS = Tally()


def sw_class(sw: int) -> str:
    """A status word's class for counting: 9000 and 63Cx as such, else its first byte."""
    if sw == 0x9000:
        return "9000"
    if sw & 0xFFF0 == 0x63C0:
        return "63Cx"
    return f"{sw >> 8:02X}xx"
