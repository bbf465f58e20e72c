"""The printer simulator's control API: faults injected and cleared by name, the cover, jams,
the cables, the reject box, the sensor, a power cycle: what a test or a person does to the
printer, never a device opcode. Mixed into PrinterModel, whose state it changes under its lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cardstation.drivers.hiti.frames import RibbonType
from cardstation.drivers.hiti.state import TagState
from cardstation.simulators.printer.cards import JAM_LOCATION, SimCard, SimPosition, jam_location

FAULTS = (
    "cover_open", "jam", "ribbon_missing", "ribbon_out", "ribbon_chip_missing",
    "ribbon_chip_unreadable", "ribbon_type_mismatch", "input_empty", "reject_box_full",
    "printer_unplugged", "encoder_unplugged", "sensor", "resend",
)  # fmt: skip


class FaultControls:
    def inject(self, fault: str, **params: Any) -> None:
        """Inject a fault by name (see FAULTS); `jam` takes `at`, `sensor` takes
        `offset_mm` and/or `dirt`."""
        actions: dict[str, Callable[[], None]] = {
            "cover_open": lambda: self.set_cover(True),
            "jam": lambda: self.jam(str(params.get("at", "print"))),
            "ribbon_missing": self.remove_ribbon,
            "ribbon_out": lambda: self._ribbon_set(remaining=0),
            "ribbon_chip_missing": lambda: self._ribbon_set(tag=TagState.ABSENT),
            "ribbon_chip_unreadable": lambda: self._ribbon_set(tag=TagState.UNREADABLE),
            "ribbon_type_mismatch": lambda: self._ribbon_set(type=RibbonType.K),
            "input_empty": self.empty_input,
            "reject_box_full": self.fill_reject_box,
            "printer_unplugged": self.unplug_printer,
            "encoder_unplugged": self.unplug_encoder,
            "sensor": lambda: self.set_sensor(params.get("offset_mm"), params.get("dirt")),
            "resend": lambda: self._arm_resend(int(params.get("times", 1))),
        }
        if fault not in actions:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        actions[fault]()

    def _arm_resend(self, times: int) -> None:
        with self._locked():
            self.resend_armed = times

    def clear(self, fault: str) -> None:
        """Undo one injected fault (the operator fixed it)."""
        actions: dict[str, Callable[[], None]] = {
            "cover_open": lambda: self.set_cover(False),
            "jam": self.clear_jam,
            "ribbon_missing": self.restore_ribbon,
            "ribbon_out": lambda: self.set_ribbon(),
            "ribbon_chip_missing": lambda: self._ribbon_set(tag=TagState.PRESENT),
            "ribbon_chip_unreadable": lambda: self._ribbon_set(tag=TagState.PRESENT),
            "ribbon_type_mismatch": lambda: self.set_ribbon(),
            "input_empty": lambda: self.load_cards(1),
            "reject_box_full": self.empty_reject_box,
            "printer_unplugged": self.plug_printer,
            "encoder_unplugged": self.plug_encoder,
            "sensor": lambda: self.set_sensor(0.0, 0.0),
            "resend": lambda: self._arm_resend(0),
        }
        if fault not in actions:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        actions[fault]()

    def clear_faults(self) -> None:
        """Undo every injected fault (cover closed, ribbon restored, cables plugged, ...)."""
        with self._locked():
            self.cover_open = False
            if self.ribbon is None:
                self.restore_ribbon()
            if self.ribbon is not None:
                self.ribbon.tag = TagState.PRESENT
            self._jam_armed = None
            self.clear_jam()
            self._latched.clear()
            self.sensor_drift_mm = self.sensor_dirt = 0.0
            self.calibration_ok = True
            self.resend_armed = 0
            self.resend_pending = False
        self.plug_printer()
        self.plug_encoder()

    def set_cover(self, open_: bool) -> None:
        with self._locked():
            self.cover_open = open_

    def jam(self, at: str = "print") -> None:
        """Jam at a named position: now, if the card sits there; else the next card to reach
        it jams there. Positions: feeder/input_hopper, contact, print, flipper, output, reject."""
        location = jam_location(at)
        with self._locked():
            card = self.card
            if (
                card is not None
                and not self._steps
                and JAM_LOCATION.get(card.position) == location
            ):
                self._jam(card, location)
            else:
                self._jam_armed = location

    def clear_jam(self) -> None:
        """The operator pulls the jammed card out (it goes to the reject box)."""
        with self._locked():
            self._jam_armed = None
            card = self.card
            if card is not None and card.position is SimPosition.JAMMED:
                card.position = SimPosition.REJECT
                self.reject_box.append(card)
                self.card = None
            self._latched.pop("CardJam", None)

    def empty_input(self) -> None:
        with self._locked():
            self.input_cards.clear()

    def fill_reject_box(self) -> None:
        with self._locked():
            while len(self.reject_box) < self.reject_box_capacity:
                self.reject_box.append(SimCard(position=SimPosition.REJECT))

    def empty_reject_box(self) -> list[SimCard]:
        with self._locked():
            cards, self.reject_box = self.reject_box, []
            self._latched.pop("RejectBoxFull", None)
            return cards

    def set_sensor(self, offset_mm: float | None = None, dirt: float | None = None) -> None:
        """Ribbon sensor drift (mm) and dirt (0..1): colour offset, search fail beyond
        SEARCH_FAIL_MM; dirt from CALIBRATION_FAIL_DIRT makes calibration fail."""
        with self._locked():
            if offset_mm is not None:
                self.sensor_drift_mm = float(offset_mm)
            if dirt is not None:
                self.sensor_dirt = min(1.0, max(0.0, float(dirt)))

    def clean_sensor(self) -> None:
        with self._locked():
            self.sensor_dirt = 0.0

    def unplug_printer(self) -> None:
        """Pull the printer's USB cable: open connections die (USB: ENODEV), the device
        vanishes from enumeration. The printer itself keeps running."""
        with self._locked():
            if not self.printer_connected:
                return
            self.printer_connected = False
            self.usb_generation += 1
        for listener in list(self._plug_listeners):
            listener(False)

    def plug_printer(self) -> None:
        with self._locked():
            if self.printer_connected:
                return
            self.printer_connected = True
        for listener in list(self._plug_listeners):
            listener(True)

    def unplug_encoder(self) -> None:
        with self._locked():
            if self.encoder_connected:
                self.encoder_connected = False
                self._emit("on_encoder_unplugged")

    def plug_encoder(self) -> None:
        with self._locked():
            if not self.encoder_connected:
                self.encoder_connected = True
                self._emit("on_encoder_plugged")

    def power_cycle(self) -> None:
        """Switch off and on: the running operation stops where the card is, latched alerts
        (except a jam, the card is still stuck) are cleared, the job queue is emptied."""
        with self._locked():
            self._steps.clear()
            self._jobs.clear()
            jam = self._latched.get("CardJam")
            self._latched.clear()
            if jam is not None:
                self._latched["CardJam"] = jam
