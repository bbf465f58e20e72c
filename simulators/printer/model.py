"""CS-220e device model: cards, ribbon, ribbon sensor, timings, faults, coupling hooks.

Transport-free: `protocol.Session` turns frames into calls on this model; the pyusb backend
and the TCP server carry the bytes. Simulator control (loading cards, injecting faults) is
this Python API (and the server's JSON control channel), never device opcodes.

Time: an operation is a list of steps with durations from the reference (section 7.5) scaled by
`speed` (1 = real time, 0.1 = ten times faster, 0 = instant). Steps run when due: at once for
speed 0, otherwise from a background thread, and whenever the model is queried. With a fake
`clock` and `autorun=False`, call `advance()` to run due steps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardstation.drivers.hiti import alerts as A
from cardstation.drivers.hiti.alerts import AlertCategory, AlertDef
from cardstation.drivers.hiti.assumptions import RIBBON_PANELS, colorseq
from cardstation.drivers.hiti.frames import ColorSeq, RibbonType
from cardstation.drivers.hiti.state import TagState
from cardstation.simulators.printer.cards import (
    DEVICE_POSITION,
    JAM_LOCATION,
    Orientation,
    PrintedSide,
    PrintRecord,
    Ribbon,
    SimCard,
    SimPosition,
)
from cardstation.simulators.printer.faults import FAULTS, FaultControls
from cardstation.simulators.printer.imaging import PX_PER_MM, reconstruct
from cardstation.simulators.printer.ribbon import RibbonControls
from cardstation.simulators.printer.scheduler import StepScheduler, _Step

log = logging.getLogger(__name__)

__all__ = ["FAULTS", "TIMINGS", "PrintJob", "PrinterModel", "Refused", "_Step"]

#: Seconds at speed 1 (reference section 7.5; CS-200e datasheet for the print times).
TIMINGS: dict[str, float] = {
    "feed": 3.0,  # input hopper -> contact station
    "contact_to_print": 1.5,
    "print_ymcko": 21.0,
    "print_k": 4.5,
    "flip": 4.0,
    "eject": 2.0,  # to the output hopper or the reject box
    "reset": 8.0,  # includes ribbon search and sensor calibration
    "clean": 20.0,
}

#: Effective sensor offset (mm) beyond which the ribbon search fails ("0300").
SEARCH_FAIL_MM = 0.8
#: Sensor dirt (0..1) from which calibration fails ("1100").
CALIBRATION_FAIL_DIRT = 0.5
#: Offset (mm) that 100 % dirt adds on top of the drift.
DIRT_OFFSET_MM = 1.0
#: Panel index for the colour offset: the n-th colour panel is found n times too late.
PANEL_SHIFT_INDEX = {"Y": 0, "M": 1, "C": 2}


Hook = Callable[..., None]


class Refused(Exception):
    """A device command the model refuses in its current state (the reply gets a failed
    status); `alert` is latched when given."""

    def __init__(self, reason: str, alert: AlertDef | None = None):
        super().__init__(reason)
        self.alert = alert


@dataclass
class PrintJob:
    """A complete job as the protocol assembled it."""

    jobid: int
    ribbon_type: int
    cols: int
    rows: int
    #: side (1, 2) -> panel name -> plane bytes
    sides: dict[int, dict[str, bytes]] = field(default_factory=dict)


class PrinterModel(StepScheduler, RibbonControls, FaultControls):
    """The simulated CS-220e: its cards, alerts and device operations here; time in
    StepScheduler (scheduler.py), the ribbon in RibbonControls (ribbon.py), the simulator's
    control API (faults, cables, operator actions) in FaultControls (faults.py)."""

    model_name = "CS-220e"

    def __init__(
        self,
        *,
        speed: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        output_dir: str | Path | None = None,
        cards: int = 0,
        ribbon: Ribbon | None = None,
        serial: str = "CS220E-SIM-0001",
        firmware: str = "1.20.0.S",
        reject_box_capacity: int = 20,
        autorun: bool = True,
    ) -> None:
        self.speed = speed
        self.clock = clock
        self.output_dir = Path(output_dir) if output_dir else None
        self.serial = serial
        self.firmware = firmware
        self.reject_box_capacity = reject_box_capacity
        self.autorun = autorun
        self._lock = threading.RLock()
        self._local = threading.local()  # per-thread lock depth
        self._advancing = False
        self._events: list[tuple[Hook | None, tuple[Any, ...]]] = []
        self._wake = threading.Condition(self._lock)
        self._ticker: threading.Thread | None = None
        self._closed = False

        self.input_cards: deque[SimCard] = deque()
        self.card: SimCard | None = None  # the card inside the printer
        self.output_hopper: list[SimCard] = []
        self.reject_box: list[SimCard] = []
        self.ribbon: Ribbon | None = ribbon if ribbon is not None else Ribbon()
        self._saved_ribbon: Ribbon | None = None
        self.cover_open = False
        self.printer_connected = True
        self.encoder_connected = True
        self.usb_generation = 0
        self.sensor_drift_mm = 0.0
        self.sensor_dirt = 0.0
        self.calibration_ok = True
        self.print_count = 0
        self.clean_count = 0
        self._jam_armed: str | None = None
        self._latched: dict[str, AlertDef] = {}
        self._steps: deque[_Step] = deque()
        self._jobs: dict[int, int] = {}  # jobid -> queue status
        self._print_log: list[PrintRecord] = []
        # Printed-face PNGs are a debugging artefact, not printer behaviour: they are written
        # by a background thread so that a print at speed 0 is not slowed by PNG encoding.
        # Anything that reads them goes through print_log or flush_output() first.
        self._output_writer: ThreadPoolExecutor | None = None
        self._pending_output: list[Future[None]] = []
        self._output_lock = threading.Lock()
        self.protocol_errors: list[str] = []
        #: Planes still to be refused with RESEND_DATA (fault "resend"), and whether the
        #: status shows RESEND_DATA now (until the host starts the plane again).
        self.resend_armed = 0
        self.resend_pending = False
        self.command_log: list[int] = []

        #: Coupling hooks (the lead wires these to the PC/SC card simulator).
        self.on_contact_enter: Hook | None = None  # (card: SimCard)
        self.on_contact_leave: Hook | None = None  # (card: SimCard)
        self.on_encoder_unplugged: Hook | None = None  # ()
        self.on_encoder_plugged: Hook | None = None  # ()
        self._plug_listeners: list[Callable[[bool], None]] = []

        if cards:
            self.load_cards(cards)

    # -- locking and hooks -------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock; fire queued hooks after the outermost release (hooks may block or
        call back into the model)."""
        with self._lock:
            depth = getattr(self._local, "depth", 0)
            self._local.depth = depth + 1
            try:
                self._advance()
                yield
            finally:
                self._local.depth = depth
                events: list[tuple[Hook | None, tuple[Any, ...]]] = []
                if depth == 0:
                    events, self._events = self._events, []
        for hook, args in events:
            if hook is not None:
                try:
                    hook(*args)
                except Exception:
                    log.exception("printer simulator hook %r failed", hook)

    def _emit(self, hook_name: str, *args: Any) -> None:
        self._events.append((getattr(self, hook_name), args))

    def add_plug_listener(self, listener: Callable[[bool], None]) -> None:
        """Called with False when the printer cable is pulled, True when plugged back."""
        self._plug_listeners.append(listener)

    def close(self) -> None:
        """Stop the background thread (after the printed-face PNGs are on disk)."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        try:
            self.flush_output()
        except Exception:  # a debugging artefact must not stop the simulators' shutdown
            log.exception("printer simulator: a printed-face PNG could not be written")
        finally:
            with self._output_lock:
                if self._output_writer is not None:
                    self._output_writer.shutdown(wait=True)
                    self._output_writer = None

    @property
    def print_log(self) -> list[PrintRecord]:
        """Every finished print job; their PNGs exist by the time this returns."""
        self.flush_output()
        return self._print_log

    def flush_output(self) -> None:
        """Wait until every printed-face PNG queued so far is written. A write that failed
        raises here, once."""
        with self._output_lock:
            pending = list(self._pending_output)
        wait(pending)  # every caller waits for all of them, not only the first to ask
        with self._output_lock:
            self._pending_output = [f for f in self._pending_output if f not in pending]
        for future in pending:
            error = future.exception()
            if error is not None:
                raise error

    # -- cards -------------------------------------------------------------------------------
    def load_card(
        self, orientation: Orientation | str = Orientation.RIGHT_WAY, chip: Any = None
    ) -> SimCard:
        """Put one card into the rear slot / input hopper."""
        card = SimCard(orientation=Orientation(orientation), chip=chip)
        with self._locked():
            self.input_cards.append(card)
            self._latched.pop("InputEmpty", None)
        return card

    def load_cards(
        self, count: int = 1, orientation: Orientation | str = Orientation.RIGHT_WAY
    ) -> list[SimCard]:
        return [self.load_card(orientation) for _ in range(count)]

    def _move_card(self, card: SimCard, to: SimPosition) -> None:
        """The card arrives at `to` (or jams there)."""
        if card.position is SimPosition.CONTACT and to is not SimPosition.CONTACT:
            self._emit("on_contact_leave", card)
        location = JAM_LOCATION.get(to)
        if self._jam_armed is not None and self._jam_armed == location:
            self._jam(card, location)
            return
        card.position = to
        if to is SimPosition.CONTACT:
            self._emit("on_contact_enter", card)
        elif to is SimPosition.OUTPUT:
            self.output_hopper.append(card)
            self.card = None
        elif to is SimPosition.REJECT:
            self.reject_box.append(card)
            self.card = None

    def _jam(self, card: SimCard, location: str) -> None:
        if card.position is SimPosition.CONTACT:
            self._emit("on_contact_leave", card)
        card.position = SimPosition.JAMMED
        card.jam_location = location
        self.card = card
        self._jam_armed = None
        self._latched["CardJam"] = A.jam_alert(location)
        self._steps.clear()
        for jobid in self._jobs:
            self._jobs[jobid] = 0x80
        log.info("card %s jammed at %s", card.serial, location)

    # -- alerts ------------------------------------------------------------------------------
    def alerts(self) -> list[AlertDef]:
        """Active alerts: physical conditions first, then latched ones."""
        with self._locked():
            out: list[AlertDef] = []
            if self.cover_open:
                out.append(A.by_name("CoverOpen"))
            if self.ribbon is None:
                out.append(A.by_name("RibbonMissing"))
            else:
                if self.ribbon.tag is TagState.ABSENT:
                    out.append(A.by_name("RibbonChipMissing"))
                elif self.ribbon.tag is TagState.UNREADABLE:
                    out.append(A.by_name("RibbonChipError"))
                if self.ribbon.remaining <= 0:
                    out.append(A.by_name("RibbonOut"))
            out.extend(self._latched.values())
            return out

    def alerts_in(self, category: AlertCategory) -> list[AlertDef]:
        return [a for a in self.alerts() if a.category is category]

    def _latch(self, alert: AlertDef) -> None:
        self._latched[alert.name] = alert

    def latch(self, alert: AlertDef) -> None:
        """Raise an alert that stays until a reset (or the next job, for job errors)."""
        with self._locked():
            self._latch(alert)

    def clear_latched(self, *names: str) -> None:
        with self._locked():
            for name in names:
                self._latched.pop(name, None)

    def _blocking(self, *, printing: bool = False) -> AlertDef | None:
        """The alert that stops motion (or printing) now, if any."""
        for alert in self.alerts():
            if not alert.blocks:  # a notice (PavoApi "card low") stops nothing
                continue
            if alert.category is AlertCategory.SUPPLIES and not printing:
                continue
            if alert.name in ("InputEmpty", "RibbonTypeMismatch", "RejectBoxFull"):
                continue  # refused per command, not blocking everything
            return alert
        return None

    def _check_ready(self, *, printing: bool = False) -> None:
        if not self.printer_connected:
            raise Refused("printer cable unplugged")
        if self._steps:
            raise Refused("busy")
        blocking = self._blocking(printing=printing)
        if blocking is not None:
            raise Refused(blocking.description)

    # -- device operations (called by protocol.Session) ---------------------------------------
    def status_flags(self) -> dict[str, bool]:
        with self._locked():
            flags = {name: False for name in A.CATEGORY_FLAG.values()}
            for alert in self.alerts():
                flags[A.CATEGORY_FLAG[alert.category]] = True
            # While a reset runs the printer reports POWER-ON rather than BUSY (gutenprint
            # waits while either is set, backend_hiti.c 2019 and 2024).
            resetting = bool(self._steps) and self._steps[0].label == "reset"
            flags["busy"] = bool(self._steps) and not resetting
            flags["power_on"] = resetting
            flags["resend"] = self.resend_pending
            return flags

    def plane_received(self) -> None:
        """A plane's data arrived: ask for it again if a resend fault is armed."""
        with self._locked():
            if self.resend_armed:
                self.resend_armed -= 1
                self.resend_pending = True

    def plane_restarted(self) -> None:
        """The host started a plane (again): the resend request is answered."""
        with self._locked():
            self.resend_pending = False

    def device_position(self) -> int:
        with self._locked():
            return int(DEVICE_POSITION[self.card.position]) if self.card else 0

    def move_to_contact(self) -> None:
        with self._locked():
            self._check_ready()
            steps = self._feed_steps()
            card = self.card
            assert card is not None
            if card.position is SimPosition.PRINT:
                steps.append(("to contact", TIMINGS["contact_to_print"],
                              lambda: self._move_card(card, SimPosition.CONTACT)))  # fmt: skip
            self._schedule(steps)

    def _feed_steps(self) -> list[tuple[str, float, Callable[[], None]]]:
        """Steps bringing a card to the contact station if none is in the printer."""
        if self.card is not None:
            if self.card.position is SimPosition.JAMMED:
                raise Refused("card jammed", A.jam_alert(self.card.jam_location or "card path"))
            return []
        if not self.input_cards:
            alert = A.by_name("InputEmpty")
            self._latch(alert)
            raise Refused("input hopper empty", alert)
        card = self.input_cards.popleft()
        self.card = card
        location = JAM_LOCATION[SimPosition.INPUT]
        if self._jam_armed == location:
            return [("feed", TIMINGS["feed"] / 2, lambda: self._jam(card, location))]
        return [("feed", TIMINGS["feed"], lambda: self._move_card(card, SimPosition.CONTACT))]

    def move_to_print(self) -> None:
        with self._locked():
            self._check_ready()
            steps = self._feed_steps()
            card = self.card
            assert card is not None
            if card.position is not SimPosition.PRINT:
                steps.append(("to print", TIMINGS["contact_to_print"],
                              lambda: self._move_card(card, SimPosition.PRINT)))  # fmt: skip
            self._schedule(steps)

    def eject(self, reject: bool = False) -> None:
        """Card to the output hopper, or to the reject box when `reject`."""
        with self._locked():
            self._check_ready()
            card = self.card
            if card is None:
                return  # nothing to move
            if card.position is SimPosition.JAMMED:
                raise Refused("card jammed", A.jam_alert(card.jam_location or "card path"))
            target = SimPosition.REJECT if reject else SimPosition.OUTPUT
            if reject and len(self.reject_box) >= self.reject_box_capacity:
                alert = A.by_name("RejectBoxFull")
                self._latch(alert)
                raise Refused("reject box full", alert)
            self._schedule(
                [("eject", TIMINGS["eject"], lambda: self._move_card(card, target))]
            )

    def reset(self, full: bool = True) -> None:
        """Device RESET: clears latched alerts, clears a jam to the reject box, and (full)
        searches the ribbon and calibrates the sensor."""
        with self._locked():
            if not self.printer_connected:
                raise Refused("printer cable unplugged")
            self._steps.clear()
            self._schedule([("reset", TIMINGS["reset"] if full else 1.0,
                             lambda: self._do_reset(full))])  # fmt: skip

    def _do_reset(self, full: bool) -> None:
        self._latched.clear()
        self._jobs.clear()
        card = self.card
        if card is not None and card.position is SimPosition.JAMMED:
            card.position = SimPosition.REJECT
            card.jam_location = None
            self.reject_box.append(card)
            self.card = None
        if full:
            self.calibrate()

    def calibrate(self) -> bool:
        """Ribbon sensor calibration: removes drift unless the sensor is too dirty."""
        with self._locked():
            if self.sensor_dirt >= CALIBRATION_FAIL_DIRT:
                self.calibration_ok = False
                self._latch(A.by_name("RibbonTakeCalibrationFailed"))
                return False
            self.sensor_drift_mm = 0.0
            self.calibration_ok = True
            return True

    def clean_path(self) -> None:
        with self._locked():
            self._check_ready()

            def done() -> None:
                self.clean_count += 1

            self._schedule([("clean", TIMINGS["clean"], done)])

    def sensor_offset_mm(self) -> float:
        return self.sensor_drift_mm + self.sensor_dirt * DIRT_OFFSET_MM

    def panel_offsets(self) -> dict[str, int]:
        """Colour offset in pixels per panel at the current sensor state."""
        px = self.sensor_offset_mm() * PX_PER_MM
        return {name: round(px * i) for name, i in PANEL_SHIFT_INDEX.items()}

    def jobs(self) -> list[tuple[int, int]]:
        with self._locked():
            return list(self._jobs.items())

    def start_print(self, job: PrintJob) -> None:
        """END_PAGE: check supplies, then feed/move, print each side, flip between sides."""
        with self._locked():
            self._check_ready(printing=True)
            self._check_ribbon(job)
            if self.sensor_offset_mm() > SEARCH_FAIL_MM:
                alert = A.by_name("RibbonSearchFail")
                self._latch(alert)
                raise Refused("ribbon search fail", alert)
            steps = self._feed_steps()
            card = self.card
            assert card is not None
            if card.position is not SimPosition.PRINT:
                steps.append(("to print", TIMINGS["contact_to_print"],
                              lambda: self._move_card(card, SimPosition.PRINT)))  # fmt: skip
            record = PrintRecord(job.jobid, card.serial)
            offsets = self.panel_offsets()
            for side in sorted(job.sides):
                if side == 2:
                    steps.append(("flip", TIMINGS["flip"] / 2,
                                  lambda: self._move_card(card, SimPosition.FLIPPER)))
                    steps.append(("flip back", TIMINGS["flip"] / 2, lambda: self._flip(card)))
                panels = job.sides[side]
                colour = "Y" in panels
                duration = TIMINGS["print_ymcko"] if colour else TIMINGS["print_k"]
                steps.append((f"print side {side}", duration,
                              self._printer_step(card, job, side, record, offsets)))
            steps.append(("job done", 0.0, lambda: self._finish(job, record)))
            self._jobs[job.jobid] = 0
            self._schedule(steps)

    def _check_ribbon(self, job: PrintJob) -> None:
        ribbon = self.ribbon
        assert ribbon is not None  # a missing ribbon is a blocking alert
        have = RIBBON_PANELS.get(ribbon.type, 0)
        for side, panels in job.sides.items():
            need = colorseq(frozenset(panels))
            lacking = need & ~have & ~ColorSeq.DK
            if lacking:
                # gutenprint backend_hiti.c (2024): 0x080201 "need YMCO", 0x080203 "need KO"
                colour = lacking & (ColorSeq.Y | ColorSeq.M | ColorSeq.C)
                alert = A.decode(0x080201 if colour else 0x080203, "0202")
                self._latch(alert)
                raise Refused(f"ribbon {RibbonType(ribbon.type).name} lacks panels (side {side})",
                              alert)  # fmt: skip

    def _flip(self, card: SimCard) -> None:
        card.flipped = not card.flipped
        self._move_card(card, SimPosition.PRINT)

    def _printer_step(
        self, card: SimCard, job: PrintJob, side: int, record: PrintRecord, offsets: dict[str, int]
    ) -> Callable[[], None]:
        def run() -> None:
            ribbon = self.ribbon
            panels = job.sides[side]
            free = (
                side == 2
                and ribbon is not None
                and ribbon.type == RibbonType.YMCKOK
                and "Y" not in panels
            )  # the YMCKOK ribbon's trailing K panel is for a mono back
            if ribbon is not None and not free:
                ribbon.remaining = max(0, ribbon.remaining - 1)
            used = {k: v for k, v in offsets.items() if k in panels}
            physical = card.side_under_head()
            png = self._write_png(card, job, physical, panels, used)
            card.printed[physical] = png
            record.sides.append(PrintedSide(side, physical, tuple(panels), used, png))

        return run

    def _write_png(
        self, card: SimCard, job: PrintJob, physical: str, panels: dict[str, bytes],
        offsets: dict[str, int],
    ) -> Path | None:  # fmt: skip
        if self.output_dir is None:
            return None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"card{card.serial:04d}-job{job.jobid}-{physical}.png"
        cols, rows = job.cols, job.rows

        def write() -> None:
            reconstruct(panels, cols, rows, offsets).save(path)

        with self._output_lock:
            if self._closed:  # no writer thread any more: write it here
                write()
                return path
            if self._output_writer is None:
                self._output_writer = ThreadPoolExecutor(1, thread_name_prefix="printer-sim-png")
            self._pending_output.append(self._output_writer.submit(write))
        return path

    def _finish(self, job: PrintJob, record: PrintRecord) -> None:
        self._jobs.pop(job.jobid, None)
        self.print_count += 1
        self._print_log.append(record)

    # -- inspection --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything a test or a person wants to see, JSON-ready."""
        with self._locked():
            return {
                "busy": bool(self._steps),
                "card": self.card.to_dict() if self.card else None,
                "input_hopper": len(self.input_cards),
                "output_hopper": len(self.output_hopper),
                "reject_box": len(self.reject_box),
                "ribbon": self.ribbon.to_dict() if self.ribbon else None,
                "cover_open": self.cover_open,
                "printer_connected": self.printer_connected,
                "encoder_connected": self.encoder_connected,
                "sensor": {
                    "drift_mm": self.sensor_drift_mm,
                    "dirt": self.sensor_dirt,
                    "offset_px": self.panel_offsets(),
                },
                "alerts": [
                    {"name": a.name, "code24": f"0x{a.code24:06X}", "cs_code": a.cs_code}
                    for a in self.alerts()
                ],
                "jam_armed": self._jam_armed,
                "print_count": self.print_count,
                "print_log": [r.to_dict() for r in self.print_log],
                "protocol_errors": list(self.protocol_errors),
            }

    def note_protocol_error(self, message: str) -> None:
        with self._lock:
            self.protocol_errors.append(message)
        log.warning("printer simulator: %s", message)
