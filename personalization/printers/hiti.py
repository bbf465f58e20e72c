"""The HiTi CS-220e as a `CardPrinter`: the driver (cardstation.drivers.hiti) opened on first
use and again after the printer was unplugged, its card positions and errors translated into
the port's neutral terms. `[printer] model = "hiti-cs220e"`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from cardstation.drivers.hiti import Printer
from cardstation.drivers.hiti import state as hiti
from cardstation.drivers.hiti.assumptions import RIBBON_CAPACITY  # an assumption: see there
from cardstation.drivers.hiti.errors import (
    PrinterAlert as HitiAlert,
)
from cardstation.drivers.hiti.errors import (
    PrinterError,
    PrinterNotConnected,
    PrinterProtocolError,
    PrinterTimeout,
)
from cardstation.drivers.hiti.render import CardPanels, render_panels
from cardstation.personalization.faults import upper_snake
from cardstation.personalization.ports.printer import (
    CardPosition,
    PrinterAlert,
    PrinterCondition,
    PrinterDisconnected,
    PrinterFault,
    PrinterSettings,
    RibbonState,
    SensorCalibration,
)

T = TypeVar("T")

_POSITIONS = {
    hiti.CardPosition.OUT: CardPosition.OUTSIDE,
    hiti.CardPosition.PRINT: CardPosition.PRINT,
    hiti.CardPosition.CONTACT: CardPosition.CONTACT,
    hiti.CardPosition.FLIPPER: CardPosition.FLIPPER,
    hiti.CardPosition.JAMMED: CardPosition.JAMMED,
    hiti.CardPosition.OUTPUT_HOPPER: CardPosition.OUTPUT_HOPPER,
    hiti.CardPosition.REJECT_BOX: CardPosition.REJECT_BOX,
}  # the magnetic-stripe and contactless stations are not used by this station: UNKNOWN


def position(value: hiti.CardPosition) -> CardPosition:
    return _POSITIONS.get(value, CardPosition.UNKNOWN)


def alert_code(name: str) -> str:
    """PRINTER_<CONDITION> from the driver's alert name (CoverOpen -> PRINTER_COVER_OPEN)."""
    return "PRINTER_" + upper_snake(name)


def _vendor(code24: int, cs_code: str | None) -> str:
    return cs_code or f"0x{code24:06X}"


def translate(exc: PrinterError) -> PrinterFault:
    """The driver's error as the port's fault (the driver's message is the cause)."""
    if isinstance(exc, HitiAlert):
        name = type(exc).__name__ if type(exc) is not HitiAlert else exc.alert.name
        return PrinterFault(exc.msg, exc.remedy, code=alert_code(name),
                            vendor_code=_vendor(exc.code24, exc.cs_code), alert=True)
    vendor = "" if exc.vendor_code is None else f"0x{exc.vendor_code:02X}"
    if isinstance(exc, PrinterNotConnected):
        return PrinterDisconnected(exc.msg, exc.remedy, vendor_code=vendor)
    if isinstance(exc, PrinterTimeout):
        return PrinterFault(exc.msg, exc.remedy, code="PRINTER_TIMEOUT", vendor_code=vendor)
    if isinstance(exc, PrinterProtocolError):
        return PrinterFault(exc.msg, exc.remedy, code="PRINTER_PROTOCOL_ERROR",
                            vendor_code=vendor)
    return PrinterFault(exc.msg, exc.remedy, vendor_code=vendor)


def condition(status: hiti.PrinterStatus) -> PrinterCondition:
    # a reset shows POWER-ON rather than BUSY: both mean "wait"
    return PrinterCondition(busy=status.busy or status.power_on, alerts=tuple(
        PrinterAlert(alert_code(a.name), a.description, a.remedy, _vendor(a.code24, a.cs_code),
                     a.blocks) for a in status.alerts))


class HitiCardPrinter:
    """A CS-220e at `url` (usb://0d16:030a, socket://host:port, a serial port)."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        self._printer: Printer | None = None
        self._lock = threading.RLock()
        #: panels rendered ahead (prepare_faces): (front, back, panels)
        self._prepared: tuple[Any, Any, CardPanels] | None = None
        self._prepared_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: PrinterSettings) -> HitiCardPrinter:
        if settings.options:
            raise ValueError("the hiti-cs220e model takes no [printer.options]; got "
                             + ", ".join(sorted(settings.options)))
        return cls(settings.device, poll_interval=settings.poll_interval,
                   panel_pause=settings.panel_pause)

    # -- the port ---------------------------------------------------------------------------
    def status(self) -> PrinterCondition:
        return self._call(lambda p: condition(p.status()))

    def ribbon(self) -> RibbonState:
        def read(p: Printer) -> RibbonState:
            r = p.ribbon()
            return RibbonState(r.type_name, r.remaining, r.chip_present,
                               RIBBON_CAPACITY.get(r.type))
        return self._call(read)

    def card_position(self) -> CardPosition:
        return self._call(lambda p: position(p.card_position()))

    def print_count(self) -> int:
        return self._call(lambda p: p.print_count())

    def move_to_contact(self) -> CardPosition:
        return self._call(lambda p: position(p.move_to_contact()))

    def prepare_faces(self, front: Any, back: Any = None) -> None:
        panels = render_panels(front, back)  # CPU only: the printer is not asked anything
        with self._prepared_lock:
            self._prepared = (front, back, panels)

    def print_faces(self, front: Any, back: Any = None) -> None:
        with self._prepared_lock:
            prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[0] is front and prepared[1] is back:
            self._call(lambda p: p.print_card(prepared[2]))
        else:
            self._call(lambda p: p.print_faces(front, back))

    def eject(self) -> CardPosition:
        return self._call(lambda p: position(p.eject()))

    def reject(self) -> CardPosition:
        return self._call(lambda p: position(p.reject()))

    def reset(self, soft: bool = False) -> PrinterCondition:
        return self._call(lambda p: condition(p.reset(soft=soft)))

    def clean_card_path(self) -> PrinterCondition:
        return self._call(lambda p: condition(p.clean_card_path()))

    def calibrate_ribbon_sensor(self) -> SensorCalibration:
        def calibrate(p: Printer) -> SensorCalibration:
            c = p.calibrate_ribbon_sensor()
            return SensorCalibration(c.ok, c.offset_um, c.dirt_percent)
        return self._call(calibrate)

    def reconnect(self) -> None:
        self._drop()
        self._call(lambda p: None)

    def close(self) -> None:
        self._drop()

    # -- the link ---------------------------------------------------------------------------
    def _call(self, action: Callable[[Printer], T]) -> T:
        try:
            return action(self._get())
        except PrinterNotConnected as exc:
            self._drop()  # the next call opens the printer again
            raise translate(exc) from exc
        except PrinterError as exc:
            raise translate(exc) from exc

    def _get(self) -> Printer:
        with self._lock:
            if self._printer is None:
                self._printer = Printer.open(self.url, **self.options)
            return self._printer

    def _drop(self) -> None:
        with self._lock:
            printer, self._printer = self._printer, None
        if printer is not None:
            try:
                printer.close()
            except Exception:  # already dead
                pass
