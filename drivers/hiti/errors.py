"""Printer errors: one base class carrying a vendor code, one subclass per named fault.

`vendor_code` is the number HiTi's own software shows for the condition: the 24-bit alert code
for device alerts (PavoApi's status codes use the same numbers), 0x80 (PAVO "offline") when the
printer is not connected, 0x1F / 0x2F for write / read failures.
"""

from __future__ import annotations

from typing import Any

from cardstation.drivers.hiti.alerts import (
    REMEDY_NOT_CONNECTED,
    AlertCategory,
    AlertDef,
)

VENDOR_OFFLINE = 0x80
VENDOR_WRITE_FAIL = 0x1F
VENDOR_READ_FAIL = 0x2F


class PrinterError(Exception):
    """Base of every driver error. `vendor_code` may be None when the printer gave none."""

    remedy: str = "restart the printer; call service if it persists"

    def __init__(self, msg: str, vendor_code: int | None = None, remedy: str | None = None):
        super().__init__(msg)
        self.msg = msg
        self.vendor_code = vendor_code
        if remedy is not None:
            self.remedy = remedy

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: error name, vendor code, remedy, message."""
        return {
            "error": self.name,
            "vendor_code": None if self.vendor_code is None else f"0x{self.vendor_code:06X}",
            "message": self.msg,
            "remedy": self.remedy,
        }


class PrinterNotConnected(PrinterError):
    """The printer is not reachable: no such USB device, cable pulled, socket closed."""

    remedy = REMEDY_NOT_CONNECTED

    def __init__(self, msg: str, vendor_code: int | None = VENDOR_OFFLINE):
        super().__init__(msg, vendor_code)


class PrinterTimeout(PrinterError):
    """A reply or the end of a busy period did not come in time."""

    remedy = "check the printer's display; reset the printer if it stays busy"


class PrinterProtocolError(PrinterError):
    """A malformed frame from the printer (bad header, wrong echo, short reply)."""

    remedy = "reset the printer; check the cable; if it persists the firmware may be unsupported"


class CommandRejected(PrinterError):
    """The printer answered a command with the failed status bit and no alert to explain it."""

    def __init__(self, msg: str, vendor_code: int | None = None, status: int | None = None):
        super().__init__(msg, vendor_code)
        self.status = status


class PrinterAlert(PrinterError):
    """A device alert. Subclasses name the fault; unknown codes stay PrinterAlert."""

    def __init__(self, alert: AlertDef):
        text = alert.description
        if alert.cs_code:
            text += f" (code {alert.cs_code})"
        super().__init__(text, alert.code24, alert.remedy)
        self.alert = alert
        self.code24 = alert.code24
        self.cs_code = alert.cs_code
        self.category: AlertCategory = alert.category

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["cs_code"] = self.cs_code
        out["category"] = self.category.name.lower()
        return out


class CoverOpen(PrinterAlert): ...
class FlipperCoverOpen(PrinterAlert): ...
class RejectBoxFull(PrinterAlert): ...
class RejectBoxMissing(PrinterAlert): ...
class DustBoxFull(PrinterAlert): ...
class RibbonMissing(PrinterAlert): ...
class RibbonOut(PrinterAlert): ...
class RibbonMalfunction(PrinterAlert): ...
class RibbonChipMissing(PrinterAlert): ...
class RibbonChipError(PrinterAlert): ...
class RibbonNotAuthenticated(PrinterAlert): ...
class RibbonNewlyInserted(PrinterAlert): ...
class RibbonTypeUnsupported(PrinterAlert): ...
class RibbonTypeMismatch(PrinterAlert): ...
class RibbonUnsupported(PrinterAlert): ...
class RibbonUnknown(PrinterAlert): ...
class RibbonError(PrinterAlert): ...
class RibbonSearchFail(PrinterAlert): ...
class RibbonTakeCalibrationFailed(PrinterAlert): ...
class RibbonSupplyCalibrationFailed(PrinterAlert): ...
class PrintFailed(PrinterAlert): ...
class InputEmpty(PrinterAlert): ...
class CardsLow(PrinterAlert): ...
class InputHopperMissing(PrinterAlert): ...
class CardNotReady(PrinterAlert): ...
class ThicknessLever(PrinterAlert): ...
class TrayMismatch(PrinterAlert): ...
class CardMismatch(PrinterAlert): ...
class CommandSequenceError(PrinterAlert): ...
class BufferUnderrun(PrinterAlert): ...
class FlashUnformatted(PrinterAlert): ...
class FlashFull(PrinterAlert): ...
class HeatTableIncompatible(PrinterAlert): ...
class PrinterLocked(PrinterAlert): ...
class PrinterMode(PrinterAlert): ...
class FirmwareTooOld(PrinterAlert): ...
class NoFlipperModule(PrinterAlert): ...
class DeviceService(PrinterAlert): ...
class PrinterMemoryError(PrinterAlert): ...
class ControllerError(PrinterAlert): ...
class CamError(PrinterAlert): ...
class FirmwareError(PrinterAlert): ...
class CutterError(PrinterAlert): ...
class FlipperError(PrinterAlert): ...
class PowerSupplyError(PrinterAlert): ...
class SlavePrinterFault(PrinterAlert): ...
class UnknownAlert(PrinterAlert): ...


class CardJam(PrinterAlert):
    """A card jam; `position` says where the card is stuck."""

    def __init__(self, alert: AlertDef):
        super().__init__(alert)
        self.position = alert.position or "card path"

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["position"] = self.position
        return out


_CLASSES: dict[str, type[PrinterAlert]] = {
    cls.__name__: cls for cls in PrinterAlert.__subclasses__()
}


def alert_error(alert: AlertDef) -> PrinterAlert:
    """The named exception for a decoded alert."""
    return _CLASSES.get(alert.name, PrinterAlert)(alert)
