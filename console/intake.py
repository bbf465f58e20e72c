"""The console's intake and card-life screens: 采集 (photo from the browser's camera or a file,
the application's fields, then 交费登记 and 即制卡标注), 领卡启用 (recalling an outstanding
temporary card in the same flow), 挂失解挂注销 and 补换卡, each change with its receipt (回执)
as a PDF the operator opens and prints.

The normalised photo and the receipts stay in the console's memory for the session that made
them (a few of each): the browser holds only their ids.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cardstation.protos.cardstation.v1 import intake_pb2 as inpb

from .client import ApiError
from .intake_client import LOSS_KINDS, REPLACEMENT_KINDS
from .responses import forbidden as _forbidden
from .responses import in_thread as _thread

if TYPE_CHECKING:
    from .app import Console
    from .security import Session

#: as personalization/intake.py has them (the server checks; tests/test_console_intake.py
#: compares the two)
PERSON_STATUSES = ("在职", "退休", "城乡居民", "学生", "灵活就业", "其他")
HUKOU_TYPES = ("城镇", "农村")
BANKS = ("中国工商银行", "中国农业银行", "中国银行", "中国建设银行", "中国邮政储蓄银行")
TEXT_FIELDS = ("hukou_address", "phone", "postal_address", "employer_name", "employer_code")
PERSON_FIELDS = ("id_number", "name", "sex", "nation", "birth_date", "id_address")
#: screen -> its operations, the first one the form's own (Enter)
SCREENS = {"handover": ("HAND_OVER",), "loss": ("LOSS_TEMPORARY", "LOSS_FORMAL", "LIFT",
                                                 "CANCEL"),
           "replace": ("REPLACE",)}
#: after a change, the buttons of the next steps
NEXT = {"APPLICATION": ("FEE", "MARK"), "FEE": ("MARK",)}
OPERATIONS = ("LOOKUP", "FEE", "MARK", "HAND_OVER", "LOSS_TEMPORARY", "LOSS_FORMAL", "LIFT",
              "CANCEL", "REPLACE")
_KEEP = 8  # photos and receipts kept per console (the latest)


class _Kept:
    """The latest few byte strings, each for the session that made it."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, session: Session, data: bytes) -> str:
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._items[key] = (session.csrf, data)
            while len(self._items) > _KEEP * 4:
                self._items.popitem(last=False)
        return key

    def get(self, session: Session, key: str) -> bytes | None:
        with self._lock:
            owner, data = self._items.get(key, ("", b""))
        return data if owner and secrets.compare_digest(owner, session.csrf) else None


