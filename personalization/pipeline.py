"""The issuance pipeline: one card as one durable job (DESIGN.md "One issuance, end to end").

States, each committed to the journal before the next step starts:
FETCHED -> PREVIEWED -> FED -> CHIP_WRITTEN -> VERIFIED -> RETURN_QUEUED -> PRINTED -> EJECTED
-> DONE, with REJECTED (card to the reject box, reason kept) and FAILED (needs an operator;
resumable) as exits. The return record enters the outbox in the same transaction as
VERIFIED -> RETURN_QUEUED; a worker delivers it while printing goes on.

Resuming (after a crash or from FAILED) never trusts memory: a card that may be in the printer is
brought to the contact station and its chip is read before anything else is done to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardstation.drivers.hiti.errors import PrinterAlert, PrinterError
from cardstation.drivers.hiti.state import CardPosition
from cardstation.drivers.pcsc.errors import CardStatusError, PcscError, UnresponsiveCard
from cardstation.drivers.pcsc.ssc import ITEMS, decode_value
from cardstation.drivers.pcsc.transport import ApduTransport

from .chip import ChipBelongsToAnotherHolder, ChipSession, ChipVerificationFailed
from .cms import CmsClient, CmsError
from .face import BACK_IN_COLOUR, FaceData, render_faces, render_preview, save_preview
from .journal import Issuance, Journal, State
from .keys.service import KeyService
from .model import Application, ReturnRecord
from .outbox import Outbox
from .rules import DEFAULT_PHOTO_SPEC, PhotoSpec
from .validation import validate_application

log = logging.getLogger(__name__)

# Where the card is for each state a job can be resumed in.
_CARD_IN_PRINTER = {State.FED, State.CHIP_WRITTEN, State.VERIFIED, State.RETURN_QUEUED,
                    State.PRINTED}
_IN_PRINTER_POSITIONS = {CardPosition.CONTACT, CardPosition.PRINT, CardPosition.FLIPPER}


class IssuanceError(RuntimeError):
    """A step failed; `reason` is a stable code, the message names cause and remedy."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ReprintRefused(IssuanceError):
    pass


@dataclass
class Devices:
    """What the pipeline drives. `open_encoder` connects to the card in the encoder;
    `wait_for_card` blocks until the encoder reader reports a card (or raises)."""

    printer: Any  # cardstation.drivers.hiti.Printer
    open_encoder: Callable[[], ApduTransport]
    wait_for_card: Callable[[float], None]
    wait_for_removal: Callable[[float], None]
    keys: KeyService
    settle_time: float = 1.0  # how long a fresh chip may stay silent before power-on fails


EventSink = Callable[[Issuance, str], None]


