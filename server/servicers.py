"""gRPC servicers over the station runtime (package cardstation.v1).

Errors are status codes with a google.rpc.ErrorInfo whose reason is stable and machine-readable
(see `_fail`); messages name cause and remedy and never carry a full ID number.
"""

from __future__ import annotations

import base64
import io
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import grpc

from cardstation.logs import mask_id_number
from cardstation.personalization import cms as cms_errors
from cardstation.personalization.face import render_back, render_front
from cardstation.personalization.journal import Issuance, IssuanceNotFound, State
from cardstation.personalization.model import Application
from cardstation.personalization.pipeline import IssuanceError, ReprintRefused, face_data
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

from .errors import abort_with
from .runtime import VERSION, StationRuntime, StationSnapshot

_DEFAULT_MESSAGES = {"FETCHED": "application fetched from the CMS and claimed"}
MAX_PAGE = 500
DEFAULT_PAGE = 50
JOB_WAIT = 600.0  # seconds a synchronous job RPC waits when the caller set no deadline


def _fail(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    """Map a domain error to a status code and an ErrorInfo reason."""
    code, reason = grpc.StatusCode.INTERNAL, "INTERNAL"
    if isinstance(exc, cms_errors.ApplicationNotFound):
        code, reason = grpc.StatusCode.NOT_FOUND, "APPLICATION_NOT_FOUND"
    elif isinstance(exc, cms_errors.NotMarkedForInstantIssuance):
        code, reason = grpc.StatusCode.FAILED_PRECONDITION, "NOT_MARKED_FOR_INSTANT_ISSUANCE"
    elif isinstance(exc, cms_errors.ClaimedElsewhere):
        code, reason = grpc.StatusCode.ALREADY_EXISTS, "CLAIMED_BY_ANOTHER_STATION"
    elif isinstance(exc, cms_errors.CmsUnavailable):
        code, reason = grpc.StatusCode.UNAVAILABLE, "CMS_UNAVAILABLE"
    elif isinstance(exc, cms_errors.CmsError):
        code, reason = grpc.StatusCode.FAILED_PRECONDITION, f"CMS_{exc.reason.upper()}"
    elif isinstance(exc, IssuanceNotFound):
        code, reason = grpc.StatusCode.NOT_FOUND, "ISSUANCE_NOT_FOUND"
    elif isinstance(exc, ReprintRefused):
        code, reason = grpc.StatusCode.FAILED_PRECONDITION, f"REPRINT_{exc.reason.upper()}"
    elif isinstance(exc, IssuanceError):
        code, reason = grpc.StatusCode.FAILED_PRECONDITION, exc.reason.upper()
    elif isinstance(exc, TimeoutError):
        code, reason = grpc.StatusCode.DEADLINE_EXCEEDED, "JOB_STILL_RUNNING"
    elif isinstance(exc, ValueError):
        code, reason = grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    abort_with(context, code, reason, str(exc))


def _wait_budget(context: grpc.ServicerContext) -> float:
    remaining = context.time_remaining()
    return JOB_WAIT if remaining is None else max(0.0, remaining - 0.2)


def application_from_proto(app: ipb.Application) -> Application:
    data: dict[str, Any] = {
        f: getattr(app, f) for f in ("id_number", "name", "sex", "nation", "birth_date",
                                     "birthplace", "card_number", "bank_name", "batch",
                                     "issue_date", "expiry_date")
    }
    missing = [k for k, v in data.items() if not v]
    if missing:
        raise ValueError(f"application is missing fields: {', '.join(missing)}")
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
    if issuance.data.get("reason_code") == "cancelled":
        return ipb.ISSUANCE_STATE_CANCELLED
    if issuance.state in (State.FETCHED, State.PREVIEWED) and runtime.is_queued(issuance.id):
        return ipb.ISSUANCE_STATE_QUEUED
    return ipb.IssuanceState.Value(f"ISSUANCE_STATE_{issuance.state.value}")


def issuance_to_proto(runtime: StationRuntime, issuance: Issuance) -> ipb.Issuance:
    chip = issuance.data.get("chip") or {}
    return ipb.Issuance(
        id=issuance.id,
        client_request_id=issuance.client_request_id or "",
        id_number_masked=mask_id_number(issuance.id_number),
        state=state_to_proto(runtime, issuance),  # type: ignore[arg-type]
        reason=issuance.reason,
        reason_code=str(issuance.data.get("reason_code", "")),
        chip=ipb.ChipResult(card_id_code=chip.get("card_id_code", ""), atr=chip.get("atr", ""),
                            bank_account=chip.get("bank_account", ""),
                            profile=chip.get("profile", "")),
        findings=[vpb.Finding(**f) for f in issuance.data.get("findings", [])],
        preview_path=str(issuance.data.get("preview", "")),
        created_at=issuance.created_at,
        updated_at=issuance.updated_at,
        reprints=int(issuance.data.get("reprints", 0)),
    )


def _png(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class IssuanceServicer(issuance_pb2_grpc.IssuanceServiceServicer):
    def __init__(self, runtime: StationRuntime) -> None:
        self.rt = runtime

    def _get(self, context: grpc.ServicerContext, issuance_id: str) -> Issuance:
        if not issuance_id:
            abort_with(context, grpc.StatusCode.INVALID_ARGUMENT, "ID_REQUIRED",
                       "give the issuance id")
        try:
            return self.rt.journal.get(issuance_id)
        except IssuanceNotFound as exc:
            _fail(context, exc)

    def GetApplication(self, request, context):
        try:
            app = self.rt.station.cms.fetch(request.id_number)
        except Exception as exc:
            _fail(context, exc)
        return ipb.GetApplicationResponse(application=application_to_proto(app))

    def PreviewCard(self, request, context):
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
            nation=app.nation, region=app.birthplace,
        )  # fmt: skip
        face = face_data(app, None)
        front = back = b""
        try:
            front, back = _png(render_front(face)), _png(render_back(face))
        except Exception:  # an undecodable photo is already a finding
            pass
        return ipb.PreviewCardResponse(front_png=front, back_png=back,
                                       findings=[vpb.Finding(**f.to_dict()) for f in findings])

    def CreateIssuance(self, request, context):
        request_id = request.client_request_id or None
        if request_id:
            existing = self.rt.journal.find_by_request_id(request_id)
            if existing is not None:
                return ipb.CreateIssuanceResponse(
                    issuance=issuance_to_proto(self.rt, existing), created=False)
        try:
            if request.HasField("application"):
                issuance = self.rt.pipeline.create(
                    application=application_from_proto(request.application),
                    client_request_id=request_id)
            elif request.id_number:
                issuance = self.rt.pipeline.create(request.id_number,
                                                   client_request_id=request_id)
            else:
                raise ValueError("give an ID number or a complete application")
        except Exception as exc:
            _fail(context, exc)
        self.rt.enqueue(issuance.id)
        return ipb.CreateIssuanceResponse(issuance=issuance_to_proto(self.rt, issuance),
                                          created=True)

    def GetIssuance(self, request, context):
        return ipb.GetIssuanceResponse(
            issuance=issuance_to_proto(self.rt, self._get(context, request.id)))

    def ListIssuances(self, request, context):
        size = request.page_size or DEFAULT_PAGE
        if not 0 < size <= MAX_PAGE:
            abort_with(context, grpc.StatusCode.INVALID_ARGUMENT, "PAGE_SIZE",
                       f"page_size must be 1..{MAX_PAGE}")
        state = None
        if request.state not in (ipb.ISSUANCE_STATE_UNSPECIFIED, ipb.ISSUANCE_STATE_QUEUED,
                                 ipb.ISSUANCE_STATE_CANCELLED):
            state = State(ipb.IssuanceState.Name(request.state).removeprefix("ISSUANCE_STATE_"))
        after = request.page_token or None
        if after is not None:
            try:
                self.rt.journal.get(after)
            except IssuanceNotFound:
                abort_with(context, grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN",
                           "page_token is not one this server gave out")
        page = self.rt.journal.list(state=state, limit=size + 1, after=after)
        more = len(page) > size
        page = page[:size]
        return ipb.ListIssuancesResponse(
            issuances=[issuance_to_proto(self.rt, i) for i in page],
            next_page_token=page[-1].id if more and page else "")

    def WatchIssuance(self, request, context) -> Iterator[ipb.WatchIssuanceResponse]:
        issuance = self._get(context, request.id)
        subscription = self.rt.events.subscribe(issuance.id)
        try:
            last_at = 0.0
            for event in self.rt.journal.events(issuance.id):
                last_at = event.at
                message = event.reason or _DEFAULT_MESSAGES.get(event.to_state.value, "")
                yield self._event(issuance.id, event.to_state.value, message, event.at, False)
            current = self.rt.journal.get(issuance.id)
            if current.state in (State.DONE, State.REJECTED, State.FAILED):
                yield self._event(current.id, current.state.value, current.reason or "",
                                  current.updated_at, True)
                return
            while context.is_active():
                try:
                    event = subscription.get(timeout=0.5)
                except queue.Empty:
                    continue
                if event.at <= last_at:
                    continue
                yield self._event(event.issuance_id, event.state, event.message, event.at,
                                  event.final)
                if event.final:
                    return
        finally:
            self.rt.events.unsubscribe(issuance.id, subscription)

    @staticmethod
    def _event(issuance_id: str, state: str, message: str, at: float,
               final: bool) -> ipb.WatchIssuanceResponse:
        return ipb.WatchIssuanceResponse(event=ipb.IssuanceEvent(
            issuance_id=issuance_id, state=ipb.IssuanceState.Value(f"ISSUANCE_STATE_{state}"),
            message=message, at=at, final=final))

    def CancelIssuance(self, request, context):
        issuance = self._get(context, request.id)
        if not self.rt.cancel(issuance.id):
            abort_with(context, grpc.StatusCode.FAILED_PRECONDITION, "NOT_CANCELLABLE",
                       "only a job still waiting for the printer can be cancelled; this one "
                       f"is {issuance.state.value}")
        issuance = self.rt.journal.transition(issuance.id, State.REJECTED,
                                              reason="cancelled before a card was fed",
                                              data={"reason_code": "cancelled"})
        return ipb.CancelIssuanceResponse(issuance=issuance_to_proto(self.rt, issuance))

    def ResumeIssuance(self, request, context):
        issuance = self._get(context, request.id)
        if issuance.state is not State.FAILED:
            abort_with(context, grpc.StatusCode.FAILED_PRECONDITION, "NOT_FAILED",
                       f"only a FAILED job can be resumed; this one is {issuance.state.value}")
        self.rt.enqueue(issuance.id)
        return ipb.ResumeIssuanceResponse(issuance=issuance_to_proto(self.rt, issuance))

    def ReprintFace(self, request, context):
        issuance = self._get(context, request.id)
        try:
            result = self.rt.enqueue(issuance.id, "reprint").wait(_wait_budget(context))
        except Exception as exc:
            _fail(context, exc)
        return ipb.ReprintFaceResponse(issuance=issuance_to_proto(self.rt, result))


def station_to_proto(runtime: StationRuntime, snap: StationSnapshot) -> spb.Station:
    queued, running = runtime.queue_counts()
    failed = len(runtime.journal.list(state=State.FAILED, limit=MAX_PAGE))
    pending = len(runtime.station.outbox.pending())
    return spb.Station(
        id=runtime.station.config.station.id,
        version=VERSION,
        devices=[spb.Device(name=d.name, address=d.address,
                            status=spb.DeviceStatus.Value(f"DEVICE_STATUS_{d.status}"),
                            fault=d.fault, vendor_code=d.vendor_code, remedy=d.remedy)
                 for d in snap.devices],
        supplies=spb.Supplies(ribbon_type=snap.ribbon_type,
                              ribbon_remaining=snap.ribbon_remaining,
                              ribbon_chip_present=snap.ribbon_chip_present, input_cards=-1),
        queue=spb.Queue(queued=queued, running=running, failed=failed,
                        returns_pending=pending),
    )


class StationServicer(station_pb2_grpc.StationServiceServicer):
    # Many consoles poll GetStation. Device changes show at once (a new snapshot object);
    # the queue figures, which cost two journal queries, may be up to this old.
    CACHE_SECONDS = 0.25

    def __init__(self, runtime: StationRuntime) -> None:
        self.rt = runtime
        self._cache_lock = threading.Lock()
        self._cached: tuple[float, object, spb.GetStationResponse] | None = None

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
            return cached[2]

    def WatchStation(self, request, context):
        interval = max(0.2, request.interval_seconds or 1.0)
        changes = self.rt.events.subscribe_station()
        try:
            last = None
            while context.is_active():
                message = station_to_proto(self.rt, self.rt.snapshot)
                if message != last:
                    yield spb.WatchStationResponse(station=message)
                    last = message
                try:
                    changes.get(timeout=interval)
                except queue.Empty:
                    pass
        finally:
            self.rt.events.unsubscribe_station(changes)

    def _maintenance(self, context: grpc.ServicerContext, action: str, **kwargs: Any) -> str:
        from cardstation.drivers.hiti.errors import PrinterError

        deadline = time.monotonic() + _wait_budget(context)
        while not self.rt.printer_lock.acquire(timeout=0.5):
            if time.monotonic() > deadline:
                abort_with(context, grpc.StatusCode.DEADLINE_EXCEEDED, "PRINTER_BUSY",
                           "the printer is making a card; try again when it is done")
        try:
            result = getattr(self.rt.station.printer, action)(**kwargs)
        except PrinterError as exc:
            abort_with(context, grpc.StatusCode.FAILED_PRECONDITION, "PRINTER_FAULT",
                       f"{exc} — {exc.remedy}")
        finally:
            self.rt.printer_lock.release()
        self.rt.refresh()
        return str(result)

    def CalibrateRibbonSensor(self, request, context):
        return spb.CalibrateRibbonSensorResponse(
            result=self._maintenance(context, "calibrate_ribbon_sensor"))

    def CleanCardPath(self, request, context):
        return spb.CleanCardPathResponse(result=self._maintenance(context, "clean_card_path"))

    def ResetPrinter(self, request, context):
        return spb.ResetPrinterResponse(
            result=self._maintenance(context, "reset", soft=request.soft))


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
    def _entry(entry: Any) -> rpb.Return:
        record = entry.record
        status = getattr(entry.status, "value", entry.status)
        return rpb.Return(
            id=entry.id, issuance_id=entry.issuance_id, idempotency_key=entry.idempotency_key,
            status=rpb.ReturnStatus.Value(f"RETURN_STATUS_{str(status).upper()}"),
            attempts=entry.attempts, next_attempt_at=entry.next_attempt_at or 0.0,
            last_error=entry.last_error or "", ack=entry.ack or "",
            card_number=record.get("card_number", ""),
            id_number_masked=mask_id_number(record.get("id_number", "")),
        )  # fmt: skip

    def RetryReturns(self, request, context):
        count = self.rt.station.outbox.retry_now(list(request.ids) or None)
        self.rt.station.worker.wake()
        return rpb.RetryReturnsResponse(scheduled=count)
