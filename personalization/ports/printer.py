"""The card-printer port: what the pipeline, the runtime and the maintenance calls need of a
card printer with a chip-encoder station, in the domain's own terms. An adapter (the HiTi
CS-220e's in personalization/printers/hiti.py, or another model's) implements `CardPrinter`,
reports where the card is as a neutral `CardPosition` and raises only `PrinterFault`s, whose
codes are the domain's PRINTER_* vocabulary (the API never shows a vendor's status numbers as
a reason; `vendor_code` carries them for the service technician)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from .errors import DeviceError


class CardPosition(Enum):
    OUTSIDE = "outside"            # no card in the printer (in the feeder, or gone)
    CONTACT = "contact"            # at the chip encoder's contacts
    PRINT = "print"                # under the print head
    FLIPPER = "flipper"            # in the turn-over unit
    OUTPUT_HOPPER = "output"       # left through the output slot
    REJECT_BOX = "reject_box"      # dropped into the reject box
    JAMMED = "jammed"
    UNKNOWN = "unknown"


#: Where a card is still inside the printer (the next job must not feed one).
IN_PRINTER: frozenset[CardPosition] = frozenset(
    {CardPosition.CONTACT, CardPosition.PRINT, CardPosition.FLIPPER})


class PrinterFault(DeviceError):
    """A printer refused or failed. `code` is PRINTER_<CONDITION>: PRINTER_COVER_OPEN,
    PRINTER_RIBBON_OUT, PRINTER_NOT_CONNECTED, PRINTER_TIMEOUT, ... (the fault catalogue and
    the README list them); `alert` is True for a condition the printer itself reports (the
    operator's maintenance buttons are its remedy)."""

    code = "PRINTER_ERROR"
    remedy = "restart the printer; call service if it persists"

    def __init__(self, cause: str, remedy: str | None = None, *, code: str | None = None,
                 vendor_code: str = "", alert: bool = False) -> None:
        super().__init__(cause, remedy, code=code, vendor_code=vendor_code)
        self.alert = alert


class PrinterDisconnected(PrinterFault):
    """The printer cannot be reached (cable, power, driver): the adapter reconnects on the next
    call."""

    code = "PRINTER_NOT_CONNECTED"


@dataclass(frozen=True)
class PrinterAlert:
    """A condition the printer reports. `blocks` False: a notice (cards low) that stops
    nothing."""

    code: str
    cause: str
    remedy: str
    vendor_code: str = ""
    blocks: bool = True


@dataclass(frozen=True)
class PrinterCondition:
    busy: bool
    alerts: tuple[PrinterAlert, ...] = ()


@dataclass(frozen=True)
class RibbonState:
    type_name: str
    remaining: int | None  # prints left, None when the ribbon does not say
    chip_present: bool
    capacity: int | None = None  # prints of a full roll of this type, when known


@dataclass(frozen=True)
class SensorCalibration:
    ok: bool
    offset_um: int
    dirt_percent: int


@dataclass(frozen=True)
class PrinterSettings:
    """What the composition root gives a model's factory (from `[printer]`): the device URL,
    timing, and `options`, the model's own keys from `[printer.options]`."""

    device: str
    poll_interval: float = 1.0
    panel_pause: float = 0.2
    options: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class CardPrinter(Protocol):
    """One card printer with its encoder station. Calls block until the printer is done;
    every failure is a PrinterFault. The printer is opened on first use and again after it
    was lost, so a station starts without it."""

    def status(self) -> PrinterCondition: ...

    def ribbon(self) -> RibbonState: ...

    def card_position(self) -> CardPosition: ...

    def print_count(self) -> int:
        """Cards printed in the printer's life: the pipeline journals it before printing so a
        print that finished before a crash is never repeated."""
        ...

    def move_to_contact(self) -> CardPosition:
        """The card inside to the encoder's contacts, or a new one from the feeder."""
        ...

    def prepare_faces(self, front: Any, back: Any = None) -> None:
        """Make ready what print_faces(front, back) will send (the printer's panels), so that
        printing the same images then only sends them. Called on another thread while the
        printer may be in use; it must not talk to the printer. May do nothing."""
        ...

    def print_faces(self, front: Any, back: Any = None) -> None:
        """Print RGB faces (PIL images, 1012x636 at 300 dpi); the card stays inside."""
        ...

    def eject(self) -> CardPosition: ...

    def reject(self) -> CardPosition: ...

    def reset(self, soft: bool = False) -> PrinterCondition: ...

    def clean_card_path(self) -> PrinterCondition: ...

    def calibrate_ribbon_sensor(self) -> SensorCalibration: ...

    def reconnect(self) -> None: ...

    def close(self) -> None: ...
