"""IntakeService: the holder's photo, the new application and the card's life at the window.

The CMS adapter must offer the port's CmsCardLife (else every call but NormalisePhoto answers
CARD_LIFE_NOT_OFFERED). The hand-over reads the card on the desk reader through the window
servicer (one desk operation at a time, its errors as WindowService gives them). Every change
answers with its receipt (回执) as a PDF, masked as the logs are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.faults import Fault, cms_fault, fault_of
from cardstation.personalization.intake import check_intake
from cardstation.personalization.model import IntakeApplication
from cardstation.personalization.photo import PhotoRefused, normalise_file, photo_spec
from cardstation.personalization.ports.cms import CardLife, CmsCardLife, CmsError
from cardstation.personalization.receipts import receipt_of, render_receipt
from cardstation.protos.cardstation.v1 import intake_pb2 as pb
from cardstation.protos.cardstation.v1 import intake_pb2_grpc

from .auth import current_identity
from .runtime import StationRuntime
from .servicers import _check_id_argument, abort_fault
from .window_servicer import WindowServicer

T = TypeVar("T")
_S = grpc.StatusCode
#: reason -> status where it is not FAILED_PRECONDITION (the CMS's refusals are)
_STATUS = {"HOLDER_HAS_CARD": _S.ALREADY_EXISTS, "APPLICATION_NOT_FOUND": _S.NOT_FOUND,
           "CMS_UNAVAILABLE": _S.UNAVAILABLE}
_LOSS = {pb.LOSS_KIND_TEMPORARY: "temporary", pb.LOSS_KIND_FORMAL: "formal"}
_REPLACEMENT = {pb.REPLACEMENT_KIND_LOST: "lost", pb.REPLACEMENT_KIND_DAMAGED: "damaged"}


def card_life_message(life: CardLife) -> pb.CardLife:
    return pb.CardLife(id_number_masked=mask_id_number(life.id_number), name=life.name,
                       state=life.state, card_number=life.card_number,
                       bank_name=life.bank_name, fee_registered=life.fee_registered,
                       temporary_card_out=life.temporary_card_out, replaces=life.replaces)


def _application(message: pb.NewApplication) -> IntakeApplication:
    return IntakeApplication(
        id_number=message.id_number, name=message.name, sex=message.sex,
        nation=message.nation, birth_date=message.birth_date, id_address=message.id_address,
        person_status=message.person_status, hukou_type=message.hukou_type,
        hukou_address=message.hukou_address, phone=message.phone,
        postal_address=message.postal_address, employer_name=message.employer_name,
        employer_code=message.employer_code, bank_name=message.bank_name,
        photo=message.photo_jpeg)


class IntakeServicer(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(self, runtime: StationRuntime, window: WindowServicer) -> None:
        self.rt = runtime
        self.window = window

    # ---- plumbing ----------------------------------------------------------------------

    @property
    def _spec(self) -> Any:
        section = self.rt.station.config.photo
        return photo_spec(section.min_kb, section.max_kb)

    def _cms(self, context: grpc.ServicerContext) -> Any:
        cms = self.rt.station.cms
        if not isinstance(cms, CmsCardLife):
            abort_fault(context, Fault(
                "CARD_LIFE_NOT_OFFERED", f"this station's CMS adapter ({type(cms).__name__}) "
                "offers no intake or card life", "do it in the CMS's own pages, or configure "
                "an adapter that implements CmsCardLife ([cms] kind)"))
        return cms

    @staticmethod
    def _refuse(context: grpc.ServicerContext, exc: CmsError) -> NoReturn:
        problem = cms_fault(exc)
        abort_fault(context, problem, _STATUS.get(problem.code, _S.FAILED_PRECONDITION))

    def _call(self, context: grpc.ServicerContext, action: Callable[[], T]) -> T:
        """`action` (a CMS call, a receipt), its failure a fault: never a bare traceback."""
        try:
            return action()
        except CmsError as exc:
            self._refuse(context, exc)
        except Exception as exc:
            abort_fault(context, fault_of(exc))

    def _change(self, context: grpc.ServicerContext, operation: str, id_number: str,
                application_number: str = "", reason: str = "") -> pb.CardLifeChange:
        """The card after `operation`, with its receipt."""
        cms = self._cms(context)
        life = self._call(context, lambda: cms.card_life(id_number))
        caller = current_identity()
        receipt = receipt_of(operation, life, station_id=self.rt.station.config.station.id,
                             operator=caller.name if caller else "-",
                             application_number=application_number, reason=reason)
        return pb.CardLifeChange(card=card_life_message(life),
                                 application_number=application_number,
                                 receipt_pdf=self._call(context, lambda: render_receipt(receipt)))

    # ---- the photo ---------------------------------------------------------------------

    def NormalisePhoto(self, request, context):
        try:
            photo = normalise_file(request.picture, self._spec,
                                   whiten_background=request.whiten)
        except PhotoRefused as refused:
            abort_fault(context, refused.fault, _S.INVALID_ARGUMENT)
        return pb.NormalisePhotoResponse(
            photo_jpeg=photo.jpeg, quality=photo.quality, whitened=photo.whitened,
            background_luma=photo.background.luma, exposure_gain=photo.background.gain)

    # ---- intake ------------------------------------------------------------------------

    def SubmitApplication(self, request, context):
        application = _application(request.application)
        _check_id_argument(context, application.id_number, "application.id_number")
        findings = check_intake(application, self._spec)
        if findings:
            abort_fault(context, Fault(
                "APPLICATION_INVALID", "the new application is incomplete or wrong: "
                + "; ".join(f.message for f in findings),
                "complete or correct the fields named (and retake the photo if it is named), "
                "then submit again"), _S.INVALID_ARGUMENT,
                fields=",".join(sorted({f.field for f in findings})))
        cms = self._cms(context)
        key = request.client_request_id or "intake-" + hashlib.sha256(
            repr(sorted(application.to_dict().items())).encode()).hexdigest()[:32]
        number = self._call(context, lambda: cms.submit_application(application, key))
        return pb.SubmitApplicationResponse(change=self._change(
            context, "application", application.id_number, number))

    def _do(self, context: grpc.ServicerContext, id_number: str, operation: str,
            change: Callable[[Any], Any], reason: str = "") -> pb.CardLifeChange:
        """`change(cms)` for the holder, then the card and the receipt of `operation`."""
        cms = self._cms(context)
        self._call(context, lambda: change(cms))
        return self._change(context, operation, id_number, reason=reason)

    def RegisterFee(self, request, context):
        _check_id_argument(context, request.id_number)
        return pb.RegisterFeeResponse(change=self._do(
            context, request.id_number, "fee", lambda cms: cms.register_fee(request.id_number)))

    def MarkInstantIssuance(self, request, context):
        _check_id_argument(context, request.id_number)
        return pb.MarkInstantIssuanceResponse(change=self._do(
            context, request.id_number, "mark",
            lambda cms: cms.mark_instant_issuance(request.id_number)))

    def GetCardLife(self, request, context):
        _check_id_argument(context, request.id_number)
        cms = self._cms(context)
        life = self._call(context, lambda: cms.card_life(request.id_number))
        return pb.GetCardLifeResponse(card=card_life_message(life))

    # ---- after the card ----------------------------------------------------------------

    def HandOverCard(self, request, context):
        _check_id_argument(context, request.id_number)
        cms = self._cms(context)
        services = self.window.window.services if self.window.window is not None else None
        reading = self.window.run(
            context, lambda: services.verify_returned_card(request.id_number))
        self._call(context, lambda: cms.enable_card(request.id_number,
                                                    reading.info.card_id_code))
        return pb.HandOverCardResponse(change=self._change(context, "hand_over",
                                                           request.id_number),
                                       card_number=reading.info.card_number)

    def ReportLoss(self, request, context):
        _check_id_argument(context, request.id_number)
        kind = _LOSS.get(request.loss_kind)
        if kind is None:
            abort_fault(context, Fault("LOSS_KIND_REQUIRED", "the loss report does not say "
                                       "whether it is temporary or formal", "choose 临时挂失 "
                                       "or 正式挂失"), _S.INVALID_ARGUMENT)
        return pb.ReportLossResponse(change=self._do(
            context, request.id_number, f"loss_{kind}",
            lambda cms: cms.report_loss(request.id_number, kind)))

    def LiftLoss(self, request, context):
        _check_id_argument(context, request.id_number)
        return pb.LiftLossResponse(change=self._do(
            context, request.id_number, "lift", lambda cms: cms.lift_loss(request.id_number)))

    def CancelCard(self, request, context):
        _check_id_argument(context, request.id_number)
        if not request.reason.strip():
            abort_fault(context, Fault("CANCEL_REASON_REQUIRED", "a cancellation needs its "
                                       "reason", "say why the card is cancelled (e.g. 死亡, "
                                       "重复参保)"), _S.INVALID_ARGUMENT)
        return pb.CancelCardResponse(change=self._do(
            context, request.id_number, "cancel",
            lambda cms: cms.cancel_card(request.id_number, request.reason),
            reason=request.reason))

    def ApplyReplacement(self, request, context):
        _check_id_argument(context, request.id_number)
        kind = _REPLACEMENT.get(request.replacement_kind)
        if kind is None:
            abort_fault(context, Fault("REPLACEMENT_KIND_REQUIRED", "the replacement does "
                                       "not say whether the card was lost or damaged",
                                       "choose 补卡 (lost) or 换卡 (damaged)"),
                        _S.INVALID_ARGUMENT)
        cms = self._cms(context)
        number = self._call(context, lambda: cms.apply_replacement(
            request.id_number, kind, request.bank_name))
        return pb.ApplyReplacementResponse(change=self._change(
            context, "replacement", request.id_number, number))
