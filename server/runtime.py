"""What the gRPC servicers stand on: the station, a device worker, a monitor and an event bus.

- One device worker per printer runs jobs in the order they were accepted (a queue), so
  concurrent callers never interleave two cards on one printer.
- The monitor refreshes a snapshot of the devices (printer status and ribbon, readers, CMS) about
  once a second, between jobs only, so GetStation under load never touches a device.
- The event bus fans the pipeline's events out to WatchIssuance streams.
- Admission: a job is accepted only when the snapshot shows every device and supply ready and
  no failed job's card may still be in the printer (`admission`); a queued job that would feed
  a card waits while the station is not ready (it stays QUEUED and cancellable), and says why.
- Storage: the journal is one of the devices the monitor looks at (room on its disk; a real
  commit while it is in trouble). A job stopped by a storage fault holds the lane: the worker
  takes no other job until the job's FAILED state is written (kept in memory meanwhile, and
  shown) and the store can be written again; then the job resumes by itself.
"""

from __future__ import annotations

import collections
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cardstation import __version__
from cardstation.drivers.pcsc.errors import PcscError
from cardstation.drivers.pcsc.readers import PcscContext
from cardstation.personalization.faults import Fault, fault, fault_of
from cardstation.personalization.journal import Issuance, JournalError, State, StorageFault
from cardstation.personalization.pipeline import (
    RULE_RESTART_RECOVERY,
    STORAGE_REASONS,
    IssuanceError,
    StorageHeld,
)
from cardstation.personalization.ports.printer import PrinterFault
from cardstation.server.audit import AuditLog
from cardstation.server.station_port import StationParts

log = logging.getLogger(__name__)


@dataclass
class _Job:
    issuance_id: str
    action: str  # the pipeline method's name
    call: Callable[[str], Any]
    done: Any  # _Completion


@dataclass
class Event:
    issuance_id: str
    state: str
    message: str
    at: float
    final: bool
    fault: Fault | None = None
    hand_over_allowed: bool = False


