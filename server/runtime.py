"""What the gRPC servicers stand on: the station, a device worker, a monitor and an event bus.

- One device worker per printer runs jobs in the order they were accepted (a queue), so
  concurrent callers never interleave two cards on one printer.
- The monitor refreshes a snapshot of the devices (printer status and ribbon, readers, CMS) about
  once a second, between jobs only, so GetStation under load never touches a device.
- The event bus fans the pipeline's events out to WatchIssuance streams.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cardstation import __version__
from cardstation.personalization.journal import Issuance, State
from cardstation.station import Station

log = logging.getLogger(__name__)


@dataclass
class Event:
    issuance_id: str
    state: str
    message: str
    at: float
    final: bool


class EventBus:
    """Per-issuance subscribers; also keeps the last events of each job for late watchers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[queue.Queue[Event]]] = collections.defaultdict(list)
        self._station_subscribers: list[queue.Queue[None]] = []

    def publish(self, event: Event) -> None:
        with self._lock:
            targets = list(self._subscribers.get(event.issuance_id, ()))
            station = list(self._station_subscribers)
        for q in targets:
            q.put(event)
        for sq in station:
            sq.put(None)

    def subscribe(self, issuance_id: str) -> queue.Queue[Event]:
        q: queue.Queue[Event] = queue.Queue()
        with self._lock:
            self._subscribers[issuance_id].append(q)
        return q

    def unsubscribe(self, issuance_id: str, q: queue.Queue[Event]) -> None:
        with self._lock:
            subscribers = self._subscribers.get(issuance_id, [])
            if q in subscribers:
                subscribers.remove(q)
            if not subscribers:
                self._subscribers.pop(issuance_id, None)

    def subscribe_station(self) -> queue.Queue[None]:
        q: queue.Queue[None] = queue.Queue()
        with self._lock:
            self._station_subscribers.append(q)
        return q

    def unsubscribe_station(self, q: queue.Queue[None]) -> None:
        with self._lock:
            if q in self._station_subscribers:
                self._station_subscribers.remove(q)

    def notify_station(self) -> None:
        with self._lock:
            station = list(self._station_subscribers)
        for sq in station:
            sq.put(None)


@dataclass
class DeviceSnapshot:
    name: str
    address: str
    status: str  # READY BUSY FAULT DISCONNECTED
    fault: str = ""
    vendor_code: str = ""
    remedy: str = ""


@dataclass
class StationSnapshot:
    devices: list[DeviceSnapshot] = field(default_factory=list)
    ribbon_type: str = ""
    ribbon_remaining: int = -1
    ribbon_chip_present: bool = False
    at: float = 0.0

    def key(self) -> tuple[Any, ...]:
        return (tuple((d.name, d.status, d.fault) for d in self.devices), self.ribbon_type,
                self.ribbon_remaining, self.ribbon_chip_present)


