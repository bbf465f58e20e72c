"""Value types of the simulated printer: card positions, orientations, cards, ribbon, log."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cardstation.drivers.hiti.assumptions import RIBBON_CAPACITY
from cardstation.drivers.hiti.frames import RibbonType
from cardstation.drivers.hiti.state import CardPosition, TagState


class Orientation(StrEnum):
    """How a card was put into the rear slot. Only RIGHT_WAY (face up, chip inwards) lets the
    encoder power the chip."""

    RIGHT_WAY = "right_way"
    CHIP_FAR_END = "chip_far_end"
    FACE_DOWN = "face_down"


class SimPosition(StrEnum):
    INPUT = "input_hopper"  # rear slot / input hopper, not yet fed
    CONTACT = "contact"
    PRINT = "print"
    FLIPPER = "flipper"
    OUTPUT = "output_hopper"
    REJECT = "reject_box"
    JAMMED = "jammed"
    OUT = "out"  # taken out of the printer by a person


#: What the device reports for each position (PavoApi numbering; boxes are "out").
DEVICE_POSITION: dict[SimPosition, CardPosition] = {
    SimPosition.INPUT: CardPosition.OUT,
    SimPosition.CONTACT: CardPosition.CONTACT,
    SimPosition.PRINT: CardPosition.PRINT,
    SimPosition.FLIPPER: CardPosition.FLIPPER,
    SimPosition.OUTPUT: CardPosition.OUT,
    SimPosition.REJECT: CardPosition.OUT,
    SimPosition.JAMMED: CardPosition.JAMMED,
    SimPosition.OUT: CardPosition.OUT,
}

#: Jam location names (alerts.JAM_PATHS keys) for each place a card can reach.
JAM_LOCATION: dict[SimPosition, str] = {
    SimPosition.INPUT: "feeder",
    SimPosition.CONTACT: "contact station",
    SimPosition.PRINT: "print position",
    SimPosition.FLIPPER: "flipper",
    SimPosition.OUTPUT: "output",
    SimPosition.REJECT: "reject box",
}
_JAM_ALIASES = {p.value: loc for p, loc in JAM_LOCATION.items()} | {
    loc: loc for loc in JAM_LOCATION.values()
}


def jam_location(name: str) -> str:
    """Normalise a jam position given as a SimPosition value or a jam-location name."""
    try:
        return _JAM_ALIASES[name]
    except KeyError:
        raise ValueError(
            f"unknown jam position {name!r}; one of {sorted(_JAM_ALIASES)}"
        ) from None


_serials = itertools.count(1)


@dataclass(eq=False)
class SimCard:
    """One card. `chip` is opaque: the coupler puts a card simulator there."""

    orientation: Orientation = Orientation.RIGHT_WAY
    chip: Any = None
    serial: int = field(default_factory=lambda: next(_serials))
    position: SimPosition = SimPosition.INPUT
    flipped: bool = False
    jam_location: str | None = None
    #: physical side ("front"/"back") -> PNG path (or None when no output folder)
    printed: dict[str, Path | None] = field(default_factory=dict)

    def side_under_head(self) -> str:
        """Physical side facing the print head: a face-down card prints on its back."""
        face_down = self.orientation is Orientation.FACE_DOWN
        return "back" if face_down != self.flipped else "front"

    def to_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "orientation": self.orientation.value,
            "position": self.position.value,
            "flipped": self.flipped,
            "jam_location": self.jam_location,
            "printed": {k: (str(v) if v else None) for k, v in self.printed.items()},
            "has_chip": self.chip is not None,
        }


@dataclass
class Ribbon:
    type: int = RibbonType.YMCKO
    remaining: int = RIBBON_CAPACITY[RibbonType.YMCKO]
    tag: TagState = TagState.PRESENT
    vendor_code: int = 0x1005

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": int(self.type),
            "type_name": RibbonType(self.type).name,
            "remaining": self.remaining,
            "tag": self.tag.value,
            "vendor_code": self.vendor_code,
        }


@dataclass
class PrintedSide:
    requested_side: int  # 1 front, 2 back (as sent by the host)
    physical_side: str  # where it landed on the card
    panels: tuple[str, ...]
    offsets_px: dict[str, int]
    png: Path | None


@dataclass
class PrintRecord:
    jobid: int
    card_serial: int
    sides: list[PrintedSide] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobid": self.jobid,
            "card": self.card_serial,
            "sides": [
                {
                    "requested_side": s.requested_side,
                    "physical_side": s.physical_side,
                    "panels": list(s.panels),
                    "offsets_px": s.offsets_px,
                    "png": str(s.png) if s.png else None,
                }
                for s in self.sides
            ],
        }
