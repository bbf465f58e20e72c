"""Reader discovery and card presence: list, select by name or regex, wait for insert/remove."""

from __future__ import annotations

import re
import time

from smartcard import scard

from .errors import (
    CHECK_READER_CABLE,
    SCARD_E_NO_READERS_AVAILABLE,
    CardWaitTimeout,
    ReaderNotFound,
    pcsc_error,
)

# pcscd wakes SCardGetStatusChange on reader events; we wait in slices so a reader that
# disappears (unplugged) is noticed between slices rather than hanging the caller.
_WAIT_SLICE_MS = 1000


def _wait_timeout(reader: str, want_present: bool, timeout: float) -> CardWaitTimeout:
    """The reader reported no change in time. Not "no card was inserted": the usual cause at
    a station is a reader that is not connected (an unplugged encoder looks exactly so)."""
    if want_present:
        return CardWaitTimeout(
            f"{reader} reported no card within {timeout:.1f} s",
            code=scard.SCARD_E_TIMEOUT, reader=reader,
            remedy="if a card is in that reader (or the printer has just fed one to its "
                   "encoder), " + CHECK_READER_CABLE + "; otherwise insert the card, chip "
                   "first and facing up")
    return CardWaitTimeout(
        f"{reader} still reports a card after {timeout:.1f} s",
        code=scard.SCARD_E_TIMEOUT, reader=reader,
        remedy="take the card out (for the encoder: eject or reject it from the printer); if "
               "it is out, " + CHECK_READER_CABLE)


def match_reader(pattern: str, names: list[str]) -> str | None:
    """The reader of `names` whose name equals `pattern`, else the first whose name matches it
    as a regular expression (re.error for a pattern that is not one), else None."""
    if pattern in names:
        return pattern
    regex = re.compile(pattern)
    return next((name for name in names if regex.search(name)), None)


class PcscContext:
    """An established winscard context (release it with `close` or a `with` block)."""

    def __init__(self) -> None:
        rv, self.handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if rv != scard.SCARD_S_SUCCESS:
            raise pcsc_error(rv, "cannot reach the PC/SC service (is pcscd running?)")

    def close(self) -> None:
        if self.handle is not None:
            scard.SCardReleaseContext(self.handle)
            self.handle = None

    def __enter__(self) -> PcscContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def readers(self) -> list[str]:
        rv, names = scard.SCardListReaders(self.handle, [])
        if rv == SCARD_E_NO_READERS_AVAILABLE or (rv == scard.SCARD_S_SUCCESS and not names):
            return []
        if rv != scard.SCARD_S_SUCCESS:
            raise pcsc_error(rv, "listing readers")
        return list(names)

    def find_reader(self, pattern: str) -> str:
        """The reader whose name equals `pattern`, else the first whose name matches it as a
        regular expression. Raises NoReadersAvailable / ReaderNotFound naming what exists."""
        names = self.readers()
        if not names:
            raise pcsc_error(SCARD_E_NO_READERS_AVAILABLE, f"looking for reader {pattern!r}")
        try:
            found = match_reader(pattern, names)
        except re.error as exc:
            message = f"reader pattern {pattern!r} is not a valid regex: {exc}"
            raise ReaderNotFound(message) from None
        if found is None:
            raise ReaderNotFound(
                f"no reader matches {pattern!r}; connected readers: {', '.join(names)}")
        return found

    def state(self, reader: str) -> tuple[int, bytes]:
        rv, states = scard.SCardGetStatusChange(
            self.handle, 0, [(reader, scard.SCARD_STATE_UNAWARE)]
        )
        if rv not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT):
            raise pcsc_error(rv, "reading the reader state", reader)
        return states[0][1], bytes(states[0][2])

    def card_present(self, reader: str) -> bool:
        return bool(self.state(reader)[0] & scard.SCARD_STATE_PRESENT)

    def _wait(self, reader: str, want_present: bool, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        flags, atr = self.state(reader)
        while bool(flags & scard.SCARD_STATE_PRESENT) != want_present:
            remaining = deadline - time.monotonic()
            if flags & scard.SCARD_STATE_UNKNOWN:  # the reader went away while we waited
                raise pcsc_error(scard.SCARD_E_UNKNOWN_READER, "waiting for the card", reader)
            if remaining <= 0:
                raise _wait_timeout(reader, want_present, timeout)
            wait_ms = int(min(remaining * 1000, _WAIT_SLICE_MS))
            rv, states = scard.SCardGetStatusChange(
                self.handle, wait_ms, [(reader, flags & ~scard.SCARD_STATE_CHANGED)]
            )
            if rv == scard.SCARD_E_TIMEOUT:
                continue
            if rv != scard.SCARD_S_SUCCESS:
                raise pcsc_error(rv, "waiting for the card", reader)
            flags, atr = states[0][1], bytes(states[0][2])
        return atr

    def wait_for_card(self, reader: str, timeout: float = 30.0) -> bytes:
        """Block until a card is in `reader`; return its ATR (empty if it gave none)."""
        return self._wait(reader, True, timeout)

    def wait_for_removal(self, reader: str, timeout: float = 30.0) -> None:
        self._wait(reader, False, timeout)