class StationRuntime:
    """Runs the station's jobs and keeps its picture current."""

    TERMINAL = (State.DONE, State.REJECTED)

    def __init__(self, build: Callable[..., Station], monitor_interval: float = 1.0) -> None:
        self.events = EventBus()
        self.station = build(on_event=self._on_event)
        self.journal = self.station.journal
        self.pipeline = self.station.pipeline
        self.printer_lock = threading.RLock()  # the printer driver is not thread-safe
        self._jobs: queue.Queue[tuple[str, Callable[[], Any], Any] | None] = queue.Queue()
        self._queued: set[str] = set()
        self._running: str | None = None
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.snapshot = StationSnapshot()
        self.monitor_interval = monitor_interval
        self.on_snapshot: Callable[[StationSnapshot], None] | None = None
        self._threads = [
            threading.Thread(target=self._work, name="device-worker", daemon=True),
            threading.Thread(target=self._monitor, name="station-monitor", daemon=True),
        ]

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> StationRuntime:
        self.refresh()
        self.station.worker.start()
        for t in self._threads:
            t.start()
        for issuance in self.journal.unfinished():  # restart recovery, oldest first
            if issuance.state is not State.FAILED:
                self.enqueue(issuance.id)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Finish or park the step in progress, then stop (jobs resume at the next start)."""
        self.pipeline.park.set()
        self._stop.set()
        self._jobs.put(None)
        for t in self._threads:
            t.join(timeout)
        self.station.close()

    # -- jobs -----------------------------------------------------------------------------
    def enqueue(self, issuance_id: str, action: str = "run") -> Any:
        """Queue a job; returns a Future-like object (`wait(timeout)` -> result or raises)."""
        done = _Completion()
        with self._lock:
            self._queued.add(issuance_id)
        self._jobs.put((issuance_id, getattr(self.pipeline, action), done))
        self.events.notify_station()
        return done

    def is_queued(self, issuance_id: str) -> bool:
        with self._lock:
            return issuance_id in self._queued

    def running(self) -> str | None:
        return self._running

    def cancel(self, issuance_id: str) -> bool:
        """Cancel a job still waiting for the printer; False if it already started."""
        with self._lock:
            if issuance_id not in self._queued or self._running == issuance_id:
                return False
            self._queued.discard(issuance_id)
            self._cancelled.add(issuance_id)
        return True

    def queue_counts(self) -> tuple[int, int]:
        with self._lock:
            return len(self._queued), 1 if self._running else 0

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._jobs.get()
            if item is None:
                return
            issuance_id, action, done = item
            with self.printer_lock:  # a job is queued until it has the printer
                with self._lock:
                    if issuance_id in self._cancelled:
                        self._cancelled.discard(issuance_id)
                        done.set_result(None)
                        continue
                    self._queued.discard(issuance_id)
                    self._running = issuance_id
                try:
                    done.set_result(action(issuance_id))
                except Exception as exc:  # a job's failure must not stop the worker
                    log.exception("job %s failed", issuance_id[:8])
                    done.set_exception(exc)
                finally:
                    self._running = None
                    self.events.notify_station()

    # -- events and monitoring --------------------------------------------------------------
    def _on_event(self, issuance: Issuance, message: str) -> None:
        final = issuance.state in self.TERMINAL or issuance.state is State.FAILED
        self.events.publish(Event(issuance.id, issuance.state.value, message, time.time(),
                                  final))

    def _monitor(self) -> None:
        while not self._stop.wait(self.monitor_interval):
            if self._running is None:
                self.refresh()

    def refresh(self) -> StationSnapshot:
        """Look at every device now (takes the printer lock: never during a job)."""
        from cardstation.drivers.hiti.errors import PrinterAlert, PrinterError
        from cardstation.drivers.pcsc.errors import PcscError
        from cardstation.drivers.pcsc.readers import PcscContext

        cfg = self.station.config
        devices: list[DeviceSnapshot] = []
        snap = StationSnapshot(at=time.time())
        printer = DeviceSnapshot("printer", cfg.printer.device, "READY")
        with self.printer_lock:
            try:
                self._look_at_printer(printer, snap)
            except PrinterError:
                try:  # after a replug the old connection is dead: reconnect, look again
                    self.station.printer.reconnect()
                    self._look_at_printer(printer, snap)
                except PrinterAlert as exc:
                    printer.status, printer.fault, printer.remedy = "FAULT", str(exc), exc.remedy
                except Exception as exc:  # still unplugged: the next refresh tries again
                    printer.status, printer.fault = "DISCONNECTED", str(exc)
                    printer.remedy = getattr(exc, "remedy", "check the printer's USB cable")
        devices.append(printer)
        try:
            with PcscContext() as ctx:
                names = ctx.readers()
                for role, pattern in (("encoder", cfg.readers.encoder),
                                      ("psam", cfg.readers.psam)):
                    try:
                        reader = ctx.find_reader(pattern)
                        devices.append(DeviceSnapshot(role, reader, "READY"))
                    except PcscError as exc:
                        devices.append(DeviceSnapshot(role, pattern, "DISCONNECTED", str(exc)))
                del names
        except PcscError as exc:
            devices += [DeviceSnapshot(r, "", "DISCONNECTED", str(exc)) for r in ("encoder",
                                                                                  "psam")]
        snap.devices = devices
        changed = snap.key() != self.snapshot.key()
        self.snapshot = snap
        if changed:
            self.events.notify_station()
            if self.on_snapshot is not None:
                self.on_snapshot(snap)
        return snap

    def _look_at_printer(self, printer: DeviceSnapshot, snap: StationSnapshot) -> None:
        status = self.station.printer.status()
        if status.alerts:
            alert = status.alerts[0]
            printer.status = "FAULT"
            printer.fault = alert.name
            printer.vendor_code = alert.cs_code or f"0x{alert.code24:06X}"
            printer.remedy = alert.remedy
        elif status.busy:
            printer.status = "BUSY"
        else:
            printer.status, printer.fault, printer.remedy = "READY", "", ""
        ribbon = self.station.printer.ribbon()
        snap.ribbon_type = ribbon.type_name
        snap.ribbon_remaining = -1 if ribbon.remaining is None else ribbon.remaining
        snap.ribbon_chip_present = ribbon.chip_present


class _Completion:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def set_result(self, value: Any) -> None:
        self._result = value
        self._event.set()

    def set_exception(self, exc: BaseException) -> None:
        self._error = exc
        self._event.set()

    def wait(self, timeout: float | None = None) -> Any:
        if not self._event.wait(timeout):
            raise TimeoutError("the job did not finish in time")
        if self._error is not None:
            raise self._error
        return self._result


VERSION = __version__