class EventBus:
    """Per-issuance subscribers; also keeps the last events of each job for late watchers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[queue.Queue[Event]]] = collections.defaultdict(list)
        self._station_subscribers: list[queue.Queue[None]] = []
        #: told every event as it is published (the metrics), on the publishing thread
        self.listeners: list[Callable[[Event], None]] = []

    def publish(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # an observer never stops a job
                log.exception("event listener failed")
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
    reason_code: str = ""

    def set_fault(self, status: str, problem: Fault, vendor_code: str = "") -> None:
        self.status, self.reason_code = status, problem.code
        self.fault, self.remedy, self.vendor_code = problem.cause, problem.remedy, vendor_code


@dataclass
class StationSnapshot:
    devices: list[DeviceSnapshot] = field(default_factory=list)
    ribbon_type: str = ""
    ribbon_remaining: int = -1
    ribbon_chip_present: bool = False
    ribbon_capacity: int = -1  # prints of a full roll, -1 when not known
    print_count: int = -1  # the printer's lifetime prints, -1 when it did not say
    at: float = 0.0
    #: (device, fault) for everything that stops a card from being made now
    problems: list[tuple[str, Fault]] = field(default_factory=list)

    def key(self) -> tuple[Any, ...]:
        return (tuple((d.name, d.status, d.fault) for d in self.devices), self.ribbon_type,
                self.ribbon_remaining, self.ribbon_chip_present,
                tuple((d, f.code) for d, f in self.problems))


class StationRuntime:
    """Runs the station's jobs and keeps its picture current."""

    TERMINAL = (State.DONE, State.REJECTED)

    def __init__(self, build: Callable[..., StationParts], monitor_interval: float = 1.0,
                 audit: AuditLog | None = None) -> None:
        self.events = EventBus()
        self.station = build(on_event=self._on_event)
        self.journal = self.station.journal
        self.pipeline = self.station.pipeline
        self.audit = audit  # where the automatic rules are recorded (the calls' own log)
        self.pipeline.on_rule = self._audit_rule
        self.closing = threading.Event()  # set when the server begins to stop: streams end
        self.printer_lock = threading.RLock()  # the printer driver is not thread-safe
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._queued: dict[str, str] = {}  # issuance id -> the queued action's name
        self._running: str | None = None
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.snapshot = StationSnapshot()
        self.monitor_interval = monitor_interval
        self.on_snapshot: Callable[[StationSnapshot], None] | None = None
        self._waiting_for: dict[str, str] = {}  # issuance id -> fault code it waits out
        # storage: what stops the journal from being written (None when it can be), the
        # outcomes a storage fault left unwritten (shown instead of the journal's row) and
        # the jobs the lane holds for until the store is back
        self._storage_problem: Fault | None = None
        self._unrecorded: dict[str, Issuance] = {}
        self._held: set[str] = set()
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
                self._audit_rule(issuance, RULE_RESTART_RECOVERY)
                self.enqueue(issuance.id)
        return self

    def begin_shutdown(self) -> None:
        """The server is stopping: watch streams end now instead of at the grace period."""
        self.closing.set()
        self.events.notify_station()

    def _audit_rule(self, issuance: Issuance, rule: str) -> None:
        """Record a job moved on by an automatic rule, not a call: who "station", role
        "system", method "rule:<name>" (README: the audit log)."""
        log.info("job %s: %s", issuance.id[:8], rule)
        if self.audit is None:
            return
        try:
            self.audit.append(who="station", role="system", method=f"rule:{rule}",
                              issuance_id=issuance.id, result="OK")
        except Exception:  # marks the log failed: state-changing calls are refused from now
            log.exception("audit record for rule %s could not be written", rule)

    def stop(self, timeout: float = 60.0) -> None:
        """Finish or park the step in progress, then stop (jobs resume at the next start)."""
        self.pipeline.park.set()
        self._stop.set()
        self._jobs.put(None)
        for t in self._threads:
            t.join(timeout)
        self.station.close()

    # -- jobs -----------------------------------------------------------------------------
    def enqueue(self, issuance_id: str, action: str = "run", *, unique: bool = False,
                **kwargs: Any) -> Any:
        """Queue a pipeline action on the device worker; returns a Future-like object
        (`wait(timeout)` -> result or raises), or None when the job is already queued or
        running and the action is `run` or `resume` or `unique` is given: a job is never
        queued twice to go on (a double click, a repeated create queue it once)."""
        done = _Completion()
        with self._lock:
            if (unique or action in _ONCE) and (issuance_id in self._queued
                                                 or self._running == issuance_id):
                return None
            self._queued[issuance_id] = action
        method = getattr(self.pipeline, action)
        call = functools.partial(method, **kwargs) if kwargs else method
        self._jobs.put(_Job(issuance_id, action, call, done))
        self.events.notify_station()
        return done

    def notify(self, issuance: Issuance, problem: Fault | None = None) -> None:
        """Tell the job's watchers about a change made outside the pipeline (a cancel)."""
        self._on_event(issuance, issuance.reason or issuance.state.value, problem)

    def is_queued(self, issuance_id: str) -> bool:
        with self._lock:
            return issuance_id in self._queued

    def running(self) -> str | None:
        """The job on the device worker; None while the lane only holds a job that a storage
        fault stopped (it is FAILED, waiting for the store, not running)."""
        running = self._running
        return None if running in self._held else running

    def present(self, issuance: Issuance) -> Issuance:
        """The job as the operator must see it: a FAILED outcome the journal could not take
        yet replaces the row it has."""
        return self._unrecorded.get(issuance.id, issuance)

    def holds(self, issuance_id: str) -> bool:
        """Whether the lane holds this job for the store: it offers no action, it resumes by
        itself once the store can be written."""
        return issuance_id in self._held

    def cancel(self, issuance_id: str) -> Issuance | None:
        """Cancel a new job still waiting for the printer (no card fed): REJECTED CANCELLED.
        None if it is not such a job (started, a resume, a reprint, or not queued)."""
        cancelled = fault("CANCELLED")
        with self._lock:
            if self._queued.get(issuance_id) != "run" or self._running == issuance_id:
                return None
            try:
                current = self.journal.get(issuance_id)
                if current.state not in (State.FETCHED, State.PREVIEWED):
                    return None
                issuance = self.journal.transition(
                    issuance_id, State.REJECTED, reason=cancelled.message, expect=current.state,
                    data={"reason_code": cancelled.code, "cause": cancelled.cause,
                          "remedy": cancelled.remedy, "actions": []})
            except JournalError:
                return None
            del self._queued[issuance_id]
            self._cancelled.add(issuance_id)
        self._on_event(issuance, issuance.reason, cancelled)
        return issuance

    # -- admission -------------------------------------------------------------------------
    def held_by(self) -> Issuance | None:
        """The oldest FAILED job whose card may still be in the printer: until the operator
        resumes or rejects it, no other job may feed a card."""
        for issuance in self.journal.issuances(state=State.FAILED, limit=500):
            if issuance.failed_from in _CARD_MAY_BE_INSIDE:
                return issuance
        return None

    def admission(self) -> Fault | None:
        """Why the station cannot make a card now (from the latest look at the devices), or
        None. Asked before the CMS claim, so nothing irreversible happens on a refusal."""
        if self.snapshot.problems:
            return self.snapshot.problems[0][1]
        unwritten = next(iter(list(self._unrecorded.values())), None)
        if unwritten is not None:  # its FAILED state is not written yet: its card is inside
            return fault("PRINTER_HELD_BY_FAILED_JOB", f"job {unwritten.id[:8]} "
                         f"({unwritten.reason})")
        held = self.held_by()
        if held is not None:
            return fault("PRINTER_HELD_BY_FAILED_JOB", f"job {held.id[:8]} ({held.reason})")
        return None

    def queue_counts(self) -> tuple[int, int]:
        with self._lock:
            return len(self._queued), 1 if self._running else 0

    def _work(self) -> None:
        # Jobs that would feed a card while the station is not ready are parked here, in
        # order; everything else (a resume of a card inside, a reject, a settle) goes on.
        waiting: collections.deque[_Job] = collections.deque()
        while not self._stop.is_set():
            job = self._next_job(waiting)
            if job is None:
                return
            if job is not False:
                assert isinstance(job, _Job)
                self._run_job(job)

    def _next_job(self, waiting: collections.deque[_Job]) -> _Job | bool | None:
        """The next job to run: the oldest parked one once the station is ready, else the
        next from the queue (a feeding one behind parked ones, or while not ready, is parked).
        False when there is nothing to run yet; None to stop."""
        while waiting and self._is_cancelled(waiting[0]):
            waiting.popleft().done.set_result(None)
        if waiting:
            if self._blocker() is None:
                return waiting.popleft()
            try:
                job = self._jobs.get(timeout=self.monitor_interval)
            except queue.Empty:
                return False
        else:
            job = self._jobs.get()
        if job is None:
            return None
        if self._feeds(job):
            problem = fault("STATION_BUSY_WITH_EARLIER_JOBS") if waiting else self._blocker()
            if problem is not None:
                self._announce_wait(job, problem)
                waiting.append(job)
                return False
        return job

    def _is_cancelled(self, job: _Job) -> bool:
        with self._lock:
            return job.issuance_id in self._cancelled

    def _run_job(self, job: _Job) -> None:
        with self.printer_lock:  # a job is queued until it has the printer
            with self._lock:
                if job.issuance_id in self._cancelled:
                    self._cancelled.discard(job.issuance_id)
                    job.done.set_result(None)
                    return
                self._queued.pop(job.issuance_id, None)
                self._running = job.issuance_id
            self._waiting_for.pop(job.issuance_id, None)
            try:
                job.done.set_result(self._call_holding(job))
            except IssuanceError as exc:  # a refusal the caller is told about
                log.info("job %s: %s", job.issuance_id[:8], exc)
                job.done.set_exception(exc)
            except Exception as exc:  # a job's failure must not stop the worker
                log.exception("job %s failed", job.issuance_id[:8])
                job.done.set_exception(exc)
            finally:
                self._running = None
                self.events.notify_station()

    def _call_holding(self, job: _Job) -> Any:
        """Run the job; when a storage fault stopped it, hold the lane (no other job runs,
        its card stays where it is) until its FAILED state is written and the store can be
        written again, then resume it by the automatic rule, as often as it takes."""
        call = job.call
        while True:
            try:
                result = call(job.issuance_id)
            except StorageHeld as held:
                job.done.set_result(held.outcome)  # a waiting caller learns it now
                result = held.outcome
                if not self._hold_lane(job.issuance_id, held):
                    return result
            else:
                if not (isinstance(result, Issuance) and _stopped_by_storage(result)):
                    return result
                if not self._hold_lane(job.issuance_id, None, _fault_of_job(result)):
                    return result
            call = self.pipeline.resume_after_storage

    def _hold_lane(self, issuance_id: str, held: StorageHeld | None,
                   problem: Fault | None = None) -> bool:
        """Wait until the store can be written (and has taken the held outcome). False when
        the station stops first: the journal's state is then resumed at the next start."""
        with self._lock:
            self._held.add(issuance_id)
            if held is not None:
                self._unrecorded[issuance_id] = held.outcome
        self._storage_problem = held.fault if held is not None else problem
        self.events.notify_station()
        try:
            while not self._stop.is_set():
                self.refresh()  # proves the store with a real commit while it is in trouble
                if self._storage_problem is None:
                    if held is None:
                        return True
                    try:
                        self.pipeline.record_held(held)
                    except StorageFault as exc:
                        self._storage_problem = fault_of(exc)
                    else:
                        return True
                self._stop.wait(self.monitor_interval)
            return False
        finally:
            with self._lock:
                self._held.discard(issuance_id)
                self._unrecorded.pop(issuance_id, None)
            self.events.notify_station()

    def _resume_storage_failures(self) -> None:
        """The automatic rule after a restart (or a job that stopped outside the lane): once
        the store can be written, jobs a storage fault stopped resume by themselves."""
        if self._storage_problem is not None:
            return
        for issuance in self.journal.issuances(state=State.FAILED, limit=500):
            if _stopped_by_storage(issuance):
                self.enqueue(issuance.id, "resume_after_storage", unique=True)

    def _feeds(self, job: _Job) -> bool:
        """Whether the job will move a card in from the feed slot (a new job, a resume from
        before the feed, a reprint): it must wait for a ready station and a free printer."""
        if job.action == "reprint":
            return True
        if job.action not in _ONCE:
            return False
        try:
            issuance = self.journal.get(job.issuance_id)
        except JournalError:
            return False
        if issuance.state in (State.FETCHED, State.PREVIEWED):
            return True
        return job.action == "resume" and issuance.state is State.FAILED \
            and issuance.data.get("resume_from") in (State.FETCHED.value, State.PREVIEWED.value)

    def _blocker(self) -> Fault | None:
        """Why no card may be fed now (a fresh look at the station), or None."""
        self.refresh()
        return self.admission()

    def _announce_wait(self, job: _Job, problem: Fault) -> None:
        if self._waiting_for.get(job.issuance_id) == problem.code:
            return
        self._waiting_for[job.issuance_id] = problem.code
        try:
            waiting = self.journal.get(job.issuance_id)
        except JournalError:
            return
        self._on_event(waiting, f"waiting for the station: {problem.message}", problem)

    # -- events and monitoring --------------------------------------------------------------
    def _on_event(self, issuance: Issuance, message: str, problem: Fault | None = None) -> None:
        final = issuance.state in self.TERMINAL or issuance.state is State.FAILED
        self.events.publish(Event(issuance.id, issuance.state.value, message, time.time(),
                                  final, problem, issuance.state is State.DONE))

    def _monitor(self) -> None:
        while not self._stop.wait(self.monitor_interval):
            if self._running is None:
                self.refresh()
                try:
                    self._resume_storage_failures()
                except JournalError:
                    log.warning("the journal cannot be read: no job resumed now")
            try:  # an acknowledgement whose callback was lost still ends in DONE
                self.pipeline.sweep_returns()
            except Exception:
                log.exception("settling acknowledged returns failed")

    def refresh(self) -> StationSnapshot:
        """Look at every device now (takes the printer lock: never during a job)."""
        cfg = self.station.config
        devices: list[DeviceSnapshot] = []
        snap = StationSnapshot(at=time.time())
        printer = DeviceSnapshot("printer", cfg.printer.device, "READY")
        with self.printer_lock:
            try:
                self._look_at_printer(printer, snap)
            except PrinterFault:
                try:  # after a replug the old connection is dead: reconnect, look again
                    self.station.printer.reconnect()
                    self._look_at_printer(printer, snap)
                except Exception as exc:  # still unplugged: the next refresh tries again
                    printer.set_fault("DISCONNECTED", fault_of(exc))
        devices.append(printer)
        roles = [("encoder", cfg.readers.encoder)]
        if cfg.keys.service == "psam":
            roles.append(("psam", cfg.readers.psam))
        try:
            with PcscContext() as ctx:
                for role, pattern in roles:
                    device = DeviceSnapshot(role, pattern, "READY")
                    try:
                        device.address = ctx.find_reader(pattern)
                    except PcscError as exc:
                        problem = fault_of(exc)
                        if role == "psam":
                            problem = fault("KEY_SERVICE_UNAVAILABLE", problem.cause)
                        device.set_fault("DISCONNECTED", problem)
                    devices.append(device)
        except PcscError as exc:
            for role, pattern in roles:
                device = DeviceSnapshot(role, pattern, "READY")
                device.set_fault("DISCONNECTED", fault_of(exc))
                devices.append(device)
        if cfg.keys.service == "hsm":
            devices.append(self._look_at_hsm(cfg.keys.hsm_address))
        devices.append(self._look_at_journal())
        snap.devices = devices
        snap.problems = [(d.name, Fault(d.reason_code, d.fault, d.remedy))
                         for d in devices if d.status in ("FAULT", "DISCONNECTED")]
        snap.problems += _ribbon_problems(snap, printer)
        changed = snap.key() != self.snapshot.key()
        self.snapshot = snap
        if changed:
            self.events.notify_station()
            if self.on_snapshot is not None:
                self.on_snapshot(snap)
        return snap

    def _look_at_journal(self) -> DeviceSnapshot:
        """Room on the journal's disk; and, while it is in trouble (or a job waits for it), a
        real commit, so that it is called usable again only when it is."""
        device = DeviceSnapshot("journal", str(self.journal.path), "READY")
        reserve = self.pipeline.storage_reserve
        try:
            if self._storage_problem is not None or self._unrecorded:
                self.journal.check_writable(reserve, timeout=PROBE_TIMEOUT)
            else:
                self.journal.check_space(reserve)
        except JournalError as exc:
            self._storage_problem = fault_of(exc) if isinstance(exc, StorageFault) else \
                fault("STORAGE_ERROR", str(exc))
            device.set_fault("FAULT", self._storage_problem)
        else:
            self._storage_problem = None
        return device

    def _look_at_hsm(self, address: str) -> DeviceSnapshot:
        """The remote encryption machine: reachable, and TLS with it succeeds."""
        device = DeviceSnapshot("hsm", address, "READY")
        probe = getattr(self.station.keys, "probe", None)
        if probe is not None:
            try:
                probe()
            except Exception as exc:
                device.set_fault("DISCONNECTED", fault("KEY_SERVICE_UNAVAILABLE", str(exc)))
        return device

    def _look_at_printer(self, printer: DeviceSnapshot, snap: StationSnapshot) -> None:
        status = self.station.printer.status()
        blocking = [a for a in status.alerts if a.blocks]  # "cards low" informs, blocks nothing
        if blocking:
            alert = blocking[0]
            printer.set_fault("FAULT", Fault(alert.code, f"printer: {alert.cause}",
                                             alert.remedy), alert.vendor_code)
        elif status.busy:
            printer.status = "BUSY"
        ribbon = self.station.printer.ribbon()
        snap.ribbon_type = ribbon.type_name
        snap.ribbon_remaining = -1 if ribbon.remaining is None else ribbon.remaining
        snap.ribbon_chip_present = ribbon.chip_present
        snap.ribbon_capacity = -1 if ribbon.capacity is None else ribbon.capacity
        snap.print_count = self.station.printer.print_count()


