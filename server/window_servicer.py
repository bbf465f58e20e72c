"""WindowService: the desk reader, the ID-card reader and the PIN pad, one operation at a time.

PINs never travel over this API: the holder types them on the station's PIN pad.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc

from cardstation.drivers.idreader.errors import IdReaderError
from cardstation.drivers.pcsc.errors import CardStatusError, PcscError
from cardstation.drivers.pinpad.errors import PinPadException
from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization import window as w
from cardstation.personalization.keys.service import KeyServiceError
from cardstation.personalization.window import CardReading, WindowError
from cardstation.protos.cardstation.v1 import window_pb2 as wpb
from cardstation.protos.cardstation.v1 import window_pb2_grpc

from .errors import abort_with
from .pin_progress import PinEntryState, PinProgress
from .runtime import StationRuntime
from .streams import StreamGate, enter_stream

T = TypeVar("T")

_S = grpc.StatusCode
# reason -> gRPC code. ABORTED: abandoned and left as it was (or rolled back), start again;
# UNAVAILABLE: a device or the CMS cannot be reached; FAILED_PRECONDITION (the default): the
# operator or holder must do something first (the message says what).
REASON_CODES: dict[str, grpc.StatusCode] = {
    w.INVALID_HOLDER: _S.INVALID_ARGUMENT,
    w.TEMPORARY_CARD_UNKNOWN: _S.NOT_FOUND,
    w.TEMPORARY_CARD_OUTSTANDING: _S.ALREADY_EXISTS,
    w.PIN_ENTRY_CANCELLED: _S.ABORTED,
    w.PIN_ENTRY_TIMEOUT: _S.ABORTED,
    w.TEMPORARY_ISSUE_ROLLED_BACK: _S.ABORTED,
    w.DESK_READER_UNAVAILABLE: _S.UNAVAILABLE,
    w.PCSC_UNAVAILABLE: _S.UNAVAILABLE,
    w.CMS_UNAVAILABLE: _S.UNAVAILABLE,
    w.TEMPORARY_ISSUE_UNCONFIRMED: _S.UNAVAILABLE,
    w.IDREADER_NOT_RESPONDING: _S.UNAVAILABLE,
}
PINPAD_REMEDY = ("check the PIN pad's cable and power ([window] pinpad in cardstation.toml), "
                 "then try again")
KEY_SERVICE_REMEDY = ("check that the key module (PSAM) is seated in its reader and that "
                      "reader's cable, then try again")


def window_error_code(reason: str) -> grpc.StatusCode:
    return REASON_CODES.get(reason, _S.FAILED_PRECONDITION)


def _reason(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def card_info(reading: CardReading) -> wpb.CardBasicInfo:
    i = reading.info
    account = mask_id_number(reading.bank_account) if reading.bank_account else ""
    return wpb.CardBasicInfo(
        bank_account_masked=account,
        region=i.region, id_number_masked=mask_id_number(i.id_number) if i.id_number else "",
        card_number=i.card_number, card_id_code=i.card_id_code, name=i.name,
        atr_historical=i.atr_historical, spec_version=i.spec_version,
        issue_date=i.issue_date, expiry_date=i.expiry_date,
        terminal_number=i.terminal_number, terminal_device=i.terminal_device,
    )  # fmt: skip


class WindowServicer(window_pb2_grpc.WindowServiceServicer):
    def __init__(self, runtime: StationRuntime, streams: StreamGate | None = None) -> None:
        self.rt = runtime
        self.streams = streams or StreamGate()
        self._lock = threading.Lock()  # one window operation at a time on these devices
        self.pin_progress = PinProgress()

    @property
    def window(self) -> Any:
        return self.rt.station.window

    def run(self, context: grpc.ServicerContext, action: Callable[[], T]) -> T:
        """`action` on the window devices, one at a time, its errors as this service gives
        them (for another service's desk step: the intake's hand-over)."""
        return self._run(context, action)

    def _run(self, context: grpc.ServicerContext, action: Callable[[], T]) -> T:
        if self.window is None:
            self._fail(context, _S.FAILED_PRECONDITION, "NO_WINDOW_DEVICES",
                       "this station has no window devices configured",
                       "configure [readers] desk and [window] in cardstation.toml")
        with self._lock:
            try:
                return action()
            except WindowError as exc:
                reason = exc.reason.upper()  # constants are upper already; tolerate old callers
                self._fail(context, window_error_code(reason), reason, exc.cause, exc.remedy)
            except IdReaderError as exc:
                reason = w.idreader_reason(exc)
                if reason != w.NO_ID_CARD:
                    self.window.reset()
                self._fail(context, window_error_code(reason), reason, str(exc))
            except PinPadException as exc:
                self.window.reset()
                self._fail(context, _S.UNAVAILABLE, "PINPAD_" + _reason(type(exc).__name__),
                           f"the PIN pad failed ({exc})", PINPAD_REMEDY)
            except KeyServiceError as exc:
                self._fail(context, _S.FAILED_PRECONDITION, w.KEY_SERVICE, str(exc),
                           KEY_SERVICE_REMEDY)
            except (PcscError, CardStatusError) as exc:  # not expected to escape; never UNKNOWN
                self._fail(context, _S.FAILED_PRECONDITION, w.CARD_ERROR, exc.cause,
                           exc.remedy)

    @staticmethod
    def _fail(context: grpc.ServicerContext, code: grpc.StatusCode, reason: str, cause: str,
              remedy: str = "") -> NoReturn:
        """Abort with "cause — remedy" as the message and both in the ErrorInfo metadata."""
        if not remedy:
            abort_with(context, code, reason, cause)
        abort_with(context, code, reason, f"{cause} — {remedy}",
                   {"cause": cause, "remedy": remedy})

    def _pin_operation(self, operation: str, action: Callable[[Any], T]) -> Callable[[], T]:
        """`action(pins)` as a window action that reports the holder's progress on the pad."""
        def run() -> T:
            window = self.window
            window.on_pin_progress = self.pin_progress.update
            pins = window.pins()
            self.pin_progress.begin(operation, pins.max_len)
            try:
                return action(pins)
            finally:
                self.pin_progress.end()
        return run

    def ReadIdCard(self, request, context):
        card = self._run(context, lambda: self.window.idreader().read_id_card())
        return wpb.ReadIdCardResponse(id_card=wpb.IdCard(
            name=card.name, sex=card.sex, nation=card.nation, birth_date=card.birth_date,
            address=card.address, id_number=card.id_number, issuer=card.issuer,
            valid_from=card.valid_from, valid_to=card.valid_to))

    def ReadCard(self, request, context):
        return self._card_read(self._run(context, self.window.services.read_card))

    @staticmethod
    def _card_read(reading: CardReading) -> wpb.ReadCardResponse:
        kind = wpb.CARD_KIND_TEMPORARY if reading.kind == "temporary" else wpb.CARD_KIND_FORMAL
        return wpb.ReadCardResponse(info=card_info(reading), kind=kind,
                                    generation=reading.generation)

    def RevealCardNumbers(self, request, context):
        # audited by the interceptor (every call: who, when, result); nothing is logged here
        reading = self._run(context, self.window.services.read_card)
        return wpb.RevealCardNumbersResponse(card=self._card_read(reading),
                                             id_number=reading.info.id_number,
                                             bank_account=reading.bank_account)

    async def WatchPinEntry(self, request, context):
        """A coroutine on the server's loop: the pad's prompt and digit count at each change."""
        await enter_stream(self.streams, context)
        try:
            state = self.pin_progress.state
            yield self._progress(state)
            while not self.rt.closing.is_set():
                newer = self.pin_progress.state
                if newer.version != state.version:
                    state = newer
                    yield self._progress(state)
                    continue
                await self.pin_progress.signal.wait()
        finally:
            self.streams.leave()

    @staticmethod
    def _progress(state: PinEntryState) -> wpb.WatchPinEntryResponse:
        return wpb.WatchPinEntryResponse(progress=wpb.PinEntryProgress(
            active=state.active, operation=state.operation, prompt=state.prompt,
            digits=state.digits, max_digits=state.max_digits))

    def VerifyReturnedCard(self, request, context):
        reading = self._run(context, lambda: self.window.services.verify_returned_card(
            request.id_number))
        return wpb.VerifyReturnedCardResponse(info=card_info(reading))

    def VerifyPin(self, request, context):
        self._run(context, self._pin_operation("VERIFY", self.window.services.verify_pin))
        return wpb.VerifyPinResponse()

    def ChangePin(self, request, context):
        self._run(context, self._pin_operation("CHANGE", self.window.services.change_pin))
        return wpb.ChangePinResponse()

    def UnblockPin(self, request, context):
        self._run(context, self.window.services.unblock_pin)
        return wpb.UnblockPinResponse()

    def ResetPin(self, request, context):
        self._run(context, self._pin_operation("RESET", self.window.services.reset_pin))
        return wpb.ResetPinResponse()

    def IssueTemporaryCard(self, request, context):
        card = self._run(context, self._pin_operation(
            "TEMP_ISSUE", lambda pins: self.window.services.issue_temporary(
                request.holder_id_number, request.holder_name, pins,
                request.agent_id_number, request.agent_name)))
        return wpb.IssueTemporaryCardResponse(card=self._temporary(card))

    def RewriteTemporaryCard(self, request, context):
        self._run(context, self._pin_operation("TEMP_REWRITE",
                                                self.window.services.rewrite_temporary))
        return wpb.RewriteTemporaryCardResponse()

    def RecallTemporaryCard(self, request, context):
        card = self._run(context, self.window.services.recall_temporary)
        return wpb.RecallTemporaryCardResponse(card=self._temporary(card))

    @staticmethod
    def _temporary(card: Any) -> wpb.TemporaryCard:
        return wpb.TemporaryCard(card_id_code=card.card_id_code,
                                 holder_id_masked=card.holder_id_masked,
                                 valid_from=card.valid_from, valid_to=card.valid_to)
