"""The issuance pipeline: one card as one durable job (DESIGN.md "One issuance, end to end").

States, each committed to the journal before the next step starts:
FETCHED -> PREVIEWED -> FED -> CHIP_WRITTEN -> VERIFIED -> RETURN_QUEUED -> PRINTED -> EJECTED
-> DONE, with REJECTED (card to the reject box, reason kept) and FAILED (needs an operator;
resumable) as exits. The return record enters the outbox in the same transaction as
VERIFIED -> RETURN_QUEUED; a worker delivers it while printing goes on. DONE means the card is
made AND the CMS acknowledged its return: an ejected card whose return is not yet acknowledged
stays EJECTED ("made, do not hand over") and becomes DONE when the ack arrives, or FAILED
(RETURN_REFUSED) if the CMS refuses it for good.

The printer's count is journaled with RETURN_QUEUED, before any print. EJECTED and DONE share
one commit (each still its own event) when the CMS has acknowledged the return by the time the
card is out: nothing follows EJECTED then. Work that needs no device runs beside the device's:
the preview is drawn while the card is fed, the face to print while VERIFIED and RETURN_QUEUED
commit.

One card per applicant: at most one live issuance (not DONE or REJECTED) per ID number, and a
second card for a person whose card was made or fed is an explicit re-make.

Resuming (after a crash or from FAILED) never trusts memory: a card that may be in the printer is
brought to the contact station and its chip is read before anything else is done to it; a card
the operator put back into the feed slot after a jam is fed and recognised by its chip.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cardstation.drivers.pcsc.errors import (
    CardStatusError,
    CardWaitTimeout,
    PcscError,
    UnresponsiveCard,
)
from cardstation.drivers.pcsc.ssc import ITEMS, decode_value
from cardstation.drivers.pcsc.transport import ApduTransport
from cardstation.drivers.redaction import mask_id_number

from .chip import (
    CertificateKeyMismatch,
    ChipBelongsToAnotherHolder,
    ChipCertificateDiffers,
    ChipSession,
    ChipVerificationFailed,
)
from .face import FaceData, FaceDoesNotFit, render_preview, render_print, save_preview
from .faults import REMEDY_CABLES, STORAGE_CODES, Action, Fault, fault, fault_of
from .journal import (
    TERMINAL,
    IllegalTransition,
    Issuance,
    Journal,
    JournalError,
    LiveIssuanceExists,
    State,
    Step,
    StorageFault,
)
from .keys.service import KeyService, KeyServiceError
from .model import Application, ReturnRecord
from .outbox import Outbox, OutboxEntry, OutboxStatus
from .ports.cms import Cms, CmsError
from .ports.printer import IN_PRINTER, CardPosition, CardPrinter, PrinterFault
from .rules import DEFAULT_PHOTO_SPEC, PhotoSpec
from .validation import validate_application

log = logging.getLogger(__name__)

# Where the card is for each state a job can be resumed in.
_CARD_IN_PRINTER = {State.FED, State.CHIP_WRITTEN, State.VERIFIED, State.RETURN_QUEUED,
                    State.PRINTED}
#: States after which the chip carries this job's data (a card fed on resume must be this one).
_CHIP_BOUND = {State.CHIP_WRITTEN, State.VERIFIED, State.RETURN_QUEUED, State.PRINTED}
#: Faults that mean the card itself is unusable: it goes to the reject box (before a return is
#: queued; a card whose return is queued is never rejected without the operator).
_CARD_IS_BAD = frozenset({"CHIP_POWER_ON_FAILED", "CHIP_DAMAGED", "CHIP_REFUSED",
                          "CHIP_AUTHENTICATION_FAILED", "CHIP_BELONGS_TO_ANOTHER_HOLDER",
                          "VERIFICATION_FAILED", "CHIP_CERTIFICATE_DIFFERS"})
#: Parsed applications kept (Pipeline._application): the card in the devices, the next one
#: being prepared, and a little slack.
_APPLICATIONS_KEPT = 4
#: States from which a card was fed: a later card for the applicant is an explicit re-make.
_FED_OR_LATER = frozenset({State.FED, State.CHIP_WRITTEN, State.VERIFIED, State.RETURN_QUEUED,
                           State.PRINTED, State.EJECTED, State.DONE})


class IssuanceError(RuntimeError):
    """A step or request failed: `fault` carries the stable reason code, cause and remedy."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.message)
        self.fault = fault
        self.reason = fault.code


class ReprintRefused(IssuanceError):
    pass


class StorageHeld(IssuanceError):
    """A storage fault stopped the job and its FAILED state could not be written either.
    `outcome` is the job as it now is (FAILED, the fault's reason), kept in memory until the
    store takes it (`Pipeline.record_held`); `outcome.failed_from` is the state the journal
    holds. Its card stays where it is: nothing may feed another card until then."""

    def __init__(self, problem: Fault, outcome: Issuance) -> None:
        super().__init__(problem)
        self.outcome = outcome


#: Reason codes of storage faults: a job stopped by one resumes by itself once the store
#: can be written (`Pipeline.resume_after_storage`).
STORAGE_REASONS = frozenset(STORAGE_CODES.values())


class IssuanceExists(IssuanceError):
    """The applicant already has a card job (`existing`): one card per person."""

    def __init__(self, fault: Fault, existing: Issuance) -> None:
        super().__init__(fault)
        self.existing = existing


@dataclass
class Devices:
    """What the pipeline drives. `open_encoder` connects to the card in the encoder;
    `wait_for_card` blocks until the encoder reader reports a card (or raises)."""

    printer: CardPrinter
    open_encoder: Callable[[], ApduTransport]
    wait_for_card: Callable[[float], None]
    wait_for_removal: Callable[[float], None]
    keys: KeyService
    settle_time: float = 1.0  # how long a fresh chip may stay silent before power-on fails


#: on_event(issuance, message, fault, committed): every committed step (committed True: the
#: message announces the journal event just written, at `issuance.updated_at`) and every
#: operator-facing notice (committed False: nothing new in the journal).
EventSink = Callable[[Issuance, str, "Fault | None", bool], None]
#: Admission: the fault that stops the station from making a card now, or None.
Admission = Callable[[], Fault | None]

#: The automatic rules that move a job on without a call (each is audited by the server):
#: a job parked or cut off by a stop is resumed at the next start; a job FAILED on a refused
#: return becomes DONE once the CMS acknowledges a resent return.
RULE_RESTART_RECOVERY = "restart-recovery"
RULE_RETURN_ACKNOWLEDGED = "return-acknowledged"
RULE_STORAGE_RECOVERED = "storage-recovered"
#: a job whose printer faulted before the card was fed (its chip untouched) goes back to the
#: queue for another printer of the station
RULE_LANE_HANDOFF = "lane-handoff"