class IntakeScreens:
    def __init__(self, console: Console) -> None:
        self.c = console
        self.photos = _Kept()
        self.receipts = _Kept()
        # the next-step buttons name the holder by a reference: no full ID number in the page
        self.holders = _Kept()

    # -- pages ------------------------------------------------------------------------------
    async def intake_page(self, request: Request) -> Response:
        session = self.c._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        return self.c.render("intake.html", session, nav="intake", fault=None, id_card=None,
                             person_statuses=PERSON_STATUSES, hukou_types=HUKOU_TYPES,
                             banks=BANKS, text_fields=TEXT_FIELDS)

    async def life_page(self, request: Request) -> Response:
        session = self.c._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        screen = request.url.path.strip("/")
        return self.c.render("card_life.html", session, nav=screen, screen=screen,
                             ops=SCREENS[screen], banks=BANKS)

    # -- 采集 -------------------------------------------------------------------------------
    async def read_id_card(self, request: Request) -> Response:
        session, _ = await self.c._checked(request)
        if session is None:
            return _forbidden()
        try:
            card = await _thread(self.c.api.read_id_card, session.token)
        except ApiError as exc:
            return self.c.render("intake_person.html", session, id_card=None,
                                 fault=self._fault(session, exc))
        return self.c.render("intake_person.html", session, id_card=card, fault=None)

    async def photo(self, request: Request) -> Response:
        """A camera frame or a loaded file, normalised by the server: the photo to confirm, or
        why it cannot be one."""
        session, form = await self.c._checked(request)
        if session is None:
            return _forbidden()
        upload = form.get("picture")
        picture = await upload.read() if hasattr(upload, "read") else b""
        try:
            photo = await _thread(self.c.api.normalise_photo, session.token, picture,
                                  bool(form.get("whiten")))
        except ApiError as exc:
            return self.c.render("intake_photo.html", session, fault=self._fault(session, exc))
        return self.c.render("intake_photo.html", session, fault=None,
                             photo_id=self.photos.put(session, photo.photo_jpeg),
                             photo_b64=base64.b64encode(photo.photo_jpeg).decode("ascii"),
                             bytes=len(photo.photo_jpeg), quality=photo.quality,
                             luma=photo.background_luma, whitened=photo.whitened)

    async def submit(self, request: Request) -> Response:
        session, form = await self.c._checked(request)
        if session is None:
            return _forbidden()
        values = {k: str(form.get(k, "")).strip() for k in
                  (*PERSON_FIELDS, "person_status", "hukou_type", *TEXT_FIELDS, "bank_name")}
        values["id_number"] = values["id_number"].upper()
        photo = self.photos.get(session, str(form.get("photo_id", "")))
        if photo is None or not form.get("photo_confirmed"):
            tr = self.c.fault_view(session, "PHOTO_NOT_CONFIRMED", "", "")
            return self._result(session, "APPLICATION", values["id_number"], fault=tr)
        try:
            change = await _thread(self.c.api.submit_application, session.token,
                                   inpb.NewApplication(photo_jpeg=photo, **values))
        except ApiError as exc:
            return self._result(session, "APPLICATION", values["id_number"],
                                fault=self._fault(session, exc))
        return self._changed(session, "APPLICATION", values["id_number"], change)

    # -- the card's life ---------------------------------------------------------------------
    async def change(self, request: Request) -> Response:
        session, form = await self.c._checked(request)
        if session is None:
            return _forbidden()
        op = request.path_params["operation"].upper()
        if op not in OPERATIONS:
            return Response("unknown operation", status_code=404)
        id_number = self._holder(session, form)
        try:
            if op == "LOOKUP":
                card = await _thread(self.c.api.card_life, session.token, id_number)
                return self._result(session, op, id_number, card=card)
            change = await _thread(self._call, session, op, id_number, form)
        except ApiError as exc:
            return self._result(session, op, id_number, fault=self._fault(session, exc))
        return self._changed(session, op, id_number, change)

    def _call(self, session: Session, op: str, id_number: str, form: dict[str, Any]) -> Any:
        api, token = self.c.api, session.token
        if op.startswith("LOSS_"):
            return api.card_change(token, "LOSS", id_number,
                                   loss_kind=LOSS_KINDS[op.removeprefix("LOSS_")])
        if op == "CANCEL":
            return api.card_change(token, "CANCEL", id_number,
                                   reason=str(form.get("reason", "")).strip())
        if op == "REPLACE":
            kind = REPLACEMENT_KINDS.get(str(form.get("kind", "")), 0)
            return api.card_change(token, "REPLACE", id_number, replacement_kind=kind,
                                   bank_name=str(form.get("bank_name", "")).strip())
        return api.card_change(token, op, id_number)

    async def recall_temporary(self, request: Request) -> Response:
        """领卡启用 refused for an outstanding temporary card: the operator puts it on the desk
        reader and recalls it here, then the new card (the same flow)."""
        session, form = await self.c._checked(request)
        if session is None:
            return _forbidden()
        id_number = self._holder(session, form)
        try:
            await _thread(self.c.api.recall_temporary, session.token)
        except ApiError as exc:
            return self._result(session, "TEMP_RECALL", id_number,
                                fault=self._fault(session, exc))
        return self._result(session, "TEMP_RECALL", id_number, recalled=True)

    async def receipt(self, request: Request) -> Response:
        session = self.c._session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        pdf = self.receipts.get(session, request.path_params["receipt_id"])
        if pdf is None:
            return Response("no such receipt (this session's latest are kept)",
                            status_code=404)
        return Response(pdf, media_type="application/pdf",
                        headers={"content-disposition": "inline; filename=receipt.pdf"})

    # -- plumbing ----------------------------------------------------------------------------
    def _holder(self, session: Session, form: dict[str, Any]) -> str:
        """The ID number typed, or the one an earlier result's buttons refer to."""
        typed = str(form.get("id_number", "")).strip().upper()
        if typed:
            return typed
        kept = self.holders.get(session, str(form.get("holder", "")))
        return kept.decode("ascii") if kept else ""

    def _fault(self, session: Session, exc: ApiError) -> dict[str, str]:
        view = self.c.fault_view(session, exc.code, exc.cause, exc.remedy)
        if exc.fields:  # the fields a refused application names, in the operator's words
            from .i18n import Translator

            tr = Translator(session.locale)
            view["detail"] = "、".join(tr.gettext(f"intake.field:{f}")
                                      for f in exc.fields.split(","))
        return view

    def _changed(self, session: Session, op: str, id_number: str, change: Any) -> Response:
        receipt_id = self.receipts.put(session, change.receipt_pdf) if change.receipt_pdf \
            else ""
        return self._result(session, op, id_number, card=change.card, receipt_id=receipt_id,
                            next_ops=NEXT.get(op, ()))

    def _result(self, session: Session, op: str, id_number: str, **values: Any) -> Response:
        base = {"ok": values.get("fault") is None, "fault": None, "card": None,
                "receipt_id": "", "next_ops": (), "recalled": False}
        holder = self.holders.put(session, id_number.encode("ascii", "replace"))
        return self.c.render("card_result.html", session, op=op, holder=holder,
                             **{**base, **values})

    def routes(self) -> list[Any]:
        return [
            Route("/intake", self.intake_page, methods=["GET"]),
            Route("/intake/idcard", self.read_id_card, methods=["POST"]),
            Route("/intake/photo", self.photo, methods=["POST"]),
            Route("/intake/submit", self.submit, methods=["POST"]),
            *(Route(f"/{screen}", self.life_page, methods=["GET"]) for screen in SCREENS),
            Route("/card-life/recall-temporary", self.recall_temporary, methods=["POST"]),
            Route("/card-life/{operation:str}", self.change, methods=["POST"]),
            Route("/receipts/{receipt_id:str}", self.receipt, methods=["GET"]),
        ]

