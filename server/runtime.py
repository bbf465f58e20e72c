"""What the gRPC servicers stand on: the station, a device worker, a monitor and an event bus.

- Lanes: a lane is a printer with its chip encoder and its device worker. Jobs wait in one
  queue, in the order they were accepted; an idle, ready lane claims the next job that needs a
  card fed (late: not when it was accepted). A job whose card is in a printer (fed, written,
  or failed there) goes only to that printer's lane. A lane whose printer fails while feeding
  (the chip not touched yet) hands the job back to the queue for another lane (the audited rule
  `lane-handoff`) and stays out of the draw for a while. Callers never interleave two cards
  on one printer (a lock per lane).
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
    Pipeline,
    StorageHeld,
)
from cardstation.personalization.ports.printer import PrinterFault
from cardstation.server.audit import AuditLog
from cardstation.server.station_port import LanePart, StationParts

log = logging.getLogger(__name__)


@dataclass
class _Job:
    issuance_id: str
    action: str  # the pipeline method's name, run on the lane's pipeline
    kwargs: dict[str, Any]
    done: Any  # _Completion
    seq: int  # the order it was accepted in (a hand-off keeps its place)
    #: (feeds a card, the lane it must run on or None), found when first looked at and again
    #: after any job of the same issuance ran (its state may have moved)
    placement: tuple[bool, str | None] | None = None


@dataclass
class Event:
    issuance_id: str
    state: str
    message: str
    at: float
    final: bool
    fault: Fault | None = None
    hand_over_allowed: bool = False
    lane: str = ""  # the printer the job's card is in, once fed


#: Where a job's events go: called with each event, None for "look again" (the server stops).
JobEventSink = Callable[["Event | None"], None]


class EventBus:
    """Per-issuance subscribers (sinks: a queue's put, or a hand-over to an event loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[JobEventSink]] = collections.defaultdict(list)
        self._station_subscribers: list[queue.Queue[None]] = []
        #: told every event as it is published (the metrics), on the publishing thread
        self.listeners: list[Callable[[Event], None]] = []
        #: told whenever the station picture may have changed (the watch broadcast)
        self.station_listeners: list[Callable[[], None]] = []

    def _station_changed(self) -> None:
        for listener in self.station_listeners:
            try:
                listener()
            except Exception:  # an observer never stops a job
                log.exception("station listener failed")

    def publish(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # an observer never stops a job
                log.exception("event listener failed")
        self._station_changed()
        with self._lock:
            targets = list(self._subscribers.get(event.issuance_id, ()))
            station = list(self._station_subscribers)
        for sink in targets:
            try:
                sink(event)
            except Exception:  # a watcher never stops a job
                log.exception("event sink failed")
        for sq in station:
            sq.put(None)

    def subscribe_sink(self, issuance_id: str, sink: JobEventSink) -> JobEventSink:
        with self._lock:
            self._subscribers[issuance_id].append(sink)
        return sink

    def unsubscribe_sink(self, issuance_id: str, sink: JobEventSink) -> None:
        with self._lock:
            subscribers = self._subscribers.get(issuance_id, [])
            if sink in subscribers:
                subscribers.remove(sink)
            if not subscribers:
                self._subscribers.pop(issuance_id, None)

    def subscribe(self, issuance_id: str) -> queue.Queue[Event | None]:
        """A queue of the job's events; None in it means "look again" (the server stops)."""
        q: queue.Queue[Event | None] = queue.Queue()
        self.subscribe_sink(issuance_id, q.put)
        return q

    def unsubscribe(self, issuance_id: str, q: queue.Queue[Event | None]) -> None:
        self.unsubscribe_sink(issuance_id, q.put)

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
        self._station_changed()
        with self._lock:
            station = list(self._station_subscribers)
        for sq in station:
            sq.put(None)

    def wake_all(self) -> None:
        """Every job watcher looks again now (the server is stopping)."""
        with self._lock:
            sinks = [sink for sinks in self._subscribers.values() for sink in sinks]
        for sink in sinks:
            sink(None)


@dataclass
class DeviceSnapshot:
    name: str
    address: str
    status: str  # READY BUSY FAULT DISCONNECTED
    fault: str = ""
    vendor_code: str = ""
    remedy: str = ""
    reason_code: str = ""
    lane: str = ""  # the printer (lane) a printer or encoder belongs to; "" station-wide

    def set_fault(self, status: str, problem: Fault, vendor_code: str = "") -> None:
        self.status, self.reason_code = status, problem.code
        self.fault, self.remedy, self.vendor_code = problem.cause, problem.remedy, vendor_code


@dataclass
class LaneSnapshot:
    """One printer and its encoder as last looked at."""

    name: str
    printer: DeviceSnapshot
    encoder: DeviceSnapshot
    ribbon_type: str = ""
    ribbon_remaining: int = -1
    ribbon_chip_present: bool = False
    ribbon_capacity: int = -1  # prints of a full roll, -1 when not known
    print_count: int = -1  # the printer's lifetime prints, -1 when it did not say
    #: (device, fault) for everything that stops this printer from making a card now
    problems: list[tuple[str, Fault]] = field(default_factory=list)

    def key(self) -> tuple[Any, ...]:
        return (self.name, tuple((d.status, d.fault) for d in (self.printer, self.encoder)),
                self.ribbon_type, self.ribbon_remaining, self.ribbon_chip_present,
                tuple((d, f.code) for d, f in self.problems))


@dataclass
class StationSnapshot:
    devices: list[DeviceSnapshot] = field(default_factory=list)
    lanes: list[LaneSnapshot] = field(default_factory=list)
    at: float = 0.0
    #: (device, fault) for what stops every printer (the PSAM, the journal, the key service)
    station_problems: list[tuple[str, Fault]] = field(default_factory=list)

    @property
    def problems(self) -> list[tuple[str, Fault]]:
        """Everything that needs the operator: the station's and every printer's."""
        return self.station_problems + [p for lane in self.lanes for p in lane.problems]

    def lane(self, name: str) -> LaneSnapshot | None:
        return next((lane for lane in self.lanes if lane.name == name), None)

    def key(self) -> tuple[Any, ...]:
        return (tuple((d.name, d.lane, d.status, d.fault) for d in self.devices),
                tuple(lane.key() for lane in self.lanes),
                tuple((d, f.code) for d, f in self.station_problems))


class LaneRunner:
    """The runtime's side of one lane: its lock, the job it runs, whether it may feed."""

    def __init__(self, part: LanePart, single: bool) -> None:
        self.part = part
        self.name = part.name
        self.lock = threading.RLock()  # the printer driver is not thread-safe
        self.running: str | None = None
        # the job it took from the queue and is about to run: still queued (cancellable)
        # until the lane has its printer
        self.claimed: str | None = None
        #: after a hand-off: no feeding until this time (monotonic), and why
        self.benched_until = 0.0
        self.bench_fault: Fault | None = None
        self.single = single
        self.snapshot = LaneSnapshot(part.name, self.device("printer", part.device),
                                     self.device("encoder", part.encoder))

    @property
    def pipeline(self) -> Pipeline:
        return self.part.pipeline

    def device(self, kind: str, address: str) -> DeviceSnapshot:
        return DeviceSnapshot(kind, address, "READY", lane=self.name)

    def label(self, kind: str) -> str:
        """How a device of this lane is named in problems: "printer" at a station with one
        printer, "printer.<lane>" at one with several."""
        return kind if self.single else f"{kind}.{self.name}"


class StationRuntime:
    """Runs the station's jobs and keeps its picture current."""

    TERMINAL = (State.DONE, State.REJECTED)

    def __init__(self, build: Callable[..., StationParts], monitor_interval: float = 1.0,
                 audit: AuditLog | None = None, lane_bench_s: float = 60.0) -> None:
        self.events = EventBus()
        self.station = build(on_event=self._on_event)
        self.journal = self.station.journal
        parts = list(getattr(self.station, "lanes", None) or [])
        self.lanes = [LaneRunner(part, single=len(parts) == 1) for part in parts]
        self.pipeline = self.station.pipeline  # the first lane's: jobs are opened through it
        self.audit = audit  # where the automatic rules are recorded (the calls' own log)
        for lane in self.lanes:
            lane.pipeline.on_rule = self._audit_rule
        self.closing = threading.Event()  # set when the server begins to stop: streams end
        self.lane_bench_s = lane_bench_s
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: list[_Job] = []  # in order of `seq`
        self._seq = 0
        self._queued: dict[str, str] = {}  # issuance id -> the queued action's name
        self._cancelled: set[str] = set()
        self._stop = threading.Event()
        self.snapshot = StationSnapshot(lanes=[lane.snapshot for lane in self.lanes])
        self.monitor_interval = monitor_interval
        self.on_snapshot: Callable[[StationSnapshot], None] | None = None
        self._waiting_for: dict[str, str] = {}  # issuance id -> fault code it waits out
        # storage: what stops the journal from being written (None when it can be), the
        # outcomes a storage fault left unwritten (shown instead of the journal's row) and
        # the jobs the lanes hold for until the store is back (issuance id -> lane)
        self._storage_problem: Fault | None = None
        self._unrecorded: dict[str, Issuance] = {}
        self._held: dict[str, str] = {}
        self._refresh_lock = threading.Lock()
        self._threads = [
            *(threading.Thread(target=self._work, args=(lane,), name=f"lane-{lane.name}",
                               daemon=True) for lane in self.lanes),
            threading.Thread(target=self._monitor, name="station-monitor", daemon=True),
        ]

    @property
    def printer_lock(self) -> threading.RLock:
        """The first printer's lock (a station with one printer has one lane)."""
        return self.lanes[0].lock

    def lane(self, name: str) -> LaneRunner | None:
        return next((lane for lane in self.lanes if lane.name == name), None)

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
        self.events.wake_all()

    def park(self) -> None:
        """Every lane stops after the step in progress (already committed)."""
        for lane in self.lanes:
            lane.pipeline.park.set()

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
        self.park()
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        self.station.close()

    # -- jobs -----------------------------------------------------------------------------
    def enqueue(self, issuance_id: str, action: str = "run", *, unique: bool = False,
                **kwargs: Any) -> Any:
        """Queue a pipeline action for a lane; returns a Future-like object
        (`wait(timeout)` -> result or raises), or None when the job is already queued or
        running and the action is `run` or `resume` or `unique` is given: a job is never
        queued twice to go on (a double click, a repeated create queue it once)."""
        if not callable(getattr(Pipeline, action, None)):
            raise AttributeError(f"no pipeline action {action!r}")
        done = _Completion()
        with self._cond:
            if (unique or action in _ONCE) and (issuance_id in self._queued
                                                 or self._is_running(issuance_id)):
                return None
            self._queued[issuance_id] = action
            self._seq += 1
            self._pending.append(_Job(issuance_id, action, kwargs, done, self._seq))
            self._cond.notify_all()
        self.events.notify_station()
        return done

    def notify(self, issuance: Issuance, problem: Fault | None = None) -> None:
        """Tell the job's watchers about a change made outside the pipeline (a cancel)."""
        self._on_event(issuance, issuance.reason or issuance.state.value, problem,
                       committed=True)

    def is_queued(self, issuance_id: str) -> bool:
        with self._lock:
            return issuance_id in self._queued

    def _is_running(self, issuance_id: str) -> bool:
        return any(lane.running == issuance_id for lane in self.lanes)

    def is_running(self, issuance_id: str) -> bool:
        """Whether a lane runs the job now; False while a lane only holds a job that a storage
        fault stopped (it is FAILED, waiting for the store, not running)."""
        return issuance_id not in self._held and self._is_running(issuance_id)

    def running_on(self, lane_name: str) -> str | None:
        lane = self.lane(lane_name)
        running = lane.running if lane is not None else None
        return None if running in self._held else running

    def present(self, issuance: Issuance) -> Issuance:
        """The job as the operator must see it: a FAILED outcome the journal could not take
        yet replaces the row it has."""
        return self._unrecorded.get(issuance.id, issuance)

    def holds(self, issuance_id: str) -> bool:
        """Whether a lane holds this job for the store: it offers no action, it resumes by
        itself once the store can be written."""
        return issuance_id in self._held

    def cancel(self, issuance_id: str) -> Issuance | None:
        """Cancel a new job still waiting for the printer (no card fed): REJECTED CANCELLED.
        None if it is not such a job (started, a resume, a reprint, or not queued)."""
        cancelled = fault("CANCELLED")
        with self._lock:
            if self._queued.get(issuance_id) != "run" or self._is_running(issuance_id):
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
        self._on_event(issuance, issuance.reason, cancelled, committed=True)
        return issuance

    # -- admission -------------------------------------------------------------------------
    def lane_of(self, issuance: Issuance) -> str:
        """The lane a job's card is (or was) in: the one recorded when it was fed; the first
        lane for a job fed before lanes were recorded or on a printer no longer configured."""
        name = issuance.data.get("lane")
        if isinstance(name, str) and self.lane(name) is not None:
            return name
        return self.lanes[0].name

    def held_by(self, lane_name: str | None = None) -> Issuance | None:
        """The oldest FAILED job whose card may still be in a printer (`lane_name`'s, or any):
        until the operator resumes or rejects it, that printer may not feed another card."""
        for issuance in self.journal.issuances(state=State.FAILED, limit=500):
            if issuance.failed_from in _CARD_MAY_BE_INSIDE and \
                    (lane_name is None or self.lane_of(issuance) == lane_name):
                return issuance
        return None

    def _held_by_lane(self) -> dict[str, Issuance]:
        held: dict[str, Issuance] = {}
        for issuance in self.journal.issuances(state=State.FAILED, limit=500):
            if issuance.failed_from in _CARD_MAY_BE_INSIDE:
                held.setdefault(self.lane_of(issuance), issuance)
        return held

    def lane_blocker(self, lane: LaneRunner,
                     held: dict[str, Issuance] | None = None) -> Fault | None:
        """Why `lane` may not feed a card now (from its latest look), or None."""
        if lane.snapshot.problems:
            return lane.snapshot.problems[0][1]
        for issuance_id, where in list(self._held.items()):
            unwritten = self._unrecorded.get(issuance_id)
            if unwritten is not None and where == lane.name:  # its FAILED state is not
                return fault("PRINTER_HELD_BY_FAILED_JOB",  # written yet: its card is inside
                             f"job {unwritten.id[:8]} ({unwritten.reason})")
        if held is None:
            held = self._held_by_lane()
        job = held.get(lane.name)
        if job is not None:
            return fault("PRINTER_HELD_BY_FAILED_JOB", f"job {job.id[:8]} ({job.reason})")
        if lane.bench_fault is not None and time.monotonic() < lane.benched_until:
            return lane.bench_fault
        return None

    def admission(self) -> Fault | None:
        """Why the station cannot make a card now (from the latest look at the devices), or
        None: a station-wide problem, or no printer that may feed. Asked before the CMS
        claim, so nothing irreversible happens on a refusal."""
        if self.snapshot.station_problems:
            return self.snapshot.station_problems[0][1]
        held = self._held_by_lane()
        first: Fault | None = None
        for lane in self.lanes:
            problem = self.lane_blocker(lane, held)
            if problem is None:
                return None
            first = first or problem
        return first

    def queue_counts(self) -> tuple[int, int]:
        with self._lock:
            running = sum(1 for lane in self.lanes
                          if lane.running is not None and lane.running not in self._held)
            return len(self._queued), running

    def _placement(self, job: _Job) -> tuple[bool, str | None]:
        """(whether the job feeds a card from a feed slot, the lane it must run on or None
        for any). A job whose card may be in a printer runs on that printer's lane; a reprint
        feeds at the printer that made the card (the operator puts it back there)."""
        if job.placement is None:
            job.placement = self._place(job)
        return job.placement

    def _place(self, job: _Job) -> tuple[bool, str | None]:
        try:
            issuance = self.journal.get(job.issuance_id)
        except JournalError:
            return False, None
        lane = self.lane_of(issuance)
        if job.action == "reprint":
            return True, lane
        state, resume_from = issuance.state, issuance.data.get("resume_from")
        card_inside = state in _CARD_MAY_BE_INSIDE or (
            state is State.FAILED and issuance.failed_from in _CARD_MAY_BE_INSIDE)
        if card_inside:
            return False, lane
        if job.action not in _ONCE:
            return False, None
        if state in (State.FETCHED, State.PREVIEWED):
            return True, None
        feeds = job.action != "run" and state is State.FAILED and \
            resume_from in (State.FETCHED.value, State.PREVIEWED.value)
        return feeds, None

    def _work(self, lane: LaneRunner) -> None:
        while not self._stop.is_set():
            job = self._claim(lane)
            if job is None:
                return
            feeds, _where = self._placement(job)
            if feeds:
                problem = self._fresh_look(lane)
                if problem is not None:  # not ready after all: back in its place, for any lane
                    self._put_back(lane, job, problem)
                    continue
            self._run_job(lane, job)

    def _claim(self, lane: LaneRunner) -> _Job | None:
        """The next job this lane may run, in order; waits until there is one (None: stop).
        A job that needs a card fed goes to the first ready lane; later ones wait behind it
        (the order jobs were accepted in is kept); others go on."""
        with self._cond:
            while not self._stop.is_set():
                job = self._next_for(lane)
                if job is not None:
                    self._pending.remove(job)
                    lane.claimed = job.issuance_id
                    return job
                self._cond.wait(self.monitor_interval)
        return None

    def _next_for(self, lane: LaneRunner) -> _Job | None:
        for job in [j for j in self._pending if j.issuance_id in self._cancelled]:
            self._pending.remove(job)
            self._cancelled.discard(job.issuance_id)
            job.done.set_result(None)
        held: dict[str, Issuance] | None = None
        first_feed_seen = False
        blocked = False  # the first new card waits for the station: later ones are told why
        for job in self._pending:
            if self._is_running(job.issuance_id) or \
                    any(other.claimed == job.issuance_id for other in self.lanes):
                continue  # one step of a job at a time, whatever lane has it
            feeds, where = self._placement(job)
            if where is not None and where != lane.name:
                continue
            if not feeds:
                return job
            if where is None:  # a new card: first come, first served
                if first_feed_seen:
                    if blocked:
                        self._announce_wait(job, fault("STATION_BUSY_WITH_EARLIER_JOBS"))
                    continue
                first_feed_seen = True
            if held is None:
                held = self._held_by_lane()
            problem = self.snapshot.station_problems[0][1] if self.snapshot.station_problems \
                else self.lane_blocker(lane, held)
            if problem is None:
                return job
            if where is not None:  # a reprint waits for its own printer
                self._announce_wait(job, problem)
            elif self._no_lane_may_feed(held):
                blocked = True
                self._announce_wait(job, self.admission() or problem)
        return None

    def _no_lane_may_feed(self, held: dict[str, Issuance]) -> bool:
        if self.snapshot.station_problems:
            return True
        return all(self.lane_blocker(lane, held) is not None for lane in self.lanes)

    def _fresh_look(self, lane: LaneRunner) -> Fault | None:
        """Why this lane may not feed now, from a fresh look at its devices and the
        station's, or None."""
        self.refresh()
        if self.snapshot.station_problems:
            return self.snapshot.station_problems[0][1]
        return self.lane_blocker(lane)

    def _put_back(self, lane: LaneRunner, job: _Job, problem: Fault) -> None:
        with self._cond:
            lane.claimed = None
            self._insert(job)
            self._cond.notify_all()
        if self._no_lane_may_feed(self._held_by_lane()):
            self._announce_wait(job, self.admission() or problem)

    def _insert(self, job: _Job) -> None:
        index = next((i for i, j in enumerate(self._pending) if j.seq > job.seq),
                     len(self._pending))
        self._pending.insert(index, job)

    def _run_job(self, lane: LaneRunner, job: _Job) -> None:
        with lane.lock:  # a job is queued until it has the printer
            self._waiting_for.pop(job.issuance_id, None)
            handed_off = False
            try:
                with self._lock:
                    lane.claimed = None
                    if job.issuance_id in self._cancelled:
                        self._cancelled.discard(job.issuance_id)
                        job.done.set_result(None)
                        return
                    self._queued.pop(job.issuance_id, None)
                    lane.running = job.issuance_id
                result = self._call_holding(lane, job)
                handed_off = self._hand_off(lane, job, result)
                if not handed_off:
                    job.done.set_result(result)
            except IssuanceError as exc:  # a refusal the caller is told about
                log.info("job %s: %s", job.issuance_id[:8], exc)
                job.done.set_exception(exc)
            except Exception as exc:  # a job's failure must not stop the worker
                log.exception("job %s failed", job.issuance_id[:8])
                job.done.set_exception(exc)
            finally:
                with self._cond:
                    lane.running = None
                    for pending in self._pending:  # its state moved: place them again
                        if pending.issuance_id == job.issuance_id:
                            pending.placement = None
                    self._cond.notify_all()
                self.events.notify_station()

    def _hand_off(self, lane: LaneRunner, job: _Job, result: Any) -> bool:
        """A job whose card this printer failed to feed (the chip not touched) goes back to
        the queue, in its place, for another printer; this one stays out of the draw for
        `lane_bench_s` or until its fault is cleared. Only at a station with other printers:
        with one, the job waits for the operator as it always did."""
        if len(self.lanes) < 2 or not isinstance(result, Issuance) or \
                result.state is not State.FAILED or result.failed_from is not State.PREVIEWED:
            return False
        problem = _fault_of_job(result)
        if problem.code in STORAGE_REASONS:
            return False
        handed = lane.pipeline.hand_off(result.id)
        if handed is None:
            return False
        lane.bench_fault = Fault(problem.code, f"printer {lane.name}: {problem.cause}",
                                 problem.remedy, problem.actions)
        lane.benched_until = time.monotonic() + self.lane_bench_s
        with self._cond:
            self._queued[job.issuance_id] = "run"
            self._insert(_Job(job.issuance_id, "run", {}, job.done, job.seq))
            self._cond.notify_all()
        return True

    def _call_holding(self, lane: LaneRunner, job: _Job) -> Any:
        """Run the job; when a storage fault stopped it, hold the lane (no other job runs
        on it, its card stays where it is) until its FAILED state is written and the store
        can be written again, then resume it by the automatic rule, as often as it takes."""
        method = getattr(lane.pipeline, job.action)
        call = functools.partial(method, **job.kwargs) if job.kwargs else method
        while True:
            try:
                result = call(job.issuance_id)
            except StorageHeld as held:
                job.done.set_result(held.outcome)  # a waiting caller learns it now
                result = held.outcome
                if not self._hold_lane(lane, job.issuance_id, held):
                    return result
            else:
                if not (isinstance(result, Issuance) and _stopped_by_storage(result)):
                    return result
                if not self._hold_lane(lane, job.issuance_id, None, _fault_of_job(result)):
                    return result
            call = lane.pipeline.resume_after_storage

    def _hold_lane(self, lane: LaneRunner, issuance_id: str, held: StorageHeld | None,
                   problem: Fault | None = None) -> bool:
        """Wait until the store can be written (and has taken the held outcome). False when
        the station stops first: the journal's state is then resumed at the next start."""
        with self._lock:
            self._held[issuance_id] = lane.name
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
                        lane.pipeline.record_held(held)
                    except StorageFault as exc:
                        self._storage_problem = fault_of(exc)
                    else:
                        return True
                self._stop.wait(self.monitor_interval)
            return False
        finally:
            with self._lock:
                self._held.pop(issuance_id, None)
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
    def _on_event(self, issuance: Issuance, message: str, problem: Fault | None = None,
                  committed: bool = False) -> None:
        """Publish a job's event. One announcing a commit carries the journal event's own time,
        so that a watcher which read that event from the journal already knows it by its time
        (WatchIssuance's replay and its live feed overlap); a notice is timed now."""
        final = issuance.state in self.TERMINAL or issuance.state is State.FAILED
        at = issuance.updated_at if committed else time.time()
        self.events.publish(Event(issuance.id, issuance.state.value, message, at,
                                  final, problem, issuance.state is State.DONE,
                                  str(issuance.data.get("lane", ""))))

    def _monitor(self) -> None:
        while not self._stop.wait(self.monitor_interval):
            self.refresh()
            try:
                self._resume_storage_failures()
            except JournalError:
                log.warning("the journal cannot be read: no job resumed now")
            with self._cond:  # a lane's bench may be over, a fault cleared
                self._cond.notify_all()
            try:  # an acknowledgement whose callback was lost still ends in DONE
                self.pipeline.sweep_returns()
            except Exception:
                log.exception("settling acknowledged returns failed")

    def refresh(self) -> StationSnapshot:
        """Look at the devices now: every printer that is not making a card (a printer at
        work keeps its last look; its own lane looks at it between steps), the readers, the
        key service and the journal."""
        with self._refresh_lock:
            cfg = self.station.config
            had_problems = {lane.name: bool(lane.snapshot.problems) for lane in self.lanes}
            looked: set[str] = set()
            for lane in self.lanes:
                if lane.lock.acquire(blocking=False):  # never in the middle of another's job
                    try:
                        lane.snapshot = self._look_at_printer(lane)
                        looked.add(lane.name)
                    finally:
                        lane.lock.release()
            station_devices = self._look_at_readers(cfg, looked)
            if cfg.keys.service == "hsm":
                station_devices.append(self._look_at_hsm(cfg.keys.hsm_address))
            station_devices.append(self._look_at_journal())
            snap = StationSnapshot(at=time.time(), lanes=[lane.snapshot for lane in self.lanes])
            for lane in self.lanes:
                ls = lane.snapshot
                ls.problems = [(lane.label(d.name), Fault(d.reason_code, d.fault, d.remedy))
                               for d in (ls.printer, ls.encoder)
                               if d.status in ("FAULT", "DISCONNECTED")]
                ls.problems += [(lane.label(device), problem)
                                for device, problem in _ribbon_problems(ls)]
                if had_problems[lane.name] and not ls.problems:
                    lane.bench_fault = None  # the operator cleared its fault: back in the draw
            snap.devices = [d for lane in self.lanes
                            for d in (lane.snapshot.printer, lane.snapshot.encoder)]
            snap.devices += station_devices
            snap.station_problems = [(d.name, Fault(d.reason_code, d.fault, d.remedy))
                                     for d in station_devices
                                     if d.status in ("FAULT", "DISCONNECTED")]
            changed = snap.key() != self.snapshot.key()
            self.snapshot = snap
        if changed:
            with self._cond:
                self._cond.notify_all()
            self.events.notify_station()
            if self.on_snapshot is not None:
                self.on_snapshot(snap)
        return snap

    def _look_at_readers(self, cfg: Any, looked: set[str]) -> list[DeviceSnapshot]:
        """The encoders of the lanes just looked at (into their snapshots) and the PSAM's
        reader (returned, with the other station-wide devices)."""
        station: list[DeviceSnapshot] = []
        wanted: list[tuple[DeviceSnapshot, str, str]] = []
        for lane in self.lanes:
            if lane.name in looked:
                lane.snapshot.encoder = lane.device("encoder", lane.part.encoder)
                wanted.append((lane.snapshot.encoder, lane.part.encoder, "encoder"))
        if cfg.keys.service == "psam":
            psam = DeviceSnapshot("psam", cfg.readers.psam, "READY")
            station.append(psam)
            wanted.append((psam, cfg.readers.psam, "psam"))
        try:
            with PcscContext() as ctx:
                for device, pattern, role in wanted:
                    try:
                        device.address = ctx.find_reader(pattern)
                    except PcscError as exc:
                        problem = fault_of(exc)
                        if role == "psam":
                            problem = fault("KEY_SERVICE_UNAVAILABLE", problem.cause)
                        device.set_fault("DISCONNECTED", problem)
        except PcscError as exc:
            for device, _pattern, _role in wanted:
                device.set_fault("DISCONNECTED", fault_of(exc))
        return station

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

    def _look_at_printer(self, lane: LaneRunner) -> LaneSnapshot:
        """The lane's printer and supplies (its encoder is looked at with the readers)."""
        snap = LaneSnapshot(lane.name, lane.device("printer", lane.part.device),
                            lane.snapshot.encoder)
        try:
            self._read_printer(lane, snap)
        except PrinterFault:
            try:  # after a replug the old connection is dead: reconnect, look again
                lane.part.printer.reconnect()
                self._read_printer(lane, snap)
            except Exception as exc:  # still unplugged: the next refresh tries again
                snap.printer.set_fault("DISCONNECTED", fault_of(exc))
        return snap

    def _read_printer(self, lane: LaneRunner, snap: LaneSnapshot) -> None:
        printer = lane.part.printer
        status = printer.status()
        blocking = [a for a in status.alerts if a.blocks]  # "cards low" informs, blocks nothing
        if blocking:
            alert = blocking[0]
            which = "printer" if lane.single else f"printer {lane.name}"
            snap.printer.set_fault("FAULT", Fault(alert.code, f"{which}: {alert.cause}",
                                                  alert.remedy), alert.vendor_code)
        elif status.busy:
            snap.printer.status = "BUSY"
        ribbon = printer.ribbon()
        snap.ribbon_type = ribbon.type_name
        snap.ribbon_remaining = -1 if ribbon.remaining is None else ribbon.remaining
        snap.ribbon_chip_present = ribbon.chip_present
        snap.ribbon_capacity = -1 if ribbon.capacity is None else ribbon.capacity
        snap.print_count = printer.print_count()


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


def _ribbon_problems(snap: LaneSnapshot) -> list[tuple[str, Fault]]:
    """Ribbon faults the printer's alerts may not show yet (they only stop a print)."""
    printer = snap.printer
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