class ApplicantLocks:
    """One admission at a time per applicant (and per request id), so two callers never both
    reach the CMS. Shared by the pipelines of every printer of a station."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> threading.Lock:
        # kept for the process's life: a few bytes per applicant, and never dropped while
        # another thread is about to take it
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


class Pipeline:
    def __init__(
        self,
        journal: Journal,
        outbox: Outbox,
        cms: Cms,
        devices: Devices,
        data_dir: Path,
        photo_spec: PhotoSpec = DEFAULT_PHOTO_SPEC,
        on_event: EventSink | None = None,
        after_commit: Callable[[State], None] | None = None,
        wake_returns: Callable[[], None] | None = None,
        storage_reserve: int = 0,
        lane: str = "1",
        applicant_locks: ApplicantLocks | None = None,
    ) -> None:
        self.journal = journal
        self.lane = lane  # the printer (lane) this pipeline drives; recorded with each card fed
        self.outbox = outbox
        self.cms = cms
        self.devices = devices
        self.data_dir = Path(data_dir)
        self.photo_spec = photo_spec
        self.on_event = on_event
        self.after_commit = after_commit  # test hook (crash drill): called after each commit
        self.wake_returns = wake_returns
        #: bytes that must be free on the journal's disk before a job is claimed at the CMS
        self.storage_reserve = storage_reserve
        # Told (issuance, rule) when an automatic rule, not a call, takes a job out of FAILED
        # (the server audits it); see the RULE_ names.
        self.on_rule: Callable[[Issuance, str], None] | None = None
        self._session: ChipSession | None = None
        self._transport: ApduTransport | None = None
        self.apdus = 0
        # Set on shutdown: the job stops after the step in progress (already committed) and
        # is resumed from the journal at the next start. A step is never cut in half.
        self.park = threading.Event()
        self._applicant_locks = applicant_locks or ApplicantLocks()
        # Each step needs the job's application, which never changes once the job is open:
        # parsed once per job (the photo's base64 is decoded once), for the few jobs in flight.
        self._applications: dict[str, Application] = {}
        self._applications_guard = threading.Lock()
        #: (job, the printer's count) journaled with its return just now, for its print
        self._counted: tuple[str, int] | None = None
        #: the preview being drawn for the job about to be fed: (job, its file, done)
        self._preview_pending: tuple[str, Path, Future[None]] | None = None
        #: the face being rendered ahead for the job about to print: (job, face, its side)
        self._ahead: tuple[str, FaceData, Future[Any]] | None = None
        #: the job this pipeline printed just now: its card is at the print position
        self._printed: str | None = None

    # -- public ---------------------------------------------------------------------------
    def create(self, id_number: str | None = None, application: Application | None = None,
               client_request_id: str | None = None, *, admission: Admission | None = None,
               remake_of: str | None = None, remake_reason: str = "") -> Issuance:
        """FETCHED (see `open`); the issuance only."""
        return self.open(id_number, application, client_request_id, admission=admission,
                         remake_of=remake_of, remake_reason=remake_reason)[0]

    def open(self, id_number: str | None = None, application: Application | None = None,
             client_request_id: str | None = None, *, admission: Admission | None = None,
             remake_of: str | None = None, remake_reason: str = "") -> tuple[Issuance, bool]:
        """Open the applicant's card job: (issuance, created).

        An application fetched from the CMS by ID number, or pushed complete by an upstream
        caller; either way it is claimed at the CMS before the job exists. One card per
        applicant: a request id seen before returns its job; an applicant with a live job gets
        that job when no request id is given and IssuanceExists (naming it) when another id
        is; a person whose card was made (or fed and rejected) gets a new card only through
        `remake_of`, the earlier job's id, with a reason (the caller audits it). `admission`
        is asked before anything irreversible (the CMS claim): a fault refuses the request.
        """
        id_number = application.id_number if application is not None else id_number
        if not id_number:
            raise ValueError("give an ID number or a complete application")
        # The request id's lock first (always in this order): calls with one id for two people
        # must not both pass the lookup and claim both at the CMS.
        with self._request_lock(client_request_id), self._applicant_lock(id_number):
            if client_request_id:
                known = self.journal.find_by_request_id(client_request_id)
                if known is not None:
                    other = _other_application(known, id_number, application)
                    if other:
                        raise IssuanceExists(fault(
                            "REQUEST_ID_REUSED", f"request id {client_request_id!r} belongs to "
                            f"job {known.id[:8]} of {other}"), known)
                    return known, False
            live = self.journal.live_for(id_number)
            if live is not None:
                if not client_request_id:
                    return live, False
                raise IssuanceExists(fault("APPLICANT_HAS_LIVE_JOB",
                                           f"job {live.id[:8]} ({live.state.value})"), live)
            if admission is not None:
                refused = admission()
                if refused is not None:
                    raise IssuanceError(refused)
            if application is None:
                application = self.cms.fetch(id_number)
            restore = self._check_remake(application, remake_of, remake_reason)
            self.check_storage()  # the claim below is irreversible: the job must be recordable
            if restore:  # the CMS holds the spoiled card's return: 恢复申请 first
                self.cms.restore(id_number)
            self.cms.claim(application.id_number)
            try:
                issuance, created = self.journal.open_issuance(
                    application.to_dict(), application.id_number, client_request_id)
            except StorageFault as exc:
                raise IssuanceError(self._release_claim(application.id_number, exc)) from None
            except LiveIssuanceExists as exc:  # another station process won the race
                if client_request_id:
                    raise IssuanceExists(fault("APPLICANT_HAS_LIVE_JOB", f"job "
                                               f"{exc.existing.id[:8]}"), exc.existing) from None
                return exc.existing, False
            if created and remake_of:
                issuance = self.journal.update_data(
                    issuance.id, {"remake_of": remake_of, "remake_reason": remake_reason},
                    f"re-make of job {remake_of[:8]}: {remake_reason}")
        if created:
            self._emit(issuance, "application fetched from the CMS and claimed for this "
                       "station", committed=True)
        return issuance, created

    def check_storage(self, timeout: float = 1.0) -> None:
        """IssuanceError (STORAGE_FULL / STORAGE_UNAVAILABLE) unless a commit succeeds now
        with `storage_reserve` bytes to spare."""
        try:
            self.journal.check_writable(self.storage_reserve, timeout)
        except StorageFault as exc:
            raise IssuanceError(fault_of(exc)) from None

    def _release_claim(self, id_number: str, exc: StorageFault) -> Fault:
        """The job could not be recorded after the CMS claim: release the claim (恢复申请
        puts a claimed application back to ready), so the applicant is not stranded at this
        station. The fault says which happened."""
        problem = fault_of(exc)
        try:
            self.cms.restore(id_number)
        except CmsError as release_error:
            log.error("CMS claim of %s kept after a journal failure: %s",
                      mask_id_number(id_number), release_error)
            note = ("the application stays claimed by this station at the CMS (releasing it "
                    f"failed: {release_error}); make the card here again once the journal can "
                    "be written (the claim is reused)")
        else:
            log.warning("CMS claim of %s released after a journal failure",
                        mask_id_number(id_number))
            note = "the CMS claim was released; make the card again once the journal can be " \
                   "written"
        return Fault(problem.code, f"{problem.cause}; {note}", problem.remedy, ())

    def _check_remake(self, application: Application, remake_of: str | None,
                      reason: str) -> bool:
        """Refuse an accidental second card; True when a re-make must restore the application
        at the CMS first (the earlier card's return reached it)."""
        earlier = [i for i in self.journal.history_for(application.id_number)
                   if i.application.get("card_number") == application.card_number
                   and _card_was_made_or_fed(i)]
        if not earlier:
            if remake_of:
                raise IssuanceError(fault("REMAKE_NOT_NEEDED"))
            return False
        last = earlier[0]
        if remake_of is None:
            if last.state is State.DONE and not last.data.get("spoiled"):
                raise IssuanceExists(fault("CARD_ALREADY_MADE_HERE", f"job {last.id[:8]}"),
                                     last)
            raise IssuanceExists(fault("REMAKE_REQUIRED", f"job {last.id[:8]} "
                                       f"({last.state.value}, {last.reason or 'card fed'})"),
                                 last)
        if remake_of != last.id:
            raise IssuanceError(fault("REMAKE_OF_WRONG_JOB", f"the applicant's last card was "
                                      f"job {last.id[:8]}"))
        if not reason.strip():
            raise IssuanceError(fault("REMAKE_REASON_REQUIRED"))
        if last.state is State.DONE and not last.data.get("spoiled"):
            raise IssuanceError(fault("REMAKE_OF_GOOD_CARD", f"job {last.id[:8]}"))
        entry = self.outbox.get(last.id)
        return entry is not None and entry.status is OutboxStatus.DELIVERED

    def _applicant_lock(self, id_number: str) -> threading.Lock:
        return self._applicant_locks.get(id_number)

    def _request_lock(self, client_request_id: str | None) -> AbstractContextManager[Any]:
        if not client_request_id:
            return contextlib.nullcontext()
        return self._applicant_lock(f"request-id:{client_request_id}")

    def prepare(self, id_number: str, client_request_id: str | None = None) -> Issuance:
        """Fetch, claim and preview: the steps that touch no device. Safe to run on another
        thread while the devices work on the previous card (see run_batch)."""
        issuance = self.create(id_number, client_request_id=client_request_id)
        if issuance.state is State.FETCHED:
            issuance = self._step(issuance)
        return issuance

    def run_batch(self, id_numbers: list[str], prefetch: bool = True,
                  request_id_prefix: str | None = None) -> list[Issuance]:
        """Make one card per ID number. With `prefetch`, the next application is fetched and
        previewed while the printer works on the current card, so the printer never waits
        for the CMS. Returns the issuances of the cards that started (a card whose application
        cannot be fetched is logged and skipped)."""
        def request_id(id_number: str) -> str | None:
            if not request_id_prefix:
                return None
            # opaque: a request id is stored and shown, a full ID number must not be
            return f"{request_id_prefix}{hashlib.sha256(id_number.encode()).hexdigest()[:16]}"

        results: list[Issuance] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as pool:
            upcoming = None
            for index, id_number in enumerate(id_numbers):
                try:
                    if upcoming is not None:
                        issuance = upcoming.result()
                    else:
                        issuance = self.prepare(id_number, request_id(id_number))
                except (CmsError, IssuanceError, ValueError) as exc:  # this card cannot start
                    log.error("card for %s not started: %s", mask_id_number(id_number), exc)
                    issuance = None
                upcoming = None
                if prefetch and index + 1 < len(id_numbers):
                    following = id_numbers[index + 1]
                    upcoming = pool.submit(self.prepare, following, request_id(following))
                if issuance is not None:
                    results.append(self.run(issuance.id))
        return results

    def issue(self, id_number: str, client_request_id: str | None = None) -> Issuance:
        return self.run(self.create(id_number, client_request_id=client_request_id).id)

    def run(self, issuance_id: str) -> Issuance:
        """Drive one issuance from its journal state to DONE, REJECTED or FAILED, or to
        EJECTED while its return waits for the CMS (DONE follows the acknowledgement).
        A FAILED job is returned as it is: only `resume` (the operator's audited call) and
        the storage rule (`resume_after_storage`, audited too) move it on. A storage fault ends
        it FAILED (STORAGE_FULL / STORAGE_UNAVAILABLE), or raises StorageHeld when even that
        cannot be written."""
        issuance = self.journal.get(issuance_id)
        if issuance.state is State.FAILED:
            return issuance  # a stray or repeated run must not resume it unasked
        return self._drive(issuance, "")

    def resume(self, issuance_id: str) -> Issuance:
        """The operator's ResumeIssuance (an audited call): a FAILED job goes on from where it
        stopped, then as `run`. Nothing else takes a job out of FAILED by resuming it, but the
        storage rule below."""
        return self._drive(self.journal.get(issuance_id), "resumed by the operator")

    def resume_after_storage(self, issuance_id: str) -> Issuance:
        """The automatic rule: a job that a storage fault stopped resumes once the store can
        be written (the caller checks that), recorded as such in its events and told to
        `on_rule` (the server audits it). Any other job is returned as it is (the operator
        resumed or ended it meanwhile)."""
        issuance = self.journal.get(issuance_id)
        if issuance.state is not State.FAILED or \
                issuance.data.get("reason_code") not in STORAGE_REASONS:
            return issuance
        if self.on_rule is not None:
            self.on_rule(issuance, RULE_STORAGE_RECOVERED)
        return self._drive(issuance, "resumed automatically: the journal can be written again")

    def _drive(self, issuance: Issuance, resumed_by: str) -> Issuance:
        try:
            if issuance.state is State.FAILED:
                issuance = self._resume_failed(issuance, resumed_by)
            elif issuance.state in _CARD_IN_PRINTER:
                issuance = self._reacquire(issuance)  # after a crash: read the card first
            while issuance.state not in (State.DONE, State.REJECTED, State.FAILED):
                if self.park.is_set():
                    self._emit(issuance, "parked for shutdown; resumes at the next start")
                    break
                if issuance.state is State.EJECTED:
                    issuance = self.settle_return(issuance.id)
                    break  # DONE, FAILED, or waiting for the CMS with the card out
                issuance = self._step(issuance)
        except StorageFault as exc:
            issuance = self._storage_failed(issuance, exc)
        finally:
            self._close_chip()
        return issuance

    def _storage_failed(self, issuance: Issuance, exc: StorageFault) -> Issuance:
        """A journal or file error stopped the job: FAILED with the storage fault, from the
        state the journal holds, with the card left where it is (the resume reads it again).
        When the FAILED state cannot be written either, StorageHeld carries it instead."""
        self._close_chip()
        problem = fault_of(exc)
        log.error("issuance %s stopped: %s", issuance.id[:8], problem.cause)
        try:
            current = self.journal.get(issuance.id)  # reads often work when writes do not
        except StorageFault:
            current = issuance
        if current.state is State.FAILED or current.state in TERMINAL:
            self._emit(current, f"not changed: {problem.message}", problem)  # a resume failed
            return current
        data = _fault_data(problem, current.state)
        try:
            return self._transition(current, State.FAILED, problem.message, data,
                                    fault=problem, expect=current.state)
        except StorageFault:
            outcome = replace(current, state=State.FAILED, failed_from=current.state,
                              reason=problem.message, data={**current.data, **data})
            self._emit(outcome, problem.message, problem)
            raise StorageHeld(problem, outcome) from None

    def hand_off(self, issuance_id: str) -> Issuance | None:
        """The lane rule: a job that failed while its card was being fed (the chip not touched:
        FAILED from PREVIEWED) goes back to PREVIEWED, for another printer to make. Told to
        `on_rule` (the server audits it). None when the job is not such a job any more."""
        issuance = self.journal.get(issuance_id)
        if issuance.state is not State.FAILED or issuance.failed_from is not State.PREVIEWED \
                or issuance.data.get("reason_code") in STORAGE_REASONS:
            return None
        cause = issuance.reason
        notice = fault("LANE_HANDOFF", f"printer {self.lane}: {cause}")
        try:
            issuance = self._transition(
                issuance, State.PREVIEWED, f"printer {self.lane} could not feed the card "
                f"({cause}); the job goes to another printer", {**_CLEARED, "lane": ""},
                fault=notice, expect=State.FAILED)
        except IllegalTransition:
            return None
        if self.on_rule is not None:
            self.on_rule(issuance, RULE_LANE_HANDOFF)
        return issuance

    def record_held(self, held: StorageHeld) -> Issuance:
        """Write a held outcome now that the store may take it (StorageFault if it still
        cannot). A job the journal no longer holds where it stopped is left as it is."""
        outcome = held.outcome
        current = self.journal.get(outcome.id)
        if current.state is State.FAILED or current.state in TERMINAL:
            return current
        return self._transition(current, State.FAILED, outcome.reason,
                                _fault_data(held.fault, current.state), fault=held.fault,
                                expect=current.state)

    def recover(self) -> list[Issuance]:
        """Resume every unfinished issuance, oldest first (station start-up)."""
        return [self.run(i.id) for i in self.journal.unfinished()
                if i.state is not State.FAILED]

    def reprint(self, issuance_id: str) -> Issuance:
        """补打卡面: feed the card put back, read its chip, refuse another holder's, print."""
        issuance = self.journal.get(issuance_id)
        if issuance.state not in (State.DONE, State.EJECTED):
            raise ReprintRefused(fault("REPRINT_NOT_MADE", f"it is {issuance.state.value}"))
        if issuance.purged_at is not None:  # retention removed the face's data
            raise ReprintRefused(fault("REPRINT_DATA_PURGED"))
        try:
            self._feed()
            session = self._chip_session()
            holder = session.holder_id_number()
            if holder != issuance.id_number:
                self._move_away("eject")
                raise ReprintRefused(fault("REPRINT_WRONG_CARD"))
            self._print(issuance)
            self._move_away("eject")
        finally:
            self._close_chip()
        return self.journal.update_data(
            issuance.id, {"reprints": issuance.data.get("reprints", 0) + 1}, "face reprinted"
        )

    # -- the return (数据回盘) and DONE ------------------------------------------------------
    def settle_return(self, issuance_id: str) -> Issuance:
        """An ejected card becomes DONE when the CMS has acknowledged its return, FAILED
        (RETURN_REFUSED) when the CMS refused it for good; otherwise it waits, "made, do not
        hand over". A job that failed on a refused return and whose return was then delivered
        (a retry after the CMS was corrected) becomes DONE too. Called after ejecting, by the
        return worker after each delivery and by the monitor's sweep; safe from all at once
        (every change is conditional on the state it was decided on)."""
        issuance = self.journal.get(issuance_id)
        entry = self.outbox.get(issuance_id)
        delivered = entry is not None and entry.status is OutboxStatus.DELIVERED
        try:
            if (issuance.state is State.FAILED and issuance.failed_from is State.EJECTED
                    and delivered):
                issuance = self._transition(issuance, State.EJECTED, "the CMS now has the "
                                            "data return", _CLEARED, expect=State.FAILED)
                if self.on_rule is not None:
                    self.on_rule(issuance, RULE_RETURN_ACKNOWLEDGED)
            if issuance.state is not State.EJECTED:
                return issuance
            if delivered:
                assert entry is not None
                return self._transition(issuance, State.DONE, _done_message(entry), _CLEARED,
                                        expect=State.EJECTED)
            if entry is not None and entry.refused:
                # the CMS's own wording is a cause; the remedy is the station's way out
                refused = fault("RETURN_REFUSED", entry.last_error.partition(" — ")[0])
                return self._transition(issuance, State.FAILED, refused.message,
                                        _fault_data(refused, State.EJECTED), fault=refused,
                                        expect=State.EJECTED)
            if not issuance.data.get("awaiting_return"):
                pending = fault("RETURN_PENDING")
                issuance = self.journal.update_data(
                    issuance_id, {"awaiting_return": True, **_fault_data(pending)},
                    pending.message, expect=State.EJECTED)
                self._emit(issuance, pending.message, pending, committed=True)
        except IllegalTransition:  # another caller settled it first
            issuance = self.journal.get(issuance_id)
        return issuance

    def sweep_returns(self) -> list[Issuance]:
        """Settle every job whose return is delivered but which is not DONE yet (a delivery
        callback that was lost, a restart between the ack and the settle)."""
        settled = []
        for state in (State.EJECTED, State.FAILED):
            for issuance in self.journal.issuances(state=state, limit=500):
                if state is State.FAILED and issuance.failed_from is not State.EJECTED:
                    continue
                entry = self.outbox.get(issuance.id)
                if entry is not None and entry.status is OutboxStatus.DELIVERED:
                    settled.append(self.settle_return(issuance.id))
        return settled

    def note_return_attempt(self, entry: OutboxEntry) -> None:
        """A delivery attempt failed: tell the job's watchers (the card must not be handed
        over) when the error is new, and settle the job if the CMS refused for good."""
        try:
            issuance = self.journal.get(entry.issuance_id)
        except JournalError:
            return
        if entry.status is OutboxStatus.FAILED:
            self.settle_return(entry.issuance_id)
            return
        if issuance.data.get("return_error") == entry.last_error:
            return
        note = fault("RETURN_PENDING", f"attempt {entry.attempts}: "
                     f"{entry.last_error.partition(' — ')[0]}")
        try:
            issuance = self.journal.update_data(issuance.id, {"return_error": entry.last_error},
                                                note.message, expect=issuance.state)
        except IllegalTransition:
            return  # it moved on meanwhile; the next attempt tells again if need be
        self._emit(issuance, note.message, note, committed=True)

    def restore_and_resend(self, issuance_id: str) -> Issuance:
        """恢复申请 + 失败数据回盘: restore the application at the CMS, then send the refused
        return again; DONE follows the acknowledgement. Only for a made card whose return the
        CMS refused, and only while it is the applicant's latest job (restoring for an older
        card would wipe a newer card's return at the CMS)."""
        issuance = self.journal.get(issuance_id)
        entry = self.outbox.get(issuance_id)
        refused_job = issuance.state is State.FAILED and issuance.failed_from is State.EJECTED
        waiting = issuance.state is State.EJECTED
        if entry is None or not entry.refused or not (refused_job or waiting):
            raise IssuanceError(fault("NOTHING_TO_RESEND", f"the job is "
                                      f"{issuance.state.value}"))
        latest = self.journal.history_for(issuance.id_number, limit=1)
        if latest and latest[0].id != issuance.id:
            raise IssuanceError(fault("NOTHING_TO_RESEND", f"job {latest[0].id[:8]} is the "
                                      "applicant's latest card"))
        self.cms.restore(issuance.id_number)
        try:
            if refused_job:
                issuance = self._transition(issuance, State.EJECTED, "application restored at "
                                            "the CMS (恢复申请); the data return is sent again",
                                            {**_CLEARED, "awaiting_return": True},
                                            expect=State.FAILED)
        except IllegalTransition:  # a second click: the first one did it
            return self.journal.get(issuance_id)
        self.outbox.retry_now([entry.id])
        if self.wake_returns is not None:
            self.wake_returns()
        return issuance

    # -- operator endings ---------------------------------------------------------------------
    def reject_card(self, issuance_id: str, spoiled: bool = False) -> Issuance:
        """退卡 / 废卡: end a job that needs the operator. Its card, if still in the printer,
        goes to the reject box. A finished card marked spoiled keeps DONE and is flagged, so
        a re-make is allowed."""
        issuance = self.journal.get(issuance_id)
        ending = fault("CARD_SPOILED" if spoiled else "CARD_REJECTED_BY_OPERATOR")
        if issuance.state is State.DONE:
            if not spoiled:
                raise IssuanceError(fault("JOB_FINISHED", "it is DONE"))
            issuance = self.journal.update_data(issuance_id, {"spoiled": True, **_fault_data(
                ending)}, ending.message)
            self._emit(issuance, ending.message, ending, committed=True)
            return issuance
        if issuance.state is State.REJECTED:
            raise IssuanceError(fault("JOB_FINISHED", "it is REJECTED"))
        entry = self.outbox.get(issuance_id)
        note = ending.message
        if entry is not None and not self.outbox.withdraw(
                entry.id, f"withdrawn: the card was {'spoiled' if spoiled else 'rejected'}"):
            note += ("; the CMS holds this card's data return: a re-make restores the "
                     "application there (恢复申请) first")
        if issuance.state in _CARD_IN_PRINTER or issuance.failed_from in _CARD_IN_PRINTER:
            try:
                if self._card_in_printer():
                    self._move_away("reject")
            except PrinterFault as exc:
                problem = fault_of(exc)
                note += f"; the card could not be moved to the reject box ({problem.cause}): " \
                    "take it out of the printer by hand"
        return self._transition(issuance, State.REJECTED, note, _fault_data(ending),
                                fault=ending)

    # -- steps ----------------------------------------------------------------------------
    def _step(self, issuance: Issuance) -> Issuance:
        state = issuance.state
        started = time.perf_counter()
        try:
            if state is State.FETCHED:
                return self._preview(issuance)
            if state is State.PREVIEWED:
                self._feed()
                self._preview_saved(issuance)
                return self._commit(issuance, State.FED, started, "card fed to the chip station",
                                    {"lane": self.lane})
            if state is State.FED:
                written, data = self._write(issuance)
                return self._commit(issuance, State.CHIP_WRITTEN, started,
                                    f"{len(written)} items written",
                                    {"written": written, **data})
            if state is State.CHIP_WRITTEN:
                facts = self._verify(issuance)
                self._render_ahead(issuance, facts)  # while the next commits are written
                return self._commit(issuance, State.VERIFIED, started,
                                    "chip verified", {"chip": facts})
            if state is State.VERIFIED:
                return self._queue_return(issuance, started)
            if state is State.RETURN_QUEUED:
                return self._print_once(issuance, started)
            if state is State.PRINTED:
                # printed in this run: the card is where the print left it, no need to ask
                printed_here, self._printed = self._printed == issuance.id, None
                if printed_here or self._card_in_printer():
                    self._move_away("eject")
                return self._ejected(issuance, started)
        except IssuanceError as exc:
            return self._fail(issuance, exc.fault)
        except (PrinterFault, PcscError, CardStatusError, CmsError, KeyServiceError,
                ValueError) as exc:
            return self._fail(issuance, fault_of(exc))
        except StorageFault:
            raise  # the job's last recorded state is the caller's (run)
        except JournalError as exc:
            return self._fail(issuance, fault("STORAGE_ERROR", str(exc)))
        raise AssertionError(f"no step for state {state}")

    def _preview(self, issuance: Issuance) -> Issuance:
        started = time.perf_counter()
        app = self._application(issuance)
        findings = validate_application(
            app.id_number, name=app.name, card_number=app.card_number, photo=app.photo,
            photo_spec=self.photo_spec, birth_date=app.birth_date, sex=app.sex,
            nation=app.nation, region=app.birthplace, bank_name=app.bank_name,
        )  # fmt: skip
        if findings:
            text = "; ".join(f"{f.field}: {f.message}" for f in findings)
            stop = fault("PREVIEW_FINDINGS", text)
            return self._transition(issuance, State.REJECTED, stop.message,
                                    {"findings": [f.to_dict() for f in findings],
                                     **_fault_data(stop)}, fault=stop)
        preview = self.data_dir / "previews" / f"{issuance.id}.jpg"  # cheap: see save_preview
        # the findings above decide; the picture for the operator is drawn and saved on
        # another thread while the card is fed (_preview_saved waits for it before FED)
        face = face_data(app, None)
        saved: Future[None] = Future()

        def draw() -> None:
            try:
                save_preview(render_preview(face), preview)
                saved.set_result(None)
            except BaseException as exc:
                saved.set_exception(exc)

        self._preview_pending = (issuance.id, preview, saved)
        threading.Thread(target=draw, name=f"preview-{self.lane}", daemon=True).start()
        return self._commit(issuance, State.PREVIEWED, started, "preview rendered",
                            {"preview": str(preview)})

    def _preview_saved(self, issuance: Issuance) -> None:
        """The job's preview file is written (StorageFault when it could not be): the one
        drawn meanwhile, or, for a job resumed after a restart that cut it off, drawn now."""
        pending, self._preview_pending = self._preview_pending, None
        preview = Path(issuance.data.get("preview") or
                       self.data_dir / "previews" / f"{issuance.id}.jpg")
        try:
            if pending is not None and pending[0] == issuance.id:
                pending[2].result()
            elif not preview.exists():
                save_preview(render_preview(face_data(self._application(issuance), None)),
                             preview)
        except OSError as exc:  # a full disk, a read-only folder: the job waits for the store
            raise StorageFault.from_os_error(exc, preview) from exc

    def _feed(self) -> None:
        if not self._card_in_printer():
            # the last card must have left the encoder before the next arrives, or PC/SC could
            # still be describing the old one
            self.devices.wait_for_removal(5.0)
        self.devices.printer.move_to_contact()
        try:
            self.devices.wait_for_card(10.0)
        except CardWaitTimeout as exc:
            # the printer has the card at the contacts and PC/SC sees none: it is the encoder
            # (its own USB cable), not the card stock
            if self.devices.printer.card_position() is CardPosition.CONTACT:
                raise IssuanceError(Fault(
                    "ENCODER_NOT_CONNECTED", f"the card is at the chip station but the chip "
                    f"encoder does not see it ({exc})", REMEDY_CABLES,
                    (Action.RESUME, Action.REJECT_CARD))) from None
            raise

    def _write(self, issuance: Issuance) -> tuple[list[str], dict[str, Any]]:
        """The basic data, then (3rd generation) the certificates: the items written and what
        the journal keeps for the verification (the certificates, never the secrets)."""
        app = self._application(issuance)
        session = self._chip_session()
        assert session.profile is not None and session.facts is not None
        try:
            written = session.write(session.profile.values(app), app.id_number)
        except ChipBelongsToAnotherHolder as exc:
            raise IssuanceError(fault("CHIP_BELONGS_TO_ANOTHER_HOLDER", str(exc))) from None
        if not session.profile.certificates:
            return written, {}
        # after the basic data, as field kiosks do: the card's signing public key goes to the
        # CMS, which issues the certificates; they are written unless the chip has them
        public_key = session.read_sign_public_key()
        certs = self.cms.issue_certificates(app.id_number, session.facts.card_id_code,
                                            public_key)
        try:
            written += session.write_certificates(certs, public_key)
        except CertificateKeyMismatch as exc:
            raise IssuanceError(fault("CERTIFICATE_KEY_MISMATCH", str(exc))) from None
        except ChipCertificateDiffers as exc:
            raise IssuanceError(fault("CHIP_CERTIFICATE_DIFFERS", str(exc))) from None
        return written, {"certificates": {"sign_cert": certs.sign_cert.hex().upper(),
                                          "enc_cert": certs.enc_cert.hex().upper()}}

    def _verify(self, issuance: Issuance) -> dict[str, str]:
        app = self._application(issuance)
        session = self._chip_session()
        assert session.profile is not None and session.facts is not None
        values = session.profile.values(app)
        try:
            back = session.verify(values)
        except ChipVerificationFailed as exc:
            raise IssuanceError(fault("VERIFICATION_FAILED", str(exc))) from None
        # the face and the return carry what the chip holds: read-back values, not the job's
        facing = ["id_number", "name", "name_ext", "card_number"]
        missing = [item for item in facing if item not in back]
        if missing:
            back = {**back, **session.read_items(missing)}
        facts: dict[str, str] = {}
        if session.profile.certificates:
            expected = {name: bytes.fromhex(value)
                        for name, value in (issuance.data.get("certificates") or {}).items()}
            if not expected:
                raise IssuanceError(fault("VERIFICATION_FAILED", "the job has no record of "
                                          "the certificates written"))
            try:
                facts["sign_cert_serial"] = session.verify_certificates(expected)
            except ChipVerificationFailed as exc:
                raise IssuanceError(fault("VERIFICATION_FAILED", str(exc))) from None
        try:  # a key service with InnerAuth (the encryption machine) checks the chip is genuine
            session.check_genuine()
        except ChipVerificationFailed as exc:
            raise IssuanceError(fault("VERIFICATION_FAILED", str(exc))) from None
        pan = session.read_pan()
        return {
            **facts,
            "atr": session.facts.atr,
            "card_id_code": session.facts.card_id_code,
            "bank_account": pan,
            "id_number": decode_value(ITEMS["id_number"], back["id_number"]),
            "name": decode_value(ITEMS["name"], back["name"])
            + decode_value(ITEMS["name_ext"], back["name_ext"]),
            "card_number": decode_value(ITEMS["card_number"], back["card_number"]),
            "profile": session.facts.profile,
        }

    def _ejected(self, issuance: Issuance, started: float) -> Issuance:
        """EJECTED; and DONE in the same commit when the CMS has already acknowledged the
        return (as it usually has: it was queued before the print), else settle_return
        decides later."""
        entry = self.outbox.get(issuance.id)
        if entry is None or entry.status is not OutboxStatus.DELIVERED:
            return self._commit(issuance, State.EJECTED, started, "card in the output hopper")
        timings = dict(issuance.data.get("timings_ms", {}))
        timings[State.EJECTED.value] = round((time.perf_counter() - started) * 1000, 2)
        return self._commit_steps(issuance, [
            Step(State.EJECTED, "card in the output hopper", {"timings_ms": timings}),
            Step(State.DONE, _done_message(entry), _CLEARED)], expect=State.PRINTED)

    def _commit_steps(self, issuance: Issuance, steps: list[Step], *,
                      expect: State) -> Issuance:
        """Several transitions in one commit, each told to the watchers as its own step."""
        done = self.journal.transitions(issuance.id, steps, expect=expect)
        for step, issuance in zip(steps, done, strict=True):
            self._emit(issuance, step.reason, committed=True)
            if self.after_commit is not None:
                self.after_commit(step.to)
        return issuance

    def _render_ahead(self, issuance: Issuance, chip: dict[str, Any]) -> None:
        """Compose the face the chip's read-back gives, and the printer's panels of it, on
        another thread while the commit and the printer's count go on; `_print` takes it
        when the face it must print is this one (else it renders again)."""
        face = face_data(self._application(issuance), chip)
        side: Future[Any] = Future()
        printer = self.devices.printer

        def render() -> None:
            try:
                composed = render_print(face)
                printer.prepare_faces(composed)
                side.set_result(composed)
            except BaseException as exc:  # _print raises it, as rendering there would
                side.set_exception(exc)

        self._ahead = (issuance.id, face, side)
        threading.Thread(target=render, name=f"render-{self.lane}", daemon=True).start()

    def _return_record(self, issuance: Issuance, chip: dict[str, Any]) -> ReturnRecord:
        app = self._application(issuance)
        return ReturnRecord(
            card_number=chip["card_number"], id_number=chip["id_number"], name=chip["name"],
            issue_date=app.issue_date, expiry_date=app.expiry_date,
            card_id_code=chip["card_id_code"], atr=chip["atr"],
            bank_account=chip["bank_account"], batch=app.batch,
            sign_cert_serial=chip.get("sign_cert_serial", ""),
        )  # fmt: skip

    def _queue_return(self, issuance: Issuance, started: float) -> Issuance:
        """RETURN_QUEUED with the return record, and the printer's count: a print is never
        begun before its count is journaled, and the print step, next, needs no commit of its
        own (nor, in this run, to ask the printer again)."""
        record = self._return_record(issuance, issuance.data["chip"])
        try:
            counted: dict[str, Any] = {"print_count_before": self.devices.printer.print_count()}
        except PrinterFault:  # the return goes first; the print step asks again
            counted = {}
        issuance = self._commit(issuance, State.RETURN_QUEUED, started, "return queued",
                                counted, return_record=record.to_dict())
        if counted:
            self._counted = (issuance.id, counted["print_count_before"])
        if self.wake_returns is not None:
            self.wake_returns()
        return issuance

    def _print_once(self, issuance: Issuance, started: float) -> Issuance:
        """Print the face unless a print of this job already finished. The printer's print
        count is journaled before printing; a job resumed after a crash (or a lost cable)
        whose count has moved since was printed, and printing again would spoil the card."""
        # the count this pipeline journaled with the return, in this very run of the job (the
        # lane's printer has done nothing since); any other way here (a restart, a resume
        # after a failed print) asks the printer
        counted, self._counted = self._counted, None
        before = issuance.data.get("print_count_before")
        if counted is not None and counted == (issuance.id, before):
            count = before
        else:
            count = self.devices.printer.print_count()
        if before is not None and count > before:
            return self._commit(issuance, State.PRINTED, started,
                                "face already printed before the restart; not printed again")
        if count != before:  # journaled with the return unless the printer could not say
            issuance = self.journal.update_data(issuance.id, {"print_count_before": count},
                                                "printing")
        self._print(issuance)
        printed = self._commit(issuance, State.PRINTED, started, "face printed")
        self._printed = issuance.id  # only once it is journaled: a held commit may be long
        return printed

    def _print(self, issuance: Issuance) -> None:
        """Print from what the chip says (face-to-chip binding), photo from the application.
        The chip is unpowered first: printing moves the card off the contacts."""
        self._close_chip()
        app = self._application(issuance)
        face = face_data(app, issuance.data.get("chip"))
        # one side, the chip side, holder data only (the emblem side is pre-printed stock);
        # normally rendered already, since the chip was verified
        ahead, self._ahead = self._ahead, None
        try:
            if ahead is not None and ahead[0] == issuance.id and ahead[1] == face:
                side = ahead[2].result()
            else:
                side = render_print(face)
        except FaceDoesNotFit as exc:  # the chip's read-back no longer fits its box
            raise IssuanceError(fault("FACE_DOES_NOT_FIT", "; ".join(
                f.message for f in exc.findings))) from None
        self.devices.printer.print_faces(side)

    # -- resume ---------------------------------------------------------------------------
    def _resume_failed(self, issuance: Issuance, resumed_by: str) -> Issuance:
        resume = State(issuance.data.get("resume_from", State.FETCHED))
        issuance = self._transition(issuance, resume, resumed_by, _CLEARED,
                                    expect=State.FAILED)
        if resume in _CARD_IN_PRINTER:
            issuance = self._reacquire(issuance)
        return issuance

    def _reacquire(self, issuance: Issuance) -> Issuance:
        """A card may be in the printer, or back in the feed slot, in an unknown state: bring
        it to the contacts and read its chip before anything else. A job whose chip is
        written continues only with its own card (the same holder and card identification
        code); anything else goes to the reject box and the operator is asked for the card."""
        try:
            in_printer = self._card_in_printer()
            if not in_printer and issuance.state is State.PRINTED:
                return issuance  # it was ejected before the crash; the next step records it
            if not in_printer:
                self.devices.wait_for_removal(5.0)
            self.devices.printer.move_to_contact()  # feeds from the slot when none is inside
            self.devices.wait_for_card(10.0)
            session = self._chip_session()
            holder = session.holder_id_number()
            assert session.facts is not None
            card_id_code = session.facts.card_id_code
        except (PrinterFault, PcscError, CardStatusError) as exc:
            problem = fault_of(exc)
            if not in_printer and issuance.state in _CHIP_BOUND:
                problem = fault("CARD_NOT_IN_PRINTER", problem.cause)
            return self._fail(issuance, problem)
        except IssuanceError as exc:
            return self._fail(issuance, exc.fault)
        expected = (issuance.data.get("chip") or {}).get("card_id_code")
        bound = issuance.state in _CHIP_BOUND
        if holder and holder != issuance.id_number:
            wrong = fault("WRONG_CARD_FED", "its chip carries another holder's data")
        elif bound and (not holder or (expected and card_id_code != expected)):
            wrong = fault("WRONG_CARD_FED", "a blank card" if not holder else
                          "another card of the same holder")
        else:
            wrong = None
        if wrong is not None:
            try:
                self._move_away("reject")
            except PrinterFault:
                pass  # the fault below still asks for the right card
            return self._fail(issuance, wrong)
        self._emit(issuance, "the job's card is at the chip station and was read again; "
                   "continuing without rewriting the chip" if bound else
                   "card at the chip station read again; continuing")
        return issuance

    def _move_away(self, where: str) -> None:
        """Eject or reject the card — after closing the PC/SC connection to its chip: a card
        must never leave the contacts while the encoder holds it powered."""
        self._close_chip()
        getattr(self.devices.printer, where)()

    def _card_in_printer(self) -> bool:
        return self.devices.printer.card_position() in IN_PRINTER

    # -- plumbing -------------------------------------------------------------------------
    def _chip_session(self) -> ChipSession:
        if self._session is None:
            self._close_chip()  # a transport left by a session that failed to open
            transport = self.devices.open_encoder()
            self._transport = transport  # closed by _close_chip whatever happens next
            transport.observers.append(self._count_apdu)
            deadline = time.monotonic() + self.devices.settle_time
            while True:
                try:
                    transport.connect()
                    break
                except UnresponsiveCard:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.1)  # contacts settling (real stations wait ~0.5 s)
            self._session = ChipSession(transport, self.devices.keys)
            self._session.open()
        return self._session

    def _application(self, issuance: Issuance) -> Application:
        with self._applications_guard:
            app = self._applications.get(issuance.id)
        if app is None:
            app = Application.from_dict(issuance.application)
            with self._applications_guard:
                self._applications[issuance.id] = app
                while len(self._applications) > _APPLICATIONS_KEPT:
                    del self._applications[next(iter(self._applications))]  # the oldest
        return app

    def _count_apdu(self, _cmd: bytes, _resp: bytes) -> None:
        self.apdus += 1

    def _close_chip(self) -> None:
        if self._transport is not None:
            try:
                self._transport.close()  # unpowers the chip and releases the PC/SC context
            except PcscError:
                pass
        self._transport = None
        self._session = None

    def _commit(self, issuance: Issuance, to: State, started: float, message: str,
                data: dict[str, Any] | None = None,
                return_record: dict[str, Any] | None = None) -> Issuance:
        timings = dict(issuance.data.get("timings_ms", {}))
        timings[to.value] = round((time.perf_counter() - started) * 1000, 2)
        merged = {**(data or {}), "timings_ms": timings}
        return self._transition(issuance, to, message, merged, return_record)

    def _transition(self, issuance: Issuance, to: State, reason: str,
                    data: dict[str, Any] | None = None,
                    return_record: dict[str, Any] | None = None,
                    fault: Fault | None = None, expect: State | None = None) -> Issuance:
        issuance = self.journal.transition(issuance.id, to, reason=reason, data=data,
                                           return_record=return_record, expect=expect)
        self._emit(issuance, reason, fault, committed=True)
        if self.after_commit is not None:
            self.after_commit(to)
        return issuance

    def _fail(self, issuance: Issuance, problem: Fault) -> Issuance:
        """A card whose chip is bad goes to the reject box (REJECTED, re-make); any other
        fault leaves everything where it is for the operator (FAILED, resumable without
        rewriting the chip), with the actions that move the job on."""
        self._close_chip()
        if problem.code in _CARD_IS_BAD and self.outbox.get(issuance.id) is None:
            try:
                if self._card_in_printer():
                    self._move_away("reject")
            except PrinterFault as move_error:
                stuck = fault_of(move_error)
                problem = Fault(problem.code, f"{problem.cause}; the card could not be moved "
                                f"to the reject box ({stuck.cause})",
                                f"{stuck.remedy}; then reject the card",
                                (Action.RESUME, Action.REJECT_CARD))
                return self._transition(issuance, State.FAILED, problem.message,
                                        _fault_data(problem, issuance.state), fault=problem)
            return self._transition(issuance, State.REJECTED, problem.message,
                                    _fault_data(problem), fault=problem)
        return self._transition(issuance, State.FAILED, problem.message,
                                _fault_data(problem, issuance.state), fault=problem)

    def _emit(self, issuance: Issuance, message: str, fault: Fault | None = None,
              committed: bool = False) -> None:
        log.info("issuance %s %s: %s", issuance.id[:8], issuance.state.value, message)
        if self.on_event is not None:
            self.on_event(issuance, message, fault, committed)