#: Seconds the journal probe waits for another program's lock before calling it unavailable.
PROBE_TIMEOUT = 0.5


def _stopped_by_storage(issuance: Issuance) -> bool:
    return issuance.state is State.FAILED and \
        issuance.data.get("reason_code") in STORAGE_REASONS


def _fault_of_job(issuance: Issuance) -> Fault:
    data = issuance.data
    return Fault(str(data.get("reason_code", "")), str(data.get("cause", "")),
                 str(data.get("remedy", "")))

#: Actions that move a job on: queued at most once per job at a time.
_ONCE = frozenset({"run", "resume", "resume_after_storage"})


#: Failed-from states in which the job's card may still be in the printer.
_CARD_MAY_BE_INSIDE = frozenset({State.FED, State.CHIP_WRITTEN, State.VERIFIED,
                                 State.RETURN_QUEUED, State.PRINTED})


def _ribbon_problems(snap: StationSnapshot, printer: DeviceSnapshot) -> list[tuple[str, Fault]]:
    """Ribbon faults the printer's alerts may not show yet (they only stop a print)."""
    if printer.status == "DISCONNECTED" or printer.reason_code.startswith("PRINTER_RIBBON"):
        return []
    if not snap.ribbon_chip_present:
        return [("ribbon", Fault("PRINTER_RIBBON_CHIP_MISSING", "printer: ribbon chip not "
                                 "detected", "replace the ribbon or reseat its chip"))]
    if snap.ribbon_remaining == 0:
        return [("ribbon", Fault("PRINTER_RIBBON_OUT", "printer: ribbon exhausted (0 prints "
                                 "left)", "replace the ribbon"))]
    return []


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