class Pipeline:
    def __init__(
        self,
        journal: Journal,
        outbox: Outbox,
        cms: CmsClient,
        devices: Devices,
        data_dir: Path,
        photo_spec: PhotoSpec = DEFAULT_PHOTO_SPEC,
        on_event: EventSink | None = None,
        after_commit: Callable[[State], None] | None = None,
        wake_returns: Callable[[], None] | None = None,
    ) -> None:
        self.journal = journal
        self.outbox = outbox
        self.cms = cms
        self.devices = devices
        self.data_dir = Path(data_dir)
        self.photo_spec = photo_spec
        self.on_event = on_event
        self.after_commit = after_commit  # test hook (crash drill): called after each commit
        self.wake_returns = wake_returns
        self._session: ChipSession | None = None
        self._transport: ApduTransport | None = None
        self.apdus = 0
        # Set on shutdown: the job stops after the step in progress (already committed) and
        # is resumed from the journal at the next start. A step is never cut in half.
        self.park = threading.Event()

    # -- public ---------------------------------------------------------------------------
    def create(self, id_number: str | None = None, application: Application | None = None,
               client_request_id: str | None = None) -> Issuance:
        """FETCHED: an application fetched from the CMS by ID number (and claimed), or pushed
        complete by an upstream caller. The same client request id returns the same job."""
        if client_request_id:
            existing = self.journal.find_by_request_id(client_request_id)
            if existing is not None:
                return existing
        if application is None:
            if not id_number:
                raise ValueError("give an ID number or a complete application")
            application = self.cms.fetch(id_number)
            self.cms.claim(application.id_number)
        issuance = self.journal.create(application.to_dict(), application.id_number,
                                       client_request_id)
        self._emit(issuance, "application fetched")
        return issuance

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
            return f"{request_id_prefix}{id_number}" if request_id_prefix else None

        results: list[Issuance] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as pool:
            upcoming = None
            for index, id_number in enumerate(id_numbers):
                try:
                    if upcoming is not None:
                        issuance = upcoming.result()
                    else:
                        issuance = self.prepare(id_number, request_id(id_number))
                except (CmsError, ValueError) as exc:  # this card cannot start; go on
                    log.error("card for %s not started: %s", id_number, exc)
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
        """Drive one issuance from its journal state to DONE, REJECTED or FAILED."""
        issuance = self.journal.get(issuance_id)
        try:
            if issuance.state is State.FAILED:
                issuance = self._resume_failed(issuance)
            elif issuance.state in _CARD_IN_PRINTER:
                issuance = self._reacquire(issuance)  # after a crash: read the card first
            while issuance.state not in (State.DONE, State.REJECTED, State.FAILED):
                if self.park.is_set():
                    self._emit(issuance, "parked for shutdown; resumes at the next start")
                    break
                issuance = self._step(issuance)
        finally:
            self._close_chip()
        return issuance

    def recover(self) -> list[Issuance]:
        """Resume every unfinished issuance, oldest first (station start-up)."""
        return [self.run(i.id) for i in self.journal.unfinished()
                if i.state is not State.FAILED]

    def reprint(self, issuance_id: str) -> Issuance:
        """补打卡面: feed the card put back, read its chip, refuse another holder's, print."""
        issuance = self.journal.get(issuance_id)
        if issuance.state is not State.DONE:
            raise ReprintRefused("not_done", "only a finished card can be reprinted")
        try:
            self._feed()
            session = self._chip_session()
            holder = session.holder_id_number()
            if holder != issuance.id_number:
                self._move_away("eject")
                raise ReprintRefused(
                    "wrong_card",
                    "the card in the printer belongs to another holder: nothing was printed; "
                    "put in the card of this job",
                )
            self._print(issuance)
            self._move_away("eject")
        finally:
            self._close_chip()
        return self.journal.update_data(
            issuance.id, {"reprints": issuance.data.get("reprints", 0) + 1}, "face reprinted"
        )

    # -- steps ----------------------------------------------------------------------------
    def _step(self, issuance: Issuance) -> Issuance:
        state = issuance.state
        started = time.perf_counter()
        try:
            if state is State.FETCHED:
                return self._preview(issuance)
            if state is State.PREVIEWED:
                self._feed()
                return self._commit(issuance, State.FED, started, "card fed to the chip station")
            if state is State.FED:
                written = self._write(issuance)
                return self._commit(issuance, State.CHIP_WRITTEN, started,
                                    f"{len(written)} items written", {"written": written})
            if state is State.CHIP_WRITTEN:
                facts = self._verify(issuance)
                return self._commit(issuance, State.VERIFIED, started,
                                    "chip verified", {"chip": facts})
            if state is State.VERIFIED:
                return self._queue_return(issuance, started)
            if state is State.RETURN_QUEUED:
                return self._print_once(issuance, started)
            if state is State.PRINTED:
                if self._card_in_printer():
                    self._move_away("eject")
                return self._commit(issuance, State.EJECTED, started, "card in the output hopper")
            if state is State.EJECTED:
                return self._commit(issuance, State.DONE, started, "done")
        except IssuanceError as exc:
            return self._fail(issuance, exc)
        except PrinterAlert as exc:
            return self._fail(issuance, IssuanceError(_alert_reason(exc), str(exc)), reject=False)
        except (PrinterError, PcscError, CardStatusError, CmsError, ValueError) as exc:
            return self._fail(issuance, IssuanceError(type(exc).__name__, str(exc)))
        raise AssertionError(f"no step for state {state}")

    def _preview(self, issuance: Issuance) -> Issuance:
        started = time.perf_counter()
        app = Application.from_dict(issuance.application)
        findings = validate_application(
            app.id_number, name=app.name, card_number=app.card_number, photo=app.photo,
            photo_spec=self.photo_spec, birth_date=app.birth_date, sex=app.sex,
            nation=app.nation, region=app.birthplace,
        )  # fmt: skip
        if findings:
            text = "; ".join(f"{f.field}: {f.message}" for f in findings)
            return self._transition(issuance, State.REJECTED, f"stopped at preview: {text}",
                                    {"findings": [f.to_dict() for f in findings]})
        preview = self.data_dir / "previews" / f"{issuance.id}.png"
        save_preview(render_preview(face_data(app, None)), preview)
        return self._commit(issuance, State.PREVIEWED, started, "preview rendered",
                            {"preview": str(preview)})

    def _feed(self) -> None:
        if not self._card_in_printer():
            # the last card must have left the encoder before the next arrives, or PC/SC could
            # still be describing the old one
            self.devices.wait_for_removal(5.0)
        self.devices.printer.move_to_contact()
        self.devices.wait_for_card(10.0)

    def _write(self, issuance: Issuance) -> list[str]:
        app = Application.from_dict(issuance.application)
        session = self._chip_session()
        assert session.profile is not None
        try:
            return session.write(session.profile.values(app), app.id_number)
        except ChipBelongsToAnotherHolder as exc:
            raise IssuanceError("chip_belongs_to_another_holder", str(exc)) from None

    def _verify(self, issuance: Issuance) -> dict[str, str]:
        app = Application.from_dict(issuance.application)
        session = self._chip_session()
        assert session.profile is not None and session.facts is not None
        values = session.profile.values(app)
        try:
            back = session.verify(values)
        except ChipVerificationFailed as exc:
            raise IssuanceError("verification_failed", str(exc)) from None
        # the face and the return carry what the chip holds: read-back values, not the job's
        facing = ["id_number", "name", "name_ext", "card_number"]
        missing = [item for item in facing if item not in back]
        if missing:
            back = {**back, **session.read_items(missing)}
        pan = session.read_pan()
        return {
            "atr": session.facts.atr,
            "card_id_code": session.facts.card_id_code,
            "bank_account": pan,
            "id_number": decode_value(ITEMS["id_number"], back["id_number"]),
            "name": decode_value(ITEMS["name"], back["name"])
            + decode_value(ITEMS["name_ext"], back["name_ext"]),
            "card_number": decode_value(ITEMS["card_number"], back["card_number"]),
            "profile": session.facts.profile,
        }

    def _queue_return(self, issuance: Issuance, started: float) -> Issuance:
        app = Application.from_dict(issuance.application)
        chip = issuance.data["chip"]
        record = ReturnRecord(
            card_number=chip["card_number"], id_number=chip["id_number"], name=chip["name"],
            issue_date=app.issue_date, expiry_date=app.expiry_date,
            card_id_code=chip["card_id_code"], atr=chip["atr"],
            bank_account=chip["bank_account"], batch=app.batch,
        )  # fmt: skip
        issuance = self._commit(issuance, State.RETURN_QUEUED, started, "return queued",
                                return_record=record.to_dict())
        if self.wake_returns is not None:
            self.wake_returns()
        return issuance

    def _print_once(self, issuance: Issuance, started: float) -> Issuance:
        """Print the face unless a print of this job already finished. The printer's print
        count is journaled before printing; a job resumed after a crash (or a lost cable)
        whose count has moved since was printed, and printing again would spoil the card."""
        count = self.devices.printer.print_count()
        before = issuance.data.get("print_count_before")
        if before is not None and count > before:
            return self._commit(issuance, State.PRINTED, started,
                                "face already printed before the restart; not printed again")
        issuance = self.journal.update_data(issuance.id, {"print_count_before": count},
                                            "printing")
        self._print(issuance)
        return self._commit(issuance, State.PRINTED, started, "face printed")

    def _print(self, issuance: Issuance) -> None:
        """Print from what the chip says (face-to-chip binding), photo from the application.
        The chip is unpowered first: printing moves the card off the contacts."""
        self._close_chip()
        app = Application.from_dict(issuance.application)
        face = face_data(app, issuance.data.get("chip"))
        front, back = render_faces(face)  # normally drawn already, for the preview
        self.devices.printer.print_faces(front, back, back_colour=BACK_IN_COLOUR)

    # -- resume ---------------------------------------------------------------------------
    def _resume_failed(self, issuance: Issuance) -> Issuance:
        resume = State(issuance.data.get("resume_from", State.FETCHED))
        issuance = self._transition(issuance, resume, "resumed by operator")
        if resume in _CARD_IN_PRINTER:
            issuance = self._reacquire(issuance)
        return issuance

    def _reacquire(self, issuance: Issuance) -> Issuance:
        """A card may be in the printer in an unknown state: read its chip before anything."""
        if not self._card_in_printer():
            if issuance.state is State.PRINTED:
                return issuance  # it was ejected before the crash; the next step records it
            return self._fail(issuance, IssuanceError(
                "card_missing", "the job's card is no longer in the printer: find it (output "
                "hopper or reject box) and check it in the desk reader"), reject=False)
        try:
            self.devices.printer.move_to_contact()
            self.devices.wait_for_card(10.0)
            holder = self._chip_session().holder_id_number()
        except (PrinterError, PcscError, CardStatusError) as exc:
            return self._fail(issuance, IssuanceError(type(exc).__name__, str(exc)))
        if holder and holder != issuance.id_number:
            return self._fail(issuance, IssuanceError(
                "chip_belongs_to_another_holder",
                "the card in the printer carries another holder's data"))
        self._emit(issuance, "card in the printer read again after a restart")
        return issuance

    def _move_away(self, where: str) -> None:
        """Eject or reject the card — after closing the PC/SC connection to its chip: a card
        must never leave the contacts while the encoder holds it powered."""
        self._close_chip()
        getattr(self.devices.printer, where)()

    def _card_in_printer(self) -> bool:
        return self.devices.printer.card_position() in _IN_PRINTER_POSITIONS

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
                except UnresponsiveCard as exc:
                    if time.monotonic() >= deadline:
                        raise IssuanceError("chip_power_on_failed", str(exc)) from None
                    time.sleep(0.1)  # contacts settling (real stations wait ~0.5 s)
            self._session = ChipSession(transport, self.devices.keys)
            self._session.open()
        return self._session

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
                    return_record: dict[str, Any] | None = None) -> Issuance:
        issuance = self.journal.transition(issuance.id, to, reason=reason, data=data,
                                           return_record=return_record)
        self._emit(issuance, reason)
        if self.after_commit is not None:
            self.after_commit(to)
        return issuance

    def _fail(self, issuance: Issuance, exc: IssuanceError, reject: bool = True) -> Issuance:
        """After feeding, a failed card goes to the reject box (REJECTED); a printer alert
        leaves everything in place for the operator (FAILED, resumable without rewriting the
        chip)."""
        self._close_chip()
        card_fed = issuance.state not in (State.FETCHED, State.PREVIEWED)
        if not reject:  # the operator fixes the printer (ribbon, jam, cover) and resumes
            return self._transition(issuance, State.FAILED, str(exc),
                                    {"reason_code": exc.reason,
                                     "resume_from": issuance.state.value})
        if card_fed or self._card_in_printer_safe():
            try:
                self._move_away("reject")
            except PrinterError as move_error:
                return self._transition(issuance, State.FAILED,
                                        f"{exc} — and the card could not be moved to the reject "
                                        f"box: {move_error}",
                                        {"reason_code": exc.reason,
                                         "resume_from": issuance.state.value})
        return self._transition(issuance, State.REJECTED, str(exc), {"reason_code": exc.reason})

    def _card_in_printer_safe(self) -> bool:
        try:
            return self._card_in_printer()
        except PrinterError:
            return False

    def _emit(self, issuance: Issuance, message: str) -> None:
        log.info("issuance %s %s: %s", issuance.id[:8], issuance.state.value, message)
        if self.on_event is not None:
            self.on_event(issuance, message)


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
    )


def _alert_reason(exc: PrinterAlert) -> str:
    return f"printer_{type(exc).__name__}"
