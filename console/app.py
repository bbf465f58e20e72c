"""The console's pages: login, 制卡 (make a card) with its live step list, and the job actions.

Every action is one gRPC call made with the operator's own token; the server enforces roles.
Pages are Jinja2 templates; htmx swaps fragments and the SSE extension follows a job.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
from cardstation.protos.cardstation.v1 import station_pb2 as spb
from cardstation.protos.cardstation.v1 import window_pb2 as wpb

from .client import ApiError, StationApi
from .i18n import DEFAULT_LOCALE, LOCALES, Translator
from .intake import IntakeScreens
from .responses import forbidden as _forbidden
from .responses import in_thread as _thread
from .security import COOKIE, CSP, Session, Sessions, csrf_ok

HERE = Path(__file__).resolve().parent
STEPS = ("QUEUED", "FETCHED", "PREVIEWED", "FED", "CHIP_WRITTEN", "VERIFIED", "RETURN_QUEUED",
         "PRINTED", "EJECTED", "DONE")
_ID_SHAPE = re.compile(r"^[0-9]{17}[0-9Xx]$")
# 窗口业务: the PIN operations (the holder types on the PIN pad; the console never sees a PIN)
PIN_OPERATIONS = ("VERIFY", "CHANGE", "UNBLOCK", "RESET")
# the PIN-pad entries each operation asks of the holder, in order (what the waiting screen says)
PIN_ENTRIES = {"VERIFY": ("ENTER_PIN",), "CHANGE": ("ENTER_PIN", "ENTER_NEW_PIN",
                                                    "CONFIRM_NEW_PIN"),
               "UNBLOCK": (), "RESET": ("ENTER_NEW_PIN", "CONFIRM_NEW_PIN"),
               "TEMP_ISSUE": ("ENTER_NEW_PIN", "CONFIRM_NEW_PIN"),
               "TEMP_REWRITE": ("ENTER_NEW_PIN", "CONFIRM_NEW_PIN")}
# the 11 fields of a card read (iReadCardBas), in the order the card lists them, and the bank
# account
CARD_FIELDS = ("region", "id_number_masked", "card_number", "card_id_code", "name",
               "atr_historical", "spec_version", "issue_date", "expiry_date", "terminal_number",
               "terminal_device", "bank_account_masked")
# masked fields -> the RevealCardNumbersResponse field that has them in full
REVEALED = {"id_number_masked": "id_number", "bank_account_masked": "bank_account"}
# reasons whose server text carries specifics the catalogue's general words cannot (what is
# left half done, which field is wrong, the device's own error): shown under them as detail
_DETAILED = ("TEMPORARY_ISSUE_INCOMPLETE", "TEMPORARY_RECALL_INCOMPLETE", "INVALID_HOLDER",
             "PINPAD_", "IDREADER_", "CMS_", "CARD_ERROR", "CARD_REFUSED", "KEY_SERVICE")
_SAFE_ACTIONS = frozenset({"RESUME", "REJECT_CARD", "CANCEL", "MARK_SPOILED",
                           "RESTORE_AND_RESEND", "REPRINT", "CALIBRATE_RIBBON_SENSOR",
                           "CLEAN_CARD_PATH", "RESET_PRINTER"})


def state_name(value: int) -> str:
    return ipb.IssuanceState.Name(value).removeprefix("ISSUANCE_STATE_")


def action_name(value: int) -> str:
    return ipb.IssuanceAction.Name(value).removeprefix("ISSUANCE_ACTION_")


class SecurityHeaders:
    """A strict CSP and the usual hardening headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY"),
                            (b"cache-control", b"no-store")]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class Console:
    def __init__(self, api: StationApi, sessions: Sessions | None = None,
                 secure_cookie: bool = False) -> None:
        self.api = api
        self.sessions = sessions or Sessions()
        self.secure_cookie = secure_cookie
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(["html"]))

    # -- plumbing ---------------------------------------------------------------------------
    def _session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def render(self, name: str, session: Session | None, status: int = 200,
               **values: Any) -> HTMLResponse:
        tr = Translator(session.locale if session else DEFAULT_LOCALE)
        html = self.templates.get_template(name).render(
            _=tr.gettext, tr=tr, session=session, steps=STEPS, state_name=state_name,
            action_name=action_name, **values)
        return HTMLResponse(html, status_code=status)

    def fault_view(self, session: Session, code: str, cause: str, remedy: str) -> dict[str, str]:
        tr = Translator(session.locale)
        cause_text, remedy_text = tr.fault(code, cause, remedy)
        detail = ""
        if code.startswith(_DETAILED) and cause and cause != cause_text:
            detail = cause if not remedy or remedy == remedy_text else f"{cause} — {remedy}"
        return {"code": code, "cause": cause_text, "remedy": remedy_text, "detail": detail}

    def error(self, session: Session, exc: ApiError, status: int = 200,
              request: Request | None = None) -> HTMLResponse:
        """The refusal's cause and remedy: a fragment for htmx, a whole page (with the
        navigation) when `request` is a page the browser navigated to."""
        values = {"fault": self.fault_view(session, exc.code, exc.cause, exc.remedy),
                  "issuance_id": exc.issuance_id}
        if request is not None and not request.headers.get("hx-request"):
            screen = request.url.path.strip("/").split("/")[0]
            nav = {"": "make", "jobs": "records"}.get(screen, screen)
            return self.render("error_page.html", session, status=status, nav=nav,
                               back="/" if nav == "make" else f"/{nav}", **values)
        return self.render("fault.html", session, status=status, **values)

    async def _checked(self, request: Request) -> tuple[Session | None, dict[str, Any]]:
        """The session of a state-changing request whose CSRF token matches, and its form."""
        session = self._session(request)
        form = dict(await request.form())
        sent = request.headers.get("x-csrf-token") or form.get("csrf")
        if session is None or not csrf_ok(session, str(sent or "")):
            return None, form
        return session, form

    # -- pages ------------------------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        return self.render("login.html", None, error=None)

    async def login(self, request: Request) -> Response:
        form = dict(await request.form())
        token = str(form.get("token", "")).strip()
        locale = str(form.get("locale", DEFAULT_LOCALE))
        locale = locale if locale in LOCALES else DEFAULT_LOCALE
        try:  # the server decides who may enter, and with which role
            name, role = await _thread(self.api.whoami, token)
        except ApiError as exc:
            tr = Translator(locale)
            return self.render("login.html", None, status=401, error=tr.fault(
                exc.code, exc.cause, exc.remedy))
        cookie, _ = self.sessions.open(token, locale, name, role)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict",
                            secure=self.secure_cookie, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        session, _ = await self._checked(request)
        if session is None:
            return _forbidden()
        self.sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def home(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        try:
            station = await _thread(self.api.get_station, session.token)
        except ApiError as exc:
            return self.error(session, exc, request=request)
        problems = [self.fault_view(session, p.reason_code, p.cause, p.remedy)
                    for p in station.problems]
        return self.render("make.html", session, station=station, problems=problems,
                           nav="make")

    async def preview(self, request: Request) -> Response:
        session, form = await self._checked(request)
        if session is None:
            return _forbidden()
        id_number = str(form.get("id_number", "")).strip().upper()
        tr = Translator(session.locale)
        if not _ID_SHAPE.match(id_number):
            return self.render("fault.html", session, fault={
                "code": "ID_NUMBER_INVALID", "cause": tr.gettext("cause:ID_NUMBER_SHAPE"),
                "remedy": tr.gettext("remedy:ID_NUMBER_INVALID")}, issuance_id="")
        try:  # one call: the preview carries the application it was drawn from
            preview = await _thread(self.api.preview, session.token, id_number)
        except ApiError as exc:
            return self.error(session, exc)
        application = preview.application
        images = [base64.b64encode(png).decode("ascii")
                  for png in (preview.front_png, preview.back_png) if png]
        return self.render("preview.html", session, application=application,
                           id_number=id_number, images=images, findings=preview.findings)

    async def issue(self, request: Request) -> Response:
        session, form = await self._checked(request)
        if session is None:
            return _forbidden()
        id_number = str(form.get("id_number", "")).strip().upper()
        try:
            created = await _thread(self.api.create, session.token, id_number)
        except ApiError as exc:
            return self.error(session, exc)
        return self.render("job.html", session, job=created.issuance, created=created.created)

    async def job(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        try:
            job = await _thread(self.api.get, session.token, request.path_params["job_id"])
        except ApiError as exc:
            return self.error(session, exc, request=request)
        page = "job.html" if request.headers.get("hx-request") else "jobpage.html"
        return self.render(page, session, job=job, created=True, nav="records")

    async def records(self, request: Request) -> Response:
        """记录: the jobs, newest first, filtered by state and by the applicant's ID number."""
        session = self._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        wanted = request.query_params.get("state", "")
        state = ipb.IssuanceState.Value(f"ISSUANCE_STATE_{wanted}") \
            if f"ISSUANCE_STATE_{wanted}" in ipb.IssuanceState.keys() else 0
        holder = request.query_params.get("id_number", "").strip().upper()[:64]
        try:
            page = await _thread(self.api.list_issuances, session.token, state,
                                 request.query_params.get("page", ""), id_number=holder)
        except ApiError as exc:
            return self.error(session, exc, request=request)
        return self.render("records.html", session, page=page, wanted=wanted, nav="records",
                           holder=holder,
                           states=[n.removeprefix("ISSUANCE_STATE_")
                                   for n in ipb.IssuanceState.keys()[1:]])

    async def returns(self, request: Request) -> Response:
        """回盘: returns not yet at the CMS, with age, attempts and the last error."""
        session = self._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        try:
            entries = await _thread(self.api.list_returns, session.token)
        except ApiError as exc:
            return self.error(session, exc, request=request)
        now = time.time()
        ages = {e.id: int(now - e.created_at.seconds) if e.created_at.seconds else 0
                for e in entries}
        return self.render("returns.html", session, entries=entries, ages=ages, nav="returns",
                           notice=request.query_params.get("scheduled"))

    async def retry_returns(self, request: Request) -> Response:
        session, _ = await self._checked(request)
        if session is None:
            return _forbidden()
        try:
            count = await _thread(self.api.retry_returns, session.token, [])
        except ApiError as exc:
            return self.error(session, exc)
        return RedirectResponse(f"/returns?scheduled={count}", status_code=303)

    async def devices(self, request: Request) -> Response:
        """设备: the station picture, live (WatchStation), with the maintenance buttons."""
        session = self._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        try:
            station = await _thread(self.api.get_station, session.token)
        except ApiError as exc:
            return self.error(session, exc, request=request)
        return self.render("devices.html", session, station=station, nav="devices",
                           picture=self._station_html(session, station))

    def _station_html(self, session: Session, station: Any) -> str:
        tr = Translator(session.locale)
        devices = []
        for d in station.devices:
            cause, remedy = tr.fault(d.reason_code, d.fault, d.remedy) if d.reason_code \
                else (d.fault, d.remedy)
            devices.append({"name": d.name, "status": spb.DeviceStatus.Name(d.status)
                            .removeprefix("DEVICE_STATUS_"), "cause": cause, "remedy": remedy,
                            "address": d.address, "lane": d.lane})
        problems = [self.fault_view(session, p.reason_code, p.cause, p.remedy)
                    for p in station.problems]
        return self.templates.get_template("station.html").render(
            _=tr.gettext, station=station, devices=devices, problems=problems,
            several=len(station.lanes) > 1)

    async def station_events(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return Response("login first", status_code=401)
        return _bridge(lambda: self.api.watch_station(session.token), "station",
                       lambda reply: self._station_html(session, reply.station))

    async def maintain(self, request: Request) -> Response:
        session, form = await self._checked(request)
        if session is None:
            return _forbidden()
        action = request.path_params["action"]
        if action not in ("CALIBRATE_RIBBON_SENSOR", "CLEAN_CARD_PATH", "RESET_PRINTER"):
            return Response("unknown action", status_code=404)
        lane = str(form.get("lane", "")).strip()[:32]  # the printer, at a station with several
        try:
            await _thread(self.api.maintain, session.token, action, lane)
            station = await _thread(self.api.get_station, session.token)
        except ApiError as exc:
            return self.error(session, exc)
        return HTMLResponse(self._station_html(session, station))

    async def act(self, request: Request) -> Response:
        session, _ = await self._checked(request)
        if session is None:
            return _forbidden()
        job_id = request.path_params["job_id"]
        action = request.path_params["action"]
        if action not in _SAFE_ACTIONS:
            return Response("unknown action", status_code=404)
        try:
            await _thread(self.api.act, session.token, job_id, action)
            job = await _thread(self.api.get, session.token, job_id)
        except ApiError as exc:
            return self.error(session, exc)
        return self.render("job.html", session, job=job, created=False)

    async def events(self, request: Request) -> Response:
        """The job's steps as server-sent events: one `step` per event, `final` at the end."""
        session = self._session(request)
        if session is None:
            return Response("login first", status_code=401)
        job_id = request.path_params["job_id"]

        async def stream() -> AsyncIterator[dict[str, str]]:
            call = self.api.watch(session.token, job_id)
            try:
                async for reply in iterate_in_threadpool(_stream_of(call)):
                    event = reply.event
                    yield {"event": "step", "data": self._step_html(session, event)}
                    if event.final:
                        job = await _thread(self.api.get, session.token, job_id)
                        html = self.templates.get_template("result.html").render(
                            **self._result_values(session, job))
                        yield {"event": "final", "data": html}
                        return
            except ApiError as exc:
                html = self.templates.get_template("fault.html").render(
                    _=Translator(session.locale).gettext, issuance_id="", fault=self.fault_view(
                        session, exc.code, exc.cause, exc.remedy))
                yield {"event": "final", "data": html}
            finally:
                call.cancel()  # the browser left: end the server's stream too

        return EventSourceResponse(stream(), ping=15)

    def _step_html(self, session: Session, event: ipb.IssuanceEvent) -> str:
        tr = Translator(session.locale)
        state = state_name(event.state)
        fault = None
        if event.reason_code:
            fault = self.fault_view(session, event.reason_code, event.message.partition(
                " — ")[0], event.remedy)
        at = event.at.ToDatetime().strftime("%H:%M:%S") if event.at.seconds else ""
        return self.templates.get_template("step.html").render(
            _=tr.gettext, tr=tr, state=state, message=event.message, fault=fault, at=at,
            at_ms=event.at.ToMilliseconds())

    def _result_values(self, session: Session, job: ipb.Issuance) -> dict[str, Any]:
        tr = Translator(session.locale)
        fault = None
        if job.reason_code and state_name(job.state) != "DONE":
            fault = self.fault_view(session, job.reason_code, job.cause or job.reason,
                                    job.remedy)
        actions = [action_name(a) for a in job.actions] if session.may_act else []
        return {"_": tr.gettext, "tr": tr, "job": job, "state": state_name(job.state),
                "fault": fault, "actions": actions, "session": session}

    # -- 读身份证 on the make-card page ------------------------------------------------------
    async def read_id_card(self, request: Request) -> Response:
        """The GA 467 reader's ID card: its number goes into the ID field, its name beside it."""
        session, form = await self._checked(request)
        if session is None:
            return _forbidden()
        typed = str(form.get("id_number", "")).strip()
        try:
            card = await _thread(self.api.read_id_card, session.token)
        except ApiError as exc:
            return self.render("idfield.html", session, id_number=typed, id_card=None,
                               fault=self.fault_view(session, exc.code, exc.cause, exc.remedy))
        return self.render("idfield.html", session, id_number=card.id_number, id_card=card,
                           fault=None)

    # -- 窗口业务 -----------------------------------------------------------------------------
    async def window_page(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        return self.render("window.html", session, nav="window", pin_operations=PIN_OPERATIONS,
                           pin_entries=PIN_ENTRIES)

    def _window_fault(self, session: Session, op: str, exc: ApiError) -> HTMLResponse:
        return self.render("window_result.html", session, op=op, ok=False, fault=self.fault_view(
            session, exc.code, exc.cause, exc.remedy))

    async def window_read(self, request: Request) -> Response:
        """读卡: the 11 fields and the bank account, the ID and bank numbers masked (显示完整号码
        reveals them through an audited call)."""
        return await self._card_read(request, reveal=False)

    async def window_reveal(self, request: Request) -> Response:
        """显示完整号码: the card read again with its numbers in full (the server audits it)."""
        return await self._card_read(request, reveal=True)

    async def _card_read(self, request: Request, reveal: bool) -> Response:
        session, _ = await self._checked(request)
        if session is None:
            return _forbidden()
        full = None
        try:
            if reveal:
                numbers = await _thread(self.api.reveal_card_numbers, session.token)
                read = numbers.card
                full = {f: getattr(numbers, attr) for f, attr in REVEALED.items()}
            else:
                read = await _thread(self.api.read_card, session.token)
        except ApiError as exc:
            return self._window_fault(session, "READ", exc)
        return self.render("window_result.html", session, op="READ", ok=True, fault=None,
                           info=read.info, fields=CARD_FIELDS, full=full,
                           kind=wpb.CardKind.Name(read.kind).removeprefix("CARD_KIND_"),
                           generation=read.generation)

    async def pin_events(self, request: Request) -> Response:
        """The holder's PIN-pad progress as server-sent events: one dot per digit typed."""
        session = self._session(request)
        if session is None:
            return Response("login first", status_code=401)
        tr = Translator(session.locale)
        template = self.templates.get_template("pin_progress.html")
        return _bridge(lambda: self.api.watch_pin_entry(session.token), "pin",
                       lambda reply: template.render(_=tr.gettext, p=reply.progress))

    async def window_verify_returned(self, request: Request) -> Response:
        """回执验卡: the card on the desk reader is the holder's (checked by the server)."""
        session, form = await self._checked(request)
        if session is None:
            return _forbidden()
        id_number = str(form.get("holder_id", "")).strip().upper()
        try:
            info = await _thread(self.api.verify_returned_card, session.token, id_number)
        except ApiError as exc:
            return self._window_fault(session, "VERIFY_RETURNED", exc)
        return self.render("window_result.html", session, op="VERIFY_RETURNED", ok=True,
                           fault=None, info=info, fields=CARD_FIELDS, kind="", generation=0)

    async def window_pin(self, request: Request) -> Response:
        """验证/修改/解锁/重置密码: one blocking call while the holder types on the PIN pad
        (run off the event loop; the page shows the waiting state meanwhile)."""
        session, _ = await self._checked(request)
        if session is None:
            return _forbidden()
        op = request.path_params["operation"].upper()
        if op not in PIN_OPERATIONS:
            return Response("unknown operation", status_code=404)
        try:
            await _thread(self.api.pin, session.token, op)
        except ApiError as exc:
            return self._window_fault(session, "PIN_" + op, exc)
        return self.render("window_result.html", session, op="PIN_" + op, ok=True, fault=None)

    async def window_temporary(self, request: Request) -> Response:
        """临时卡: issue (holder, optional agent; the holder sets the PIN), rewrite, recall."""
        session, form = await self._checked(request)
        if session is None:
            return _forbidden()
        op = request.path_params["operation"].upper()
        values = {k: str(form.get(k, "")).strip() for k in
                  ("holder_id", "holder_name", "agent_id", "agent_name")}
        try:
            if op == "ISSUE":
                card = await _thread(self.api.issue_temporary, session.token,
                                     values["holder_id"].upper(), values["holder_name"],
                                     values["agent_id"].upper(), values["agent_name"])
            elif op == "REWRITE":
                await _thread(self.api.rewrite_temporary, session.token)
                card = None
            elif op == "RECALL":
                card = await _thread(self.api.recall_temporary, session.token)
            else:
                return Response("unknown operation", status_code=404)
        except ApiError as exc:
            return self._window_fault(session, "TEMP_" + op, exc)
        return self.render("window_result.html", session, op="TEMP_" + op, ok=True, fault=None,
                           temporary=card)

    # -- 补打卡面 -----------------------------------------------------------------------------
    async def reprint_page(self, request: Request) -> Response:
        """The finished cards (made, and made but not yet at the CMS), each with 补打卡面."""
        session = self._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        holder = request.query_params.get("id_number", "").strip().upper()[:64]
        jobs: list[ipb.Issuance] = []
        try:  # the newest finished cards, or the holder's when a number is typed
            for state in (ipb.ISSUANCE_STATE_EJECTED, ipb.ISSUANCE_STATE_DONE):
                page = await _thread(self.api.list_issuances, session.token, state, "",
                                     id_number=holder)
                jobs += list(page.issuances)
        except ApiError as exc:
            return self.error(session, exc, request=request)
        jobs.sort(key=lambda j: j.updated_at.ToMilliseconds(), reverse=True)
        return self.render("reprint.html", session, jobs=jobs, nav="reprint", holder=holder)

    async def reprint_ready(self, request: Request) -> Response:
        """Step 1: put the card back into the rear feed slot; then confirm (step 2)."""
        session = self._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        try:
            job = await _thread(self.api.get, session.token, request.path_params["job_id"])
        except ApiError as exc:
            return self.error(session, exc, request=request)
        page = "reprint_ready.html" if request.headers.get("hx-request") else \
            "reprint_page.html"
        return self.render(page, session, job=job, fault=None, nav="reprint")

    async def reprint(self, request: Request) -> Response:
        session, _ = await self._checked(request)
        if session is None:
            return _forbidden()
        job_id = request.path_params["job_id"]
        try:
            job = await _thread(self.api.reprint, session.token, job_id)
        except ApiError as exc:
            try:
                job = await _thread(self.api.get, session.token, job_id)
            except ApiError:
                return self.error(session, exc)
            return self.render("reprint_ready.html", session, job=job, fault=self.fault_view(
                session, exc.code, exc.cause, exc.remedy))
        return self.render("reprint_done.html", session, job=job)

    def routes(self) -> list[Any]:
        return [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/", self.home, methods=["GET"]),
            Route("/preview", self.preview, methods=["POST"]),
            Route("/issue", self.issue, methods=["POST"]),
            Route("/records", self.records, methods=["GET"]),
            Route("/returns", self.returns, methods=["GET"]),
            Route("/returns/retry", self.retry_returns, methods=["POST"]),
            Route("/devices", self.devices, methods=["GET"]),
            Route("/devices/events", self.station_events, methods=["GET"]),
            Route("/devices/{action:str}", self.maintain, methods=["POST"]),
            Route("/idcard", self.read_id_card, methods=["POST"]),
            Route("/window", self.window_page, methods=["GET"]),
            Route("/window/read", self.window_read, methods=["POST"]),
            Route("/window/verify-returned", self.window_verify_returned, methods=["POST"]),
            Route("/window/reveal", self.window_reveal, methods=["POST"]),
            Route("/window/pin-events", self.pin_events, methods=["GET"]),
            Route("/window/pin/{operation:str}", self.window_pin, methods=["POST"]),
            Route("/window/temporary/{operation:str}", self.window_temporary,
                  methods=["POST"]),
            Route("/reprint", self.reprint_page, methods=["GET"]),
            Route("/reprint/{job_id:str}", self.reprint_ready, methods=["GET"]),
            Route("/reprint/{job_id:str}", self.reprint, methods=["POST"]),
            Route("/jobs/{job_id:str}", self.job, methods=["GET"]),
            Route("/jobs/{job_id:str}/events", self.events, methods=["GET"]),
            Route("/jobs/{job_id:str}/{action:str}", self.act, methods=["POST"]),
            *IntakeScreens(self).routes(),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]


def _stream_of(call: Any) -> Iterator[Any]:
    """A gRPC response stream whose errors come out as ApiError (a cancel ends it quietly)."""
    try:
        yield from call
    except grpc.RpcError as exc:
        if exc.code() is not grpc.StatusCode.CANCELLED:
            raise ApiError.of(exc) from None


def _bridge(open_call: Callable[[], Any], event: str,
            render: Callable[[Any], str]) -> EventSourceResponse:
    """A server stream of the API as server-sent events named `event`, one per reply; the
    API's stream ends with the browser's (or quietly when the API refuses)."""
    async def stream() -> AsyncIterator[dict[str, str]]:
        call = open_call()
        try:
            async for reply in iterate_in_threadpool(_stream_of(call)):
                yield {"event": event, "data": render(reply)}
        except ApiError:
            return
        finally:
            call.cancel()

    return EventSourceResponse(stream(), ping=15)


def create_app(api: StationApi, *, secure_cookie: bool = False,
               sessions: Sessions | None = None) -> Starlette:
    console = Console(api, sessions, secure_cookie)
    return Starlette(routes=console.routes(), middleware=[Middleware(SecurityHeaders)])
