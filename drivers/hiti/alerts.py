"""Alert code tables: HiTi 24-bit alert codes and the CS-2xx 4-digit codes, with named faults.

Codes are from gutenprint/HTRTAPI.h (24-bit) and PavoApi.h / the Android CS280e table (4-digit),
reference/hiti-cs220e.md sections 2.3, 3.2 and 7.3. Remedies follow the operators' fault table
(reference/business-flows.md section 2) where it has one, and plain operator instructions
otherwise. Where a fault has no known 4-digit code, `cs_code` is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cardstation.drivers.hiti.assumptions import JAM_PATHS, RIBBON_MALFUNCTION_CODE24
from cardstation.drivers.hiti.frames import Opcode


class AlertCategory(IntEnum):
    """Alert categories in the order the host resolves them (highest priority first).

    The value is the opcode that lists the category's alerts.
    """

    WARNING = Opcode.ALERTS_WARNING
    SERVICE = Opcode.ALERTS_SERVICE
    OPERATOR = Opcode.ALERTS_OPERATOR
    JAM = Opcode.ALERTS_JAM
    INPUT = Opcode.ALERTS_INPUT
    SUPPLIES = Opcode.ALERTS_SUPPLIES


#: StatusSummary flag name for each category.
CATEGORY_FLAG: dict[AlertCategory, str] = {
    AlertCategory.WARNING: "warning",
    AlertCategory.SERVICE: "service",
    AlertCategory.OPERATOR: "operator",
    AlertCategory.JAM: "jam",
    AlertCategory.INPUT: "input",
    AlertCategory.SUPPLIES: "supplies",
}

#: `ascii` value sent for an alert without a CS 4-digit code.
NO_CS_CODE = "0000"

REMEDY_COLOUR_OFFSET = "calibrate or clean the ribbon sensor"
REMEDY_NOT_CONNECTED = (
    "check both USB cables (printer and encoder) are connected; if they are, reinstall the "
    "printer driver"
)
REMEDY_RIBBON_CHIP = "replace the ribbon or reseat its chip"
REMEDY_CHIP_POWER_ON = (
    "check the card orientation (rear slot, face up, chip inwards); try another reader; "
    "restart the printer"
)
REMEDY_JAM = (
    "open the cover, remove the jammed card, close the cover and reset the printer "
    "(the card goes to the reject box)"
)


@dataclass(frozen=True)
class AlertDef:
    """One named printer fault as it appears on the wire."""

    name: str
    code24: int
    cs_code: str | None
    category: AlertCategory
    description: str
    remedy: str
    #: For jams: where the card is stuck.
    position: str | None = None


_MALFUNCTION = RIBBON_MALFUNCTION_CODE24


def _jam(code24: int, cs: str, position: str) -> AlertDef:
    return AlertDef(
        "CardJam", code24, cs, AlertCategory.JAM, f"card jam ({position})", REMEDY_JAM, position
    )


ALERTS: tuple[AlertDef, ...] = (
    AlertDef("CoverOpen", 0x050001, "0100", AlertCategory.OPERATOR, "cover open",
             "close the printer cover"),
    AlertDef("FlipperCoverOpen", 0x050101, "0101", AlertCategory.OPERATOR, "flipper cover open",
             "close the flipper cover"),
    AlertDef("RejectBoxFull", 0x050401, None, AlertCategory.OPERATOR, "reject box full",
             "empty the reject box"),
    AlertDef("RejectBoxMissing", 0x050301, None, AlertCategory.OPERATOR, "reject box missing",
             "insert the reject box"),
    AlertDef("RibbonMissing", 0x080004, "0201", AlertCategory.SUPPLIES, "ribbon missing",
             "load a ribbon"),
    AlertDef("RibbonOut", 0x080103, "0301", AlertCategory.SUPPLIES, "ribbon exhausted",
             "replace the ribbon"),
    AlertDef("RibbonChipMissing", 0x0802FE, "0200", AlertCategory.SUPPLIES,
             "ribbon chip not detected", REMEDY_RIBBON_CHIP),
    AlertDef("RibbonChipError", 0x0804FE, "0200", AlertCategory.SUPPLIES,
             "ribbon chip read/write error", REMEDY_RIBBON_CHIP),
    AlertDef("RibbonTypeMismatch", 0x080200, "0202", AlertCategory.SUPPLIES,
             "ribbon type does not match the job", "load a ribbon matching the card layout "
             "(YMCKO for a colour face)"),
    AlertDef("RibbonUnsupported", 0x0806FE, "0203", AlertCategory.SUPPLIES, "unsupported ribbon",
             "load a HiTi CS-2xx ribbon"),
    # No public 24-bit code for the ribbon-search and calibration faults (see assumptions).
    AlertDef("RibbonSearchFail", _MALFUNCTION, "0300", AlertCategory.SUPPLIES,
             "ribbon search fail (ribbon sensor offset or dirty)", REMEDY_COLOUR_OFFSET),
    AlertDef("RibbonTakeCalibrationFailed", _MALFUNCTION, "1100", AlertCategory.SUPPLIES,
             "ribbon take calibration failed", "clean the ribbon sensor, then calibrate again"),
    AlertDef("RibbonSupplyCalibrationFailed", _MALFUNCTION, "1101", AlertCategory.SUPPLIES,
             "ribbon supply calibration failed", "clean the ribbon sensor, then calibrate again"),
    AlertDef("InputEmpty", 0x008000, "0400", AlertCategory.INPUT, "card out or feed error",
             "load blank cards into the rear feed slot, face up, chip inwards"),
    AlertDef("ThicknessLever", 0x008010, None, AlertCategory.INPUT,
             "card thickness lever in the wrong position",
             "set the thickness lever for the loaded cards"),
    *(_jam(code24, cs, position) for position, (code24, cs) in JAM_PATHS.items()),
    AlertDef("CardMismatch", 0x0100FE, "0600", AlertCategory.WARNING, "card type mismatch",
             "load the card type the job expects"),
    AlertDef("CommandSequenceError", 0x0301FE, None, AlertCategory.WARNING,
             "command sequence error", "reset the printer and resend the job"),
    AlertDef("HeatTableIncompatible", 0x0304FE, None, AlertCategory.WARNING,
             "heat table incompatible", "reset the printer; update the printer firmware"),
    AlertDef("DeviceService", 0x030501, "0700", AlertCategory.SERVICE, "cam or print head error",
             "restart the printer; call service if it persists"),
)  # fmt: skip

_BY_CS: dict[tuple[int, str], AlertDef] = {
    (a.code24, a.cs_code): a for a in ALERTS if a.cs_code is not None
}
_BY_CODE: dict[int, AlertDef] = {}
for _a in ALERTS:
    _BY_CODE.setdefault(_a.code24, _a)
_BY_POSITION: dict[str, AlertDef] = {a.position: a for a in ALERTS if a.position}


def by_name(name: str) -> AlertDef:
    """The first alert definition named `name` (for a jam: the generic card-path jam)."""
    for alert in ALERTS:
        if alert.name == name:
            return alert
    raise KeyError(name)


def jam_alert(position: str) -> AlertDef:
    """The jam alert for a card stuck at `position` (one of the jam positions above)."""
    return _BY_POSITION.get(position, _BY_POSITION["card path"])


def decode(code24: int, cs_code: str | None, category: AlertCategory | None = None) -> AlertDef:
    """Name an alert from the wire; the CS code refines codes shared by several faults."""
    cs = cs_code if cs_code and cs_code != NO_CS_CODE else None
    found = _BY_CS.get((code24, cs)) if cs else None
    if found is None:
        found = _BY_CODE.get(code24)
    if found is not None:
        return found
    return AlertDef(
        "UnknownAlert",
        code24,
        cs,
        category if category is not None else AlertCategory.WARNING,
        f"unknown alert 0x{code24:06X}" + (f" (code {cs})" if cs else ""),
        "restart the printer; report the code to service if it persists",
    )
