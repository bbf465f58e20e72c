"""Transport-independent card OS core: power, ATR, APDU parsing, INS dispatch, T=0 responses.

Style of vsmartcard's vicc / pySim: a class-level INS -> handler table; handlers return a
:class:`Response` or raise :class:`SwError`; ``process_apdu`` turns both into bytes in one place
and never raises.

T=0 behaviour [C2 ssc-chip.md §2]: commands whose response carries data *and* that sent data
(case 4: SELECT of a DF, INTERNAL AUTHENTICATE, GPO, PSAM 80FA) answer ``61xx`` and keep the data
for GET RESPONSE ``00 C0 00 00 xx``; a GET RESPONSE or case-2 command with the wrong Le answers
``6Cxx`` (Le = 00 returns everything). Any other command discards pending response data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from .apdu import Apdu, Response
from .sw import SW, SwError, sw_bytes_available, sw_wrong_le

log = logging.getLogger(__name__)


@runtime_checkable
class SmartCard(Protocol):
    """What a card reader link (vpcd, in-process transport) needs from a card."""

    def power_on(self) -> bytes:
        """Cold reset: returns the ATR, resets volatile state (security state, current DF/EF)."""
        ...

    def power_off(self) -> None: ...

    def reset(self) -> bytes:
        """Warm reset, returns the ATR."""
        ...

    @property
    def atr(self) -> bytes: ...

    def process_apdu(self, apdu: bytes) -> bytes:
        """Response data + SW1 SW2. Never raises: any bad input gives a status word."""
        ...


@dataclass(frozen=True)
class Command:
    """One dispatch-table entry: the CLA bytes accepted and the handler method name."""

    clas: frozenset[int]
    handler: str


def cmd(handler: str, *clas: int) -> Command:
    return Command(frozenset(clas or (0x00,)), handler)


class CardOS:
    """Base class of :class:`SSCard` and :class:`Psam`. Subclasses fill ``COMMANDS``."""

    COMMANDS: ClassVar[Mapping[int, Command]] = {}
    INS_GET_RESPONSE: ClassVar[int] = 0xC0

    def __init__(self, atr: bytes) -> None:
        self._atr = bytes(atr)
        self._powered = False
        self._pending: bytes | None = None

    # --- SmartCard ---------------------------------------------------------------------------
    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def powered(self) -> bool:
        return self._powered

    def power_on(self) -> bytes:
        self._powered = True
        self._reset_volatile()
        return self._atr

    def power_off(self) -> None:
        self._powered = False
        self._reset_volatile()

    def reset(self) -> bytes:
        return self.power_on()

    def process_apdu(self, apdu: bytes) -> bytes:
        try:
            response = self._process(bytes(apdu))
        except SwError as err:
            response = Response(sw=err.sw)
        except Exception:  # never let anything escape to the transport
            log.exception("card OS error")
            response = Response(sw=SW.NO_PRECISE_DIAGNOSIS)
        return response.to_bytes()

    # --- machinery ---------------------------------------------------------------------------
    def _reset_volatile(self) -> None:
        """Clear volatile state; subclasses extend (and call super)."""
        self._pending = None

    @property
    def _known_clas(self) -> frozenset[int]:
        return frozenset().union(*(c.clas for c in self.COMMANDS.values()))

    def _process(self, raw: bytes) -> Response:
        if not self._powered:
            raise SwError(SW.NO_PRECISE_DIAGNOSIS)
        pending, self._pending = self._pending, None
        apdu = Apdu.parse(raw)
        if apdu.cla not in self._known_clas:
            raise SwError(SW.CLA_NOT_SUPPORTED)
        if apdu.ins == self.INS_GET_RESPONSE and apdu.cla == 0x00:
            return self._get_response(apdu, pending)
        entry = self.COMMANDS.get(apdu.ins)
        if entry is None:
            raise SwError(SW.INS_NOT_SUPPORTED)
        if apdu.cla not in entry.clas:
            raise SwError(SW.CLA_NOT_SUPPORTED)
        handler: Callable[[Apdu], Response] = getattr(self, entry.handler)
        return handler(apdu)

    def _get_response(self, apdu: Apdu, pending: bytes | None) -> Response:
        if apdu.p1 or apdu.p2:
            self._pending = pending
            raise SwError(SW.WRONG_P1P2)
        if pending is None:
            raise SwError(SW.CONDITIONS_NOT_SATISFIED)
        le = apdu.le
        if apdu.data or le is None or (le != 0 and le != len(pending)):
            self._pending = pending  # keep it: the reader resends with the right Le
            if apdu.data or le is None:
                raise SwError(SW.WRONG_LENGTH)
            raise SwError(sw_wrong_le(len(pending)))
        return Response(pending)

    def _t0_out(self, data: bytes) -> Response:
        """Case-4 answer under T=0: keep ``data`` for GET RESPONSE and answer 61xx."""
        if not data:
            return Response()
        self._pending = bytes(data)
        return Response(sw=sw_bytes_available(len(data)))

    @staticmethod
    def _exact_le(apdu: Apdu, data: bytes) -> Response:
        """Case-2 answer: Le must be 00 or the exact length, else 6Cxx [C §4]."""
        le = apdu.require_le()
        if le != 0 and le != len(data):
            raise SwError(sw_wrong_le(len(data)))
        return Response(data)