def _done_message(entry: OutboxEntry) -> str:
    return f"the CMS acknowledged the data return ({entry.ack}): hand the card over"


#: What a job shows once its fault is behind it (resumed, settled, DONE).
_CLEARED: dict[str, Any] = {"reason_code": "", "cause": "", "remedy": "", "actions": [],
                            "awaiting_return": False}


def _fault_data(problem: Fault, resume_from: State | None = None) -> dict[str, Any]:
    """What the journal keeps of a fault (the API shows it with the job)."""
    data: dict[str, Any] = {"reason_code": problem.code, "cause": problem.cause,
                            "remedy": problem.remedy,
                            "actions": [a.value for a in problem.actions]}
    if resume_from is not None:
        data["resume_from"] = resume_from.value
    return data


def _other_application(known: Issuance, id_number: str,
                       application: Application | None) -> str:
    """How a request id's job differs from this request ("" when it is the same one): another
    person, or (a pushed application) another card for the same person."""
    if known.id_number != id_number:
        return "another applicant"
    if application is not None and \
            known.application.get("card_number") != application.card_number:
        return "another application (another card number)"
    return ""


def _card_was_made_or_fed(issuance: Issuance) -> bool:
    if issuance.state in _FED_OR_LATER:
        return True
    if issuance.state is State.FAILED:
        return issuance.failed_from in _FED_OR_LATER
    if issuance.state is not State.REJECTED:
        return False
    # REJECTED: only if a card was fed (a preview rejection or a cancel made no card)
    return State.FED.value in issuance.data.get("timings_ms", {})


def face_data(app: Application, chip: dict[str, str] | None) -> FaceData:
    """What goes on the face: the chip's values when the chip was read (face-to-chip binding),
    else the application's (preview)."""
    source = chip or {}
    return FaceData(
        name=source.get("name", app.name),
        id_number=source.get("id_number", app.id_number),
        card_number=source.get("card_number", app.card_number),
        issue_date=app.issue_date,
        bank_name=app.bank_name,
        photo_jpeg=app.photo,
        bank_card_number=source.get("bank_account", ""),  # the PAN, once the chip was read
    )
