"""gRPC servicers over the station runtime (package cardstation.v1).

Errors are status codes with a google.rpc.ErrorInfo whose reason is stable and machine-readable
(see `_fail`); messages name cause and remedy and never carry a full ID number.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.face import render_preview_sides
from cardstation.personalization.faults import Fault, cms_fault, fault, fault_of
from cardstation.personalization.journal import (
    Issuance,
    IssuanceNotFound,
    JournalError,
    RequestIdConflict,
    State,
    StorageFault,
)
from cardstation.personalization.model import Application
from cardstation.personalization.outbox import OutboxEntry, OutboxStatus
from cardstation.personalization.pipeline import IssuanceError, IssuanceExists, face_data
from cardstation.personalization.ports.cms import CmsError
from cardstation.personalization.ports.printer import PrinterCondition, PrinterFault
from cardstation.personalization.rules import check_id_number
from cardstation.personalization.validation import validate_application
from cardstation.protos.cardstation.v1 import (
    issuance_pb2 as ipb,
)
from cardstation.protos.cardstation.v1 import (
    issuance_pb2_grpc,
    returns_pb2_grpc,
    station_pb2_grpc,
)
from cardstation.protos.cardstation.v1 import (
    returns_pb2 as rpb,
)
from cardstation.protos.cardstation.v1 import (
    station_pb2 as spb,
)
from cardstation.protos.cardstation.v1 import (
    validation_pb2 as vpb,
)

from . import limits
from .aio import checked
from .auth import current_identity
from .errors import abort_with
from .runtime import (
    VERSION,
    Event,
    LaneRunner,
    LaneSnapshot,
    StationRuntime,
    StationSnapshot,
)
from .streams import StationBroadcast, StreamGate, enter_stream

MAX_PAGE = 500
DEFAULT_PAGE = 50
JOB_WAIT = 600.0  # seconds a synchronous job RPC waits when the caller set no deadline
MAX_ID_NUMBER = limits.FIELD_LIMITS["id_number"].most  # the guard refuses longer ones first

#: gRPC status code per reason code where it is not FAILED_PRECONDITION.
_STATUS = {
    "APPLICATION_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "CLAIMED_BY_ANOTHER_STATION": grpc.StatusCode.ALREADY_EXISTS,
    "CMS_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "ISSUANCE_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "APPLICANT_HAS_LIVE_JOB": grpc.StatusCode.ALREADY_EXISTS,
    "REQUEST_ID_REUSED": grpc.StatusCode.ALREADY_EXISTS,
    "CARD_ALREADY_MADE_HERE": grpc.StatusCode.ALREADY_EXISTS,
    "CARD_ALREADY_MADE": grpc.StatusCode.ALREADY_EXISTS,
    "REMAKE_REQUIRED": grpc.StatusCode.ALREADY_EXISTS,
    "STORAGE_ERROR": grpc.StatusCode.UNAVAILABLE,
    "STORAGE_FULL": grpc.StatusCode.UNAVAILABLE,
    "STORAGE_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "INTERNAL": grpc.StatusCode.INTERNAL,
}

_ACTIONS: dict[str, ipb.IssuanceAction] = {
    name: ipb.IssuanceAction.Value(f"ISSUANCE_ACTION_{name}")
    for name in (n.removeprefix("ISSUANCE_ACTION_") for n in ipb.IssuanceAction.keys())
    if name != "UNSPECIFIED"}


def abort_fault(context: grpc.ServicerContext, problem: Fault,
                code: grpc.StatusCode | None = None, **metadata: str) -> NoReturn:
    """End the call with the fault: its reason code, "cause — remedy", cause and remedy in the
    ErrorInfo metadata (so clients in any language can show them apart)."""
    status = code or _STATUS.get(problem.code, grpc.StatusCode.FAILED_PRECONDITION)
    abort_with(context, status, problem.code, problem.message,
               {"cause": problem.cause, "remedy": problem.remedy, **metadata})


def _fail(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    """Map a domain error to a status code, a reason code and its cause and remedy."""
    if isinstance(exc, IssuanceExists):
        abort_fault(context, exc.fault, issuance_id=exc.existing.id,
                    state=exc.existing.state.value)
    if isinstance(exc, IssuanceError):
        abort_fault(context, exc.fault)
    if isinstance(exc, CmsError):
        abort_fault(context, cms_fault(exc))
    if isinstance(exc, IssuanceNotFound):
        abort_fault(context, Fault("ISSUANCE_NOT_FOUND", "no card job has this id",
                                   "check the job id (list the jobs to find it)"))
    if isinstance(exc, RequestIdConflict):
        abort_fault(context, fault("REQUEST_ID_REUSED", str(exc)))
    if isinstance(exc, TimeoutError):
        abort_fault(context, Fault("JOB_STILL_RUNNING", "the job did not finish within the "
                                   "call's deadline", "watch the job; it goes on"),
                    grpc.StatusCode.DEADLINE_EXCEEDED)
    if isinstance(exc, StorageFault):
        abort_fault(context, fault_of(exc))
    if isinstance(exc, JournalError):
        abort_fault(context, fault("STORAGE_ERROR", str(exc)))
    if isinstance(exc, ValueError):
        named = {"field": ", ".join(exc.fields)} if isinstance(exc, MissingFields) else {}
        abort_fault(context, Fault("INVALID_ARGUMENT", str(exc), "correct the request"),
                    grpc.StatusCode.INVALID_ARGUMENT, **named)
    abort_fault(context, fault_of(exc))


def station_broadcast(runtime: StationRuntime) -> StationBroadcast:
    """The WatchStation message, built once per change for every watcher; it stops with the
    server (runtime.closing)."""
    broadcast = StationBroadcast(
        lambda: spb.WatchStationResponse(station=station_to_proto(runtime, runtime.snapshot)),
        stopping=runtime.closing)
    runtime.events.station_listeners.append(broadcast.changed)
    return broadcast.start()


def _end_if_stopping(runtime: StationRuntime, context: grpc.ServicerContext) -> None:
    """End a stream when the server is stopping: a watch never ends by itself, and must not
    hold up the shutdown for the grace period."""
    if runtime.closing.is_set():
        abort_fault(context, Fault("SERVER_STOPPING", "the station server is stopping",
                                   "watch again when it is back"),
                    grpc.StatusCode.UNAVAILABLE)


def _wait_budget(context: grpc.ServicerContext) -> float:
    """Seconds a synchronous job call may wait: the caller's deadline, else JOB_WAIT (grpcio
    reports "no deadline" as a huge number, which must not reach a timed wait)."""
    remaining = context.time_remaining()
    if remaining is None or remaining > JOB_WAIT:
        return JOB_WAIT
    return max(0.0, remaining - 0.2)


def timestamp(seconds: float | None) -> Timestamp | None:
    if not seconds:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _check_id_argument(context: grpc.ServicerContext, id_number: str,
                       field: str = "id_number") -> None:
    """Refuse an ID number that is not one before it reaches the CMS (naming the field)."""
    if not id_number:
        abort_fault(context, Fault("ID_NUMBER_REQUIRED", f"no ID number was given ({field})",
                                   "type or swipe the applicant's ID number"),
                    grpc.StatusCode.INVALID_ARGUMENT, field=field)
    if len(id_number) > MAX_ID_NUMBER:
        abort_fault(context, Fault("ID_NUMBER_INVALID", f"the ID number ({field}) is "
                                   f"{len(id_number)} characters long (an ID number has 18)",
                                   "type or swipe the ID number again"),
                    grpc.StatusCode.INVALID_ARGUMENT, field=field)
    findings = check_id_number(id_number)
    if findings:
        abort_fault(context, Fault("ID_NUMBER_INVALID", "; ".join(f.message for f in findings),
                                   "check the ID number and type it again"),
                    grpc.StatusCode.INVALID_ARGUMENT, field=field)


class MissingFields(ValueError):
    """A pushed application without some of its fields (named in the error's metadata)."""

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        super().__init__(f"the application is missing fields: {', '.join(fields)}")


def application_from_proto(app: ipb.Application) -> Application:
    data: dict[str, Any] = {
        f: getattr(app, f) for f in ("id_number", "name", "sex", "nation", "birth_date",
                                     "birthplace", "card_number", "bank_name", "batch",
                                     "issue_date", "expiry_date")
    }
    missing = [k for k, v in data.items() if not v]
    if missing:
        raise MissingFields([f"application.{k}" for k in missing])
    data["photo"] = base64.b64encode(app.photo_jpeg).decode("ascii")
    return Application.from_dict(data)


def application_to_proto(app: Application) -> ipb.Application:
    return ipb.Application(
        id_number=app.id_number, name=app.name, sex=app.sex, nation=app.nation,
        birth_date=app.birth_date, birthplace=app.birthplace, card_number=app.card_number,
        bank_name=app.bank_name, batch=app.batch, issue_date=app.issue_date,
        expiry_date=app.expiry_date, photo_jpeg=app.photo,
    )  # fmt: skip


def state_to_proto(runtime: StationRuntime, issuance: Issuance) -> int:
    if issuance.data.get("reason_code") == "CANCELLED":
        return ipb.ISSUANCE_STATE_CANCELLED
    queued = runtime.is_queued(issuance.id)
    if queued and issuance.state in (State.FETCHED, State.PREVIEWED):
        return ipb.ISSUANCE_STATE_QUEUED
    if issuance.state is State.FAILED and (queued or runtime.is_running(issuance.id)):
        return ipb.ISSUANCE_STATE_QUEUED  # resumed: on its way out of FAILED
    return ipb.IssuanceState.Value(f"ISSUANCE_STATE_{issuance.state.value}")


def return_to_proto(entry: OutboxEntry | None) -> ipb.ReturnProgress:
    if entry is None:
        return ipb.ReturnProgress()
    return ipb.ReturnProgress(
        status=rpb.ReturnStatus.Value(f"RETURN_STATUS_{entry.status.value.upper()}"),
        attempts=entry.total_attempts, last_error=entry.last_error or "",
        last_error_code=entry.last_error_code, ack=entry.ack or "",
        acknowledged_at=timestamp(entry.delivered_at))


def _masked(number: str) -> str:
    return mask_id_number(number) if number else ""


def actions_of(runtime: StationRuntime, issuance: Issuance) -> list[ipb.IssuanceAction]:
    """What moves the job on now (the console's buttons)."""
    if runtime.holds(issuance.id):
        return []  # stopped by the store: it resumes by itself once the store is back
    # A FAILED job shows its way out even while its lane has not yet let go of it (the watch
    # hears FAILED before the lane is free, and no later event would bring the buttons); a
    # resume asked meanwhile is refused as ALREADY_RESUMING.
    if issuance.state is not State.FAILED and (runtime.is_queued(issuance.id)
                                               or runtime.is_running(issuance.id)):
        return [_ACTIONS["CANCEL"]] if issuance.state in (State.FETCHED, State.PREVIEWED) \
            else []
    names: list[str] = []
    if issuance.state is State.FAILED:
        names = list(issuance.data.get("actions") or ["RESUME", "REJECT_CARD"])
    elif issuance.state is State.EJECTED:
        names = ["RETRY_RETURN", "REPRINT", "MARK_SPOILED"]
    elif issuance.state is State.DONE:
        names = ["REPRINT"] + ([] if issuance.data.get("spoiled") else ["MARK_SPOILED"])
    elif issuance.state is State.REJECTED and issuance.data.get("reason_code") not in (
            "CANCELLED", "PREVIEW_FINDINGS"):
        names = ["REMAKE"]
    return [_ACTIONS[n] for n in names if n in _ACTIONS]


def issuance_to_proto(runtime: StationRuntime, issuance: Issuance) -> ipb.Issuance:
    issuance = runtime.present(issuance)
    chip = issuance.data.get("chip") or {}
    entry = runtime.station.outbox.get(issuance.id)
    return ipb.Issuance(
        id=issuance.id,
        client_request_id=issuance.client_request_id or "",
        id_number_masked=mask_id_number(issuance.id_number),
        state=state_to_proto(runtime, issuance),  # type: ignore[arg-type]
        reason=issuance.reason,
        reason_code=str(issuance.data.get("reason_code", "")),
        cause=str(issuance.data.get("cause", "")),
        remedy=str(issuance.data.get("remedy", "")),
        actions=actions_of(runtime, issuance),
        hand_over_allowed=issuance.state is State.DONE and not issuance.data.get("spoiled"),
        return_progress=return_to_proto(entry),
        chip=ipb.ChipResult(card_id_code=chip.get("card_id_code", ""), atr=chip.get("atr", ""),
                            bank_account=_masked(chip.get("bank_account", "")),
                            profile=chip.get("profile", "")),
        findings=[vpb.Finding(**f) for f in issuance.data.get("findings", [])],
        preview_path=str(issuance.data.get("preview", "")),
        created_at=timestamp(issuance.created_at),
        updated_at=timestamp(issuance.updated_at),
        reprints=int(issuance.data.get("reprints", 0)),
        remake_of=str(issuance.data.get("remake_of", "")),
        spoiled=bool(issuance.data.get("spoiled")),
        lane=str(issuance.data.get("lane", "")),
    )


#: Previews go to a screen: half the print resolution (507 px across is larger than the card
#: on a 96 dpi monitor), encoded fast (a full-size sheet at the default level costs ~40 ms).
PREVIEW_REDUCTION = 2


def _png(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


class IssuanceServicer(issuance_pb2_grpc.IssuanceServiceServicer):
    def __init__(self, runtime: StationRuntime, streams: StreamGate | None = None) -> None:
        self.rt = runtime
        self.streams = streams or StreamGate()

    def _get(self, context: grpc.ServicerContext, issuance_id: str) -> Issuance:
        if not issuance_id:
            abort_fault(context, Fault("ID_REQUIRED", "no job id was given", "give the job id"),
                        grpc.StatusCode.INVALID_ARGUMENT)
        try:
            return self.rt.journal.get(issuance_id)
        except IssuanceNotFound as exc:
            _fail(context, exc)

    def _proto(self, issuance: Issuance) -> ipb.Issuance:
        return issuance_to_proto(self.rt, issuance)

    def GetApplication(self, request, context):
        _check_id_argument(context, request.id_number)
        try:
            app = self.rt.station.cms.fetch(request.id_number)
        except Exception as exc:
            _fail(context, exc)
        return ipb.GetApplicationResponse(application=application_to_proto(app))

    def PreviewCard(self, request, context):
        if not request.HasField("application"):
            _check_id_argument(context, request.id_number)
        try:
            if request.HasField("application"):
                app = application_from_proto(request.application)
            else:
                app = self.rt.station.cms.fetch(request.id_number)
        except Exception as exc:
            _fail(context, exc)
        findings = validate_application(
            app.id_number, name=app.name, card_number=app.card_number, photo=app.photo,
            photo_spec=self.rt.pipeline.photo_spec, birth_date=app.birth_date, sex=app.sex,
            nation=app.nation, region=app.birthplace, bank_name=app.bank_name,
        )  # fmt: skip
        face = face_data(app, None)
        front = back = b""
        if not any(f.field == "photo" for f in findings):  # an unusable photo is not decoded
            try:  # front = the emblem side (正面, pre-printed stock), back = the chip side
                emblem, chip = render_preview_sides(face, reduction=PREVIEW_REDUCTION)
                front, back = _png(emblem), _png(chip)
            except Exception:  # a photo the rules passed but Pillow cannot draw
                pass
        return ipb.PreviewCardResponse(front_png=front, back_png=back,
                                       findings=[vpb.Finding(**f.to_dict()) for f in findings],
                                       application=application_to_proto(app))

    def CreateIssuance(self, request, context):
        request_id = request.client_request_id or None
        application = None
        if request.HasField("application"):
            try:
                application = application_from_proto(request.application)
            except ValueError as exc:
                _fail(context, exc)
            _check_id_argument(context, application.id_number, "application.id_number")
        else:
            _check_id_argument(context, request.id_number)
        try:
            if application is not None:
                issuance, created = self.rt.pipeline.open(
                    application=application, client_request_id=request_id,
                    admission=self.rt.admission, remake_of=request.remake_of or None,
                    remake_reason=request.remake_reason)
            else:
                issuance, created = self.rt.pipeline.open(
                    request.id_number, client_request_id=request_id,
                    admission=self.rt.admission, remake_of=request.remake_of or None,
                    remake_reason=request.remake_reason)
        except Exception as exc:
            _fail(context, exc)
        if created:  # queued exactly once, by the call that created it
            self.rt.enqueue(issuance.id)
        return ipb.CreateIssuanceResponse(issuance=self._proto(issuance), created=created)

    def GetIssuance(self, request, context):
        return ipb.GetIssuanceResponse(issuance=self._proto(self._get(context, request.id)))

    def ListIssuances(self, request, context):
        size = request.page_size or DEFAULT_PAGE
        if not 0 < size <= MAX_PAGE:
            abort_fault(context, Fault("PAGE_SIZE", f"page_size {size} is out of range",
                                       f"ask for 1 to {MAX_PAGE} per page"),
                        grpc.StatusCode.INVALID_ARGUMENT)
        state = None
        if request.state not in (ipb.ISSUANCE_STATE_UNSPECIFIED, ipb.ISSUANCE_STATE_QUEUED,
                                 ipb.ISSUANCE_STATE_CANCELLED):
            state = State(ipb.IssuanceState.Name(request.state).removeprefix("ISSUANCE_STATE_"))
        after = request.page_token or None
        if after is not None:
            try:
                self.rt.journal.get(after)
            except IssuanceNotFound:
                abort_fault(context, Fault("PAGE_TOKEN", "page_token is not one this server "
                                           "gave out", "start from the first page"),
                            grpc.StatusCode.INVALID_ARGUMENT)
        id_number = request.id_number.strip().upper() or None
        if id_number is not None:
            _check_id_argument(context, id_number)
        page = self.rt.journal.issuances(state=state, limit=size + 1, after=after,
                                         id_number=id_number,
                                         newest_first=request.newest_first)
        more = len(page) > size
        page = page[:size]
        return ipb.ListIssuancesResponse(
            issuances=[self._proto(i) for i in page],
            next_page_token=page[-1].id if more and page else "")

    async def WatchIssuance(self, request, context) -> AsyncIterator[ipb.WatchIssuanceResponse]:
        """A coroutine on the server's loop: the job's past events, then each new one as it
        is published. It keeps no journal row (nor the photo) while it waits."""
        issuance_id = await checked(context, lambda ctx: self._get(ctx, request.id).id,
                                    in_thread=True)
        await enter_stream(self.streams, context)
        try:
            loop = asyncio.get_running_loop()
            inbox: asyncio.Queue[Event | None] = asyncio.Queue()

            def hand_over(event: Event | None) -> None:  # from the publishing thread
                try:
                    loop.call_soon_threadsafe(inbox.put_nowait, event)
                except RuntimeError:  # the server's loop is closed: nobody watches any more
                    pass

            sink = self.rt.events.subscribe_sink(issuance_id, hand_over)
            try:
                replay, finished, last_at = await asyncio.to_thread(self._replay, issuance_id)
                for item in replay:
                    yield item
                del replay
                if finished:
                    return
                while True:
                    await checked(context, lambda ctx: _end_if_stopping(self.rt, ctx))
                    event = await inbox.get()  # None: look again (the server stops)
                    if event is None or event.at <= last_at:
                        continue
                    problem = event.fault
                    yield self._event(event.issuance_id, event.state, event.message, event.at,
                                      event.final, problem.code if problem else "",
                                      problem.remedy if problem else "",
                                      [a.value for a in problem.actions] if problem else [],
                                      event.hand_over_allowed, event.lane)
                    if event.final:
                        return
            finally:
                self.rt.events.unsubscribe_sink(issuance_id, sink)
        finally:
            self.streams.leave()

    def _replay(self, issuance_id: str) -> tuple[list[ipb.WatchIssuanceResponse], bool, float]:
        """(the job's recorded events as responses, whether it has finished, the last one's
        time), read from the journal (on a worker thread)."""
        past = self.rt.journal.events(issuance_id)
        finished = self.rt.journal.get(issuance_id).state in (State.DONE, State.REJECTED,
                                                               State.FAILED)
        lane = ""
        replay = []
        for n, recorded in enumerate(past):
            data = recorded.data
            lane = str(data.get("lane") or lane)  # recorded with the feed
            final = finished and n == len(past) - 1  # the last one closes the stream
            replay.append(self._event(issuance_id, recorded.to_state.value, recorded.reason
                                      or _DEFAULT_MESSAGES.get(recorded.to_state.value, ""),
                                      recorded.at, final, str(data.get("reason_code", "")),
                                      str(data.get("remedy", "")), data.get("actions") or [],
                                      recorded.to_state is State.DONE, lane))
        return replay, finished, past[-1].at if past else 0.0

    @staticmethod
    def _event(issuance_id: str, state: str, message: str, at: float, final: bool,
               reason_code: str = "", remedy: str = "", actions: list[str] | None = None,
               hand_over: bool = False, lane: str = "") -> ipb.WatchIssuanceResponse:
        return ipb.WatchIssuanceResponse(event=ipb.IssuanceEvent(
            issuance_id=issuance_id, state=ipb.IssuanceState.Value(f"ISSUANCE_STATE_{state}"),
            message=message, at=timestamp(at), final=final, reason_code=reason_code,
            remedy=remedy, actions=[_ACTIONS[a] for a in actions or [] if a in _ACTIONS],
            hand_over_allowed=hand_over, lane=lane))

    def CancelIssuance(self, request, context):
        issuance = self._get(context, request.id)
        cancelled = self.rt.cancel(issuance.id)
        if cancelled is None:
            abort_fault(context, Fault("NOT_CANCELLABLE", f"the job is {issuance.state.value}: "
                                       "only a new job still waiting for the printer can be "
                                       "cancelled", "a failed job is ended with RejectCard; a "
                                       "made card is marked spoiled"))
        return ipb.CancelIssuanceResponse(issuance=self._proto(cancelled))

    def ResumeIssuance(self, request, context):
        issuance = self._get(context, request.id)
        if issuance.state is not State.FAILED:
            abort_fault(context, Fault("NOT_FAILED", f"the job is {issuance.state.value}: only "
                                       "a FAILED job can be resumed", "nothing to resume"))
        if self.rt.enqueue(issuance.id, "resume") is None:
            abort_fault(context, Fault("ALREADY_RESUMING", "the job is already queued to "
                                       "resume", "watch the job"))
        return ipb.ResumeIssuanceResponse(issuance=self._proto(self.rt.journal.get(issuance.id)))

    def _device_job(self, context: grpc.ServicerContext, issuance_id: str, action: str,
                    **kwargs: Any) -> Issuance:
        """Run a pipeline action that may move a card on the device worker and wait for it."""
        try:
            return self.rt.enqueue(issuance_id, action, **kwargs).wait(_wait_budget(context))
        except Exception as exc:
            _fail(context, exc)

    def ReprintFace(self, request, context):
        issuance = self._get(context, request.id)
        result = self._device_job(context, issuance.id, "reprint")
        return ipb.ReprintFaceResponse(issuance=self._proto(result))

    def RejectCard(self, request, context):
        issuance = self._get(context, request.id)
        if issuance.state is not State.FAILED:
            abort_fault(context, Fault("NOT_FAILED", f"the job is {issuance.state.value}: only "
                                       "a FAILED job's card is rejected here",
                                       "cancel a queued job; mark a made card spoiled"))
        result = self._device_job(context, issuance.id, "reject_card")
        return ipb.RejectCardResponse(issuance=self._proto(result))

    def MarkSpoiled(self, request, context):
        issuance = self._get(context, request.id)
        if issuance.state not in (State.FAILED, State.EJECTED, State.DONE):
            abort_fault(context, Fault("NOT_MADE", f"the job is {issuance.state.value}: only a "
                                       "card that was made or failed can be marked spoiled",
                                       "cancel or reject it instead"))
        result = self._device_job(context, issuance.id, "reject_card", spoiled=True)
        return ipb.MarkSpoiledResponse(issuance=self._proto(result))

    def RestoreAndResend(self, request, context):
        issuance = self._get(context, request.id)
        try:
            result = self.rt.pipeline.restore_and_resend(issuance.id)
        except Exception as exc:
            _fail(context, exc)
        return ipb.RestoreAndResendResponse(issuance=self._proto(result))


_DEFAULT_MESSAGES = {"FETCHED": "application fetched from the CMS and claimed"}


def _problem(device: str, problem: Fault, lane: str = "") -> spb.StationProblem:
    return spb.StationProblem(device=device, reason_code=problem.code, cause=problem.cause,
                              remedy=problem.remedy, lane=lane)


def _supplies(lane: LaneSnapshot) -> spb.Supplies:
    return spb.Supplies(ribbon_type=lane.ribbon_type, ribbon_remaining=lane.ribbon_remaining,
                        ribbon_chip_present=lane.ribbon_chip_present, input_cards=-1,
                        ribbon_capacity=lane.ribbon_capacity)


def station_to_proto(runtime: StationRuntime, snap: StationSnapshot) -> spb.Station:
    queued, running = runtime.queue_counts()
    failed = len(runtime.journal.issuances(state=State.FAILED, limit=MAX_PAGE))
    outbox = runtime.station.outbox
    pending = outbox.pending()
    refused = outbox.failed()
    oldest = min((e.created_at for e in pending), default=None)
    problems = [_problem(device, p) for device, p in snap.station_problems]
    lanes = []
    first_held: Issuance | None = None
    for lane in runtime.lanes:
        lane_snap = snap.lane(lane.name) or lane.snapshot
        lane_problems = [_problem(device, p, lane.name) for device, p in lane_snap.problems]
        blocker = runtime.lane_blocker(lane)
        held = runtime.held_by(lane.name)
        first_held = first_held or held
        if blocker is not None and not lane_snap.problems:  # held, benched: say so too
            lane_problems.append(_problem(lane.label("printer"), blocker, lane.name))
        problems += lane_problems
        lanes.append(spb.Lane(name=lane.name, model=lane.part.model, ready=blocker is None,
                              running_issuance=runtime.running_on(lane.name) or "",
                              held_by_issuance=held.id if held else "",
                              supplies=_supplies(lane_snap), problems=lane_problems,
                              print_count=lane_snap.print_count))
    return spb.Station(
        id=runtime.station.config.station.id,
        version=VERSION,
        devices=[spb.Device(name=d.name, address=d.address,
                            status=spb.DeviceStatus.Value(f"DEVICE_STATUS_{d.status}"),
                            fault=d.fault, vendor_code=d.vendor_code, remedy=d.remedy,
                            reason_code=d.reason_code, lane=d.lane)
                 for d in snap.devices],
        supplies=lanes[0].supplies if lanes else spb.Supplies(input_cards=-1),
        queue=spb.Queue(queued=queued, running=running, failed=failed,
                        returns_pending=len(pending), returns_failed=len(refused),
                        oldest_return_pending_seconds=int(time.time() - oldest) if oldest
                        else 0, held_by_issuance=first_held.id if first_held else ""),
        ready=not snap.station_problems and any(lane.ready for lane in lanes),
        problems=problems,
        lanes=lanes,
    )


def _printer_condition(status: PrinterCondition) -> spb.PrinterCondition:
    return spb.PrinterCondition(busy=status.busy, alerts=[
        spb.PrinterAlert(reason_code=a.code, cause=a.cause, remedy=a.remedy,
                         vendor_code=a.vendor_code) for a in status.alerts])


class StationServicer(station_pb2_grpc.StationServiceServicer):
    # Many consoles poll GetStation. Device changes show at once (a new snapshot object);
    # the queue figures, which cost two journal queries, may be up to this old.
    CACHE_SECONDS = 0.25

    def __init__(self, runtime: StationRuntime, streams: StreamGate | None = None,
                 broadcast: StationBroadcast | None = None) -> None:
        self.rt = runtime
        self._cache_lock = threading.Lock()
        self._cached: tuple[float, object, spb.GetStationResponse] | None = None
        self.streams = streams or StreamGate()
        self.broadcast = broadcast or station_broadcast(runtime)

    def GetStation(self, request, context):
        now = time.monotonic()
        snapshot = self.rt.snapshot
        with self._cache_lock:
            cached = self._cached
            if (cached is None or cached[1] is not snapshot
                    or now - cached[0] > self.CACHE_SECONDS):
                cached = (now, snapshot, spb.GetStationResponse(
                    station=station_to_proto(self.rt, snapshot)))
                self._cached = cached
        caller = current_identity()
        if caller is None:
            return cached[2]
        response = spb.GetStationResponse()
        response.CopyFrom(cached[2])
        response.caller_name, response.caller_role = caller.name, caller.role.value
        return response

    async def WatchStation(self, request, context):
        """A coroutine on the server's loop, handed the broadcast's message at each change (as
        it happens: `interval_seconds` is checked but no longer paces anything)."""
        limits.watch_interval(request.interval_seconds)
        await enter_stream(self.streams, context)
        try:
            seen = -1
            while True:
                await checked(context, lambda ctx: _end_if_stopping(self.rt, ctx))
                version, message = self.broadcast.current()
                if version != seen and message is not None:
                    seen = version
                    yield message  # the one message every watcher is handed
                    continue  # look again before waiting: a change may have come meanwhile
                await self.broadcast.signal.wait()
        finally:
            self.streams.leave()

    def _lane(self, context: grpc.ServicerContext, name: str) -> LaneRunner:
        """The printer a maintenance call names; "" names the only one."""
        lanes = self.rt.lanes
        if not name and len(lanes) == 1:
            return lanes[0]
        lane = self.rt.lane(name)
        if lane is None:
            names = ", ".join(lane.name for lane in lanes)
            abort_fault(context, Fault("LANE_UNKNOWN", f"this station has no printer {name!r}"
                                       if name else "this station has several printers and "
                                       "the request names none", f"give lane, one of: {names}"),
                        grpc.StatusCode.INVALID_ARGUMENT, field="lane")
        return lane

    def _maintenance(self, context: grpc.ServicerContext, lane_name: str, action: str,
                     **kwargs: Any) -> Any:
        """A maintenance step on a printer. It is the remedy of printer faults, so it runs
        while they are up; the printer's condition afterwards goes back to the caller."""
        lane = self._lane(context, lane_name)
        printer = lane.part.printer
        deadline = time.monotonic() + _wait_budget(context)
        while not lane.lock.acquire(timeout=0.5):
            if time.monotonic() > deadline:
                abort_fault(context, Fault("PRINTER_BUSY", "the printer is making a card",
                                           "try again when the card is done"),
                            grpc.StatusCode.DEADLINE_EXCEEDED)
        try:
            result = getattr(printer, action)(**kwargs)
            condition = _printer_condition(printer.status())
        except PrinterFault as exc:
            abort_fault(context, fault_of(exc))
        finally:
            lane.lock.release()
        self.rt.refresh()
        return result, condition

    def CalibrateRibbonSensor(self, request, context):
        calibration, condition = self._maintenance(context, request.lane,
                                                   "calibrate_ribbon_sensor")
        sensor = spb.SensorCalibration(ok=calibration.ok, offset_um=calibration.offset_um,
                                       dirt_percent=calibration.dirt_percent)
        return spb.CalibrateRibbonSensorResponse(printer=condition, calibration=sensor)

    def CleanCardPath(self, request, context):
        return spb.CleanCardPathResponse(
            printer=self._maintenance(context, request.lane, "clean_card_path")[1])

    def ResetPrinter(self, request, context):
        return spb.ResetPrinterResponse(
            printer=self._maintenance(context, request.lane, "reset", soft=request.soft)[1])


class ReturnServicer(returns_pb2_grpc.ReturnServiceServicer):
    def __init__(self, runtime: StationRuntime) -> None:
        self.rt = runtime

    def ListReturns(self, request, context):
        outbox = self.rt.station.outbox
        if request.status == rpb.RETURN_STATUS_DELIVERED:
            entries = outbox.delivered()
        elif request.status == rpb.RETURN_STATUS_FAILED:
            entries = outbox.failed()
        else:
            entries = outbox.pending() + outbox.failed()
        return rpb.ListReturnsResponse(returns=[self._entry(e) for e in entries])

    @staticmethod
    def _entry(entry: OutboxEntry) -> rpb.Return:
        record = entry.record
        return rpb.Return(
            id=entry.id, issuance_id=entry.issuance_id, idempotency_key=entry.idempotency_key,
            status=rpb.ReturnStatus.Value(f"RETURN_STATUS_{entry.status.value.upper()}"),
            attempts=entry.total_attempts, next_attempt_at=timestamp(
                entry.next_attempt_at if entry.status is OutboxStatus.PENDING else None),
            last_error=entry.last_error or "", ack=entry.ack or "",
            card_number=record.get("card_number", ""),
            id_number_masked=mask_id_number(record.get("id_number", "")),
            last_error_code=entry.last_error_code, created_at=timestamp(entry.created_at),
        )  # fmt: skip

    def RetryReturns(self, request, context):
        count = self.rt.station.outbox.retry_now(list(request.ids) or None)
        self.rt.station.worker.wake()
        return rpb.RetryReturnsResponse(scheduled=count)
