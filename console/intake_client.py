"""The console's calls of IntakeService (a mixin of StationApi: the same channel, token and
error handling)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cardstation.protos.cardstation.v1 import intake_pb2 as inpb

#: a photo is normalised in a few hundred milliseconds; whitening (GrabCut) takes longer
PHOTO_TIMEOUT = 60.0
LOSS_KINDS = {"TEMPORARY": inpb.LOSS_KIND_TEMPORARY, "FORMAL": inpb.LOSS_KIND_FORMAL}
REPLACEMENT_KINDS = {"LOST": inpb.REPLACEMENT_KIND_LOST,
                     "DAMAGED": inpb.REPLACEMENT_KIND_DAMAGED}


class IntakeCalls:
    intake: Any
    _unary: Callable[..., Any]

    def normalise_photo(self, token: str, picture: bytes, whiten: bool
                        ) -> inpb.NormalisePhotoResponse:
        return self._unary(self.intake.NormalisePhoto, inpb.NormalisePhotoRequest(
            picture=picture, whiten=whiten), token, PHOTO_TIMEOUT)

    def submit_application(self, token: str, application: inpb.NewApplication
                           ) -> inpb.CardLifeChange:
        return self._unary(self.intake.SubmitApplication, inpb.SubmitApplicationRequest(
            application=application), token).change

    def card_life(self, token: str, id_number: str) -> inpb.CardLife:
        return self._unary(self.intake.GetCardLife, inpb.GetCardLifeRequest(
            id_number=id_number), token).card

    def card_change(self, token: str, operation: str, id_number: str, **extra: Any
                    ) -> inpb.CardLifeChange:
        """One change of the card's life by its console name; the card after it, receipt."""
        calls: dict[str, tuple[Any, Any]] = {
            "FEE": (self.intake.RegisterFee, inpb.RegisterFeeRequest),
            "MARK": (self.intake.MarkInstantIssuance, inpb.MarkInstantIssuanceRequest),
            "HAND_OVER": (self.intake.HandOverCard, inpb.HandOverCardRequest),
            "LIFT": (self.intake.LiftLoss, inpb.LiftLossRequest),
            "LOSS": (self.intake.ReportLoss, inpb.ReportLossRequest),
            "CANCEL": (self.intake.CancelCard, inpb.CancelCardRequest),
            "REPLACE": (self.intake.ApplyReplacement, inpb.ApplyReplacementRequest),
        }
        method, request = calls[operation]
        return self._unary(method, request(id_number=id_number, **extra), token).change
