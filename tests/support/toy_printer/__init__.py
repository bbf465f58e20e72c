"""A second printer model, for the tests only: "toy-card-printer", a card printer that lives in
this process. It shows what adding a model takes: this one adapter package (a `CardPrinter`,
personalization/ports/printer.py) and one registry line (`register_printer_model`, or a line in
cardstation/registries.py PRINTER_MODELS). Nothing else in the station knows it exists.

A device is named by `[printer] device = "toy://NAME"`; the test puts the device (its feeder
of blank chips and the encoder's vpcd slot it presents them in) into `DEVICES[NAME]` first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from cardstation.personalization.ports.printer import (
    CardPosition,
    PrinterCondition,
    PrinterDisconnected,
    PrinterFault,
    PrinterSettings,
    RibbonState,
    SensorCalibration,
)

REGISTRY_LINE = ("toy-card-printer", "tests.support.toy_printer:ToyCardPrinter.from_settings")


@dataclass
class ToyDevice:
    """The mechanics: a feeder of chips, one card position, a slot that shows the chip to the
    encoder reader while the card is at the contacts (`slot.insert` / `slot.remove`)."""

    slot: Any
    feeder: list[Any] = field(default_factory=list)
    position: CardPosition = CardPosition.OUTSIDE
    card: Any = None
    printed: list[Any] = field(default_factory=list)  # front images, one per print
    output: list[Any] = field(default_factory=list)
    rejected: list[Any] = field(default_factory=list)
    connected: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


DEVICES: dict[str, ToyDevice] = {}


class ToyCardPrinter:
    def __init__(self, device: ToyDevice) -> None:
        self.device = device

    @classmethod
    def from_settings(cls, settings: PrinterSettings) -> ToyCardPrinter:
        name = settings.device.removeprefix("toy://")
        if name not in DEVICES:
            raise ValueError(f"no toy printer {name!r}")
        return cls(DEVICES[name])

    def _ready(self) -> ToyDevice:
        if not self.device.connected:
            raise PrinterDisconnected("the toy printer is switched off")
        return self.device

    def status(self) -> PrinterCondition:
        self._ready()
        return PrinterCondition(busy=False)

    def ribbon(self) -> RibbonState:
        self._ready()
        return RibbonState("toy ribbon", 100, True)

    def card_position(self) -> CardPosition:
        return self._ready().position

    def print_count(self) -> int:
        return len(self._ready().printed)

    def move_to_contact(self) -> CardPosition:
        d = self._ready()
        with d.lock:
            if d.position is CardPosition.OUTSIDE:
                if not d.feeder:
                    raise PrinterFault("the feeder is empty", "load blank cards",
                                       code="PRINTER_INPUT_EMPTY", alert=True)
                d.card = d.feeder.pop(0)
            if d.position is not CardPosition.CONTACT:
                d.slot.insert(d.card)
            d.position = CardPosition.CONTACT
            return d.position

    def prepare_faces(self, front: Any, back: Any = None) -> None:
        pass  # nothing to render ahead: it keeps the images as they are

    def print_faces(self, front: Any, back: Any = None) -> None:
        d = self._ready()
        with d.lock:
            if d.card is None:
                raise PrinterFault("no card to print on", code="PRINTER_NO_CARD")
            self._leave_contacts(d)
            d.position = CardPosition.PRINT
            d.printed.append(front)

    def eject(self) -> CardPosition:
        return self._out(self.device.output, CardPosition.OUTPUT_HOPPER)

    def reject(self) -> CardPosition:
        return self._out(self.device.rejected, CardPosition.REJECT_BOX)

    def _out(self, into: list[Any], where: CardPosition) -> CardPosition:
        d = self._ready()
        with d.lock:
            self._leave_contacts(d)
            if d.card is not None:
                into.append(d.card)
            d.card, d.position = None, CardPosition.OUTSIDE
            return where

    @staticmethod
    def _leave_contacts(d: ToyDevice) -> None:
        if d.position is CardPosition.CONTACT:
            d.slot.remove()

    def reset(self, soft: bool = False) -> PrinterCondition:
        return self.status()

    def clean_card_path(self) -> PrinterCondition:
        return self.status()

    def calibrate_ribbon_sensor(self) -> SensorCalibration:
        self._ready()
        return SensorCalibration(ok=True, offset_um=0, dirt_percent=0)

    def reconnect(self) -> None:
        self._ready()

    def close(self) -> None:
        return None
