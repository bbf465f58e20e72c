"""The console's side of the gRPC API: one channel, every call made with the operator's token.

No domain code is imported: the console knows the station only through the protos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from cardstation.protos.cardstation.v1 import (
    intake_pb2_grpc,
    issuance_pb2_grpc,
    returns_pb2_grpc,
    station_pb2_grpc,
    window_pb2_grpc,
)
from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
from cardstation.protos.cardstation.v1 import returns_pb2 as rpb
from cardstation.protos.cardstation.v1 import station_pb2 as spb
from cardstation.protos.cardstation.v1 import window_pb2 as wpb
from cardstation.protos.errors import error_info

from .intake_client import IntakeCalls

CALL_TIMEOUT = 30.0
# A PIN-pad call lasts as long as the holder types (the server's [window] pin_timeout, per entry,
# up to three entries for a change); a temporary card adds the CMS and the chip on top.
PIN_CALL_TIMEOUT = 150.0


@dataclass(frozen=True)
class ApiError(Exception):
    """A refused call: reason code, cause and remedy as the server gave them."""

    code: str
    cause: str
    remedy: str
    status: str
    issuance_id: str = ""
    fields: str = ""  # the fields a refusal names (ErrorInfo metadata "fields"), comma-separated

    @classmethod
    def of(cls, exc: grpc.RpcError) -> ApiError:
        info = error_info(exc)
        message = exc.details() or ""
        if info is None:
            cause, _, remedy = message.partition(" — ")
            code = "SERVER_UNREACHABLE" if exc.code() is grpc.StatusCode.UNAVAILABLE \
                else exc.code().name
            return cls(code, cause or message, remedy, exc.code().name)
        meta = dict(info.metadata)
        cause, _, remedy = message.partition(" — ")
        return cls(info.reason, meta.get("cause", cause), meta.get("remedy", remedy),
                   exc.code().name, meta.get("issuance_id", ""), meta.get("fields", ""))


class StationApi(IntakeCalls):
    def __init__(self, target: str, credentials: grpc.ChannelCredentials | None = None) -> None:
        self.target = target
        self.channel = (grpc.secure_channel(target, credentials) if credentials is not None
                        else grpc.insecure_channel(target))
        self.issuances = issuance_pb2_grpc.IssuanceServiceStub(self.channel)
        self.station = station_pb2_grpc.StationServiceStub(self.channel)
        self.returns = returns_pb2_grpc.ReturnServiceStub(self.channel)
        self.window = window_pb2_grpc.WindowServiceStub(self.channel)
        self.intake = intake_pb2_grpc.IntakeServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    @staticmethod
    def _md(token: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {token}")] if token else []

    def _unary(self, method, request, token: str, timeout: float | None = None):
        try:
            return method(request, metadata=self._md(token), timeout=timeout or CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise ApiError.of(exc) from None

    def get_station(self, token: str) -> spb.Station:
        return self._unary(self.station.GetStation, spb.GetStationRequest(), token).station

    def whoami(self, token: str) -> tuple[str, str]:
        """(name, role) as the server authenticated the token; raises ApiError if it does not."""
        response = self._unary(self.station.GetStation, spb.GetStationRequest(), token)
        return response.caller_name, response.caller_role

    def preview(self, token: str, id_number: str) -> ipb.PreviewCardResponse:
        return self._unary(self.issuances.PreviewCard,
                           ipb.PreviewCardRequest(id_number=id_number), token)

    def application(self, token: str, id_number: str) -> ipb.Application:
        return self._unary(self.issuances.GetApplication,
                           ipb.GetApplicationRequest(id_number=id_number), token).application

    def create(self, token: str, id_number: str) -> ipb.CreateIssuanceResponse:
        # no request id: asking again for the same person returns the job making their card
        return self._unary(self.issuances.CreateIssuance,
                           ipb.CreateIssuanceRequest(id_number=id_number), token)

    def get(self, token: str, issuance_id: str) -> ipb.Issuance:
        return self._unary(self.issuances.GetIssuance,
                           ipb.GetIssuanceRequest(id=issuance_id), token).issuance

    def act(self, token: str, issuance_id: str, action: str) -> ipb.Issuance | None:
        """Run one of a job's actions (the buttons); the job afterwards, if the call names it."""
        calls = {
            "RESUME": (self.issuances.ResumeIssuance, ipb.ResumeIssuanceRequest),
            "REJECT_CARD": (self.issuances.RejectCard, ipb.RejectCardRequest),
            "CANCEL": (self.issuances.CancelIssuance, ipb.CancelIssuanceRequest),
            "MARK_SPOILED": (self.issuances.MarkSpoiled, ipb.MarkSpoiledRequest),
            "RESTORE_AND_RESEND": (self.issuances.RestoreAndResend,
                                   ipb.RestoreAndResendRequest),
            "REPRINT": (self.issuances.ReprintFace, ipb.ReprintFaceRequest),
        }
        maintenance = {
            "CALIBRATE_RIBBON_SENSOR": (self.station.CalibrateRibbonSensor,
                                        spb.CalibrateRibbonSensorRequest()),
            "CLEAN_CARD_PATH": (self.station.CleanCardPath, spb.CleanCardPathRequest()),
            "RESET_PRINTER": (self.station.ResetPrinter, spb.ResetPrinterRequest()),
        }
        if action in calls:
            method, request = calls[action]
            return self._unary(method, request(id=issuance_id), token).issuance
        if action in maintenance:
            method, message = maintenance[action]
            self._unary(method, message, token)
            return None
        raise ApiError("ACTION_UNKNOWN", f"unknown action {action!r}", "reload the page",
                       "INVALID_ARGUMENT")

    def watch(self, token: str, issuance_id: str) -> Any:
        """The job's event stream (past events first, then live ones until the final one).
        Iterate it for WatchIssuanceResponse; `cancel()` it when the page goes away."""
        return self.issuances.WatchIssuance(ipb.WatchIssuanceRequest(id=issuance_id),
                                            metadata=self._md(token))

    def list_issuances(self, token: str, state: int, page_token: str, size: int = 20, *,
                       id_number: str = "", newest_first: bool = True
                       ) -> ipb.ListIssuancesResponse:
        """A page of jobs, newest first (a screen of recent work); of one applicant when
        `id_number` is given."""
        return self._unary(self.issuances.ListIssuances, ipb.ListIssuancesRequest(
            page_size=size, page_token=page_token, state=state,  # type: ignore[arg-type]
            id_number=id_number, newest_first=newest_first), token)

    def list_returns(self, token: str, status: int = 0) -> list[rpb.Return]:
        request = rpb.ListReturnsRequest(status=status)  # type: ignore[arg-type]
        return list(self._unary(self.returns.ListReturns, request, token).returns)

    def retry_returns(self, token: str, ids: list[int]) -> int:
        return self._unary(self.returns.RetryReturns, rpb.RetryReturnsRequest(ids=ids),
                           token).scheduled

    def maintain(self, token: str, action: str, lane: str = "") -> spb.PrinterCondition:
        """A maintenance step on a printer ("" names the only one)."""
        calls = {"CALIBRATE_RIBBON_SENSOR": (self.station.CalibrateRibbonSensor,
                                             spb.CalibrateRibbonSensorRequest(lane=lane)),
                 "CLEAN_CARD_PATH": (self.station.CleanCardPath,
                                     spb.CleanCardPathRequest(lane=lane)),
                 "RESET_PRINTER": (self.station.ResetPrinter,
                                   spb.ResetPrinterRequest(lane=lane))}
        method, request = calls[action]
        return self._unary(method, request, token).printer

    def watch_station(self, token: str) -> Any:
        """The station picture as a stream (one message per change); `cancel()` it after."""
        return self.station.WatchStation(spb.WatchStationRequest(interval_seconds=1),
                                         metadata=self._md(token))

    def reprint(self, token: str, issuance_id: str) -> ipb.Issuance:
        """补打卡面: the server feeds the card put back, checks its chip and prints the face.
        No deadline shorter than the printer's own: a print takes as long as it takes."""
        return self._unary(self.issuances.ReprintFace, ipb.ReprintFaceRequest(id=issuance_id),
                           token, PIN_CALL_TIMEOUT).issuance

    # -- WindowService: desk reader, ID-card reader, PIN pad ---------------------------------
    def read_id_card(self, token: str) -> wpb.IdCard:
        return self._unary(self.window.ReadIdCard, wpb.ReadIdCardRequest(), token).id_card

    def read_card(self, token: str) -> wpb.ReadCardResponse:
        return self._unary(self.window.ReadCard, wpb.ReadCardRequest(), token)

    def reveal_card_numbers(self, token: str) -> wpb.RevealCardNumbersResponse:
        """The card's ID and bank numbers in full: the server audits every call."""
        return self._unary(self.window.RevealCardNumbers, wpb.RevealCardNumbersRequest(), token)

    def watch_pin_entry(self, token: str) -> Any:
        """The holder's progress on the PIN pad (digits typed, never digits); `cancel()` it."""
        return self.window.WatchPinEntry(wpb.WatchPinEntryRequest(), metadata=self._md(token))

    def verify_returned_card(self, token: str, id_number: str) -> wpb.CardBasicInfo:
        return self._unary(self.window.VerifyReturnedCard,
                           wpb.VerifyReturnedCardRequest(id_number=id_number), token).info

    def pin(self, token: str, operation: str) -> None:
        """VERIFY, CHANGE, UNBLOCK or RESET: the holder types on the PIN pad; no PIN is sent."""
        calls = {"VERIFY": (self.window.VerifyPin, wpb.VerifyPinRequest),
                 "CHANGE": (self.window.ChangePin, wpb.ChangePinRequest),
                 "UNBLOCK": (self.window.UnblockPin, wpb.UnblockPinRequest),
                 "RESET": (self.window.ResetPin, wpb.ResetPinRequest)}
        method, request = calls[operation]
        self._unary(method, request(), token, PIN_CALL_TIMEOUT)

    def issue_temporary(self, token: str, holder_id: str, holder_name: str,
                        agent_id: str = "", agent_name: str = "") -> wpb.TemporaryCard:
        request = wpb.IssueTemporaryCardRequest(holder_id_number=holder_id,
                                                holder_name=holder_name,
                                                agent_id_number=agent_id, agent_name=agent_name)
        return self._unary(self.window.IssueTemporaryCard, request, token,
                           PIN_CALL_TIMEOUT).card

    def rewrite_temporary(self, token: str) -> None:
        self._unary(self.window.RewriteTemporaryCard, wpb.RewriteTemporaryCardRequest(), token,
                    PIN_CALL_TIMEOUT)

    def recall_temporary(self, token: str) -> wpb.TemporaryCard:
        return self._unary(self.window.RecallTemporaryCard, wpb.RecallTemporaryCardRequest(),
                           token, PIN_CALL_TIMEOUT).card
