"""Plain value types the printer API returns (no I/O here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum, IntEnum
from typing import Any


class CardPosition(IntEnum):
    """Where the card is. Values 0-8 are PavoApi's DEVINFO_CARD_POSITION numbers (public);
    values from 100 up are positions only the driver's own tracking can know (the card has left
    the printer into a box, or nothing is known)."""

    OUT = 0
    PRINT = 1
    MAG_OUT = 2
    MAG_IN = 3
    CONTACT = 4
    CONTACTLESS = 5
    FLIPPER = 6
    JAMMED = 7
    ERROR = 8
    OUTPUT_HOPPER = 100
    REJECT_BOX = 101
    UNKNOWN = 255

    @property
    def label(self) -> str:
        return self.name.lower()


class TagState(Enum):
    """State of the ribbon's RFID/IC chip."""

    PRESENT = "present"
    ABSENT = "absent"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Identity:
    model: str
    firmware: str
    serial: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AlertReport:
    """One decoded alert: fault name, vendor codes, remedy."""

    name: str
    category: str
    code24: int
    cs_code: str | None
    description: str
    remedy: str
    position: str | None = None
    #: False for a notice that does not stop the printer (PavoApi "card low").
    blocks: bool = True

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["code24"] = f"0x{self.code24:06X}"
        return out


@dataclass(frozen=True)
class PrinterStatus:
    busy: bool
    power_on: bool
    resend: bool
    flags: tuple[str, ...]
    alerts: tuple[AlertReport, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.alerts

    @property
    def idle(self) -> bool:
        """Neither BUSY nor POWER-ON (gutenprint waits while either is set)."""
        return not self.busy and not self.power_on

    def to_dict(self) -> dict[str, Any]:
        return {
            "busy": self.busy,
            "power_on": self.power_on,
            "resend": self.resend,
            "flags": list(self.flags),
            "alerts": [a.to_dict() for a in self.alerts],
        }


@dataclass(frozen=True)
class RibbonStatus:
    type: int
    type_name: str
    remaining: int | None
    chip: TagState
    vendor_code: int | None

    @property
    def chip_present(self) -> bool:
        return self.chip is TagState.PRESENT

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "type_name": self.type_name,
            "remaining": self.remaining,
            "chip_present": self.chip_present,
            "chip": self.chip.value,
            "vendor_code": None if self.vendor_code is None else f"0x{self.vendor_code:04X}",
        }


@dataclass(frozen=True)
class SensorCalibration:
    """Ribbon mark-sensor calibration as read back after a calibration."""

    take_level: int
    take_threshold: int
    supply_level: int
    supply_threshold: int
    mark_level: int
    mark_threshold: int
    offset_um: int
    dirt_percent: int
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
