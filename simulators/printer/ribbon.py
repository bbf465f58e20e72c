"""The ribbon of the printer simulator: load, change, remove and restore it, and check a job
against it. Mixed into PrinterModel, whose lock and latched alerts it uses."""

from __future__ import annotations

from typing import Any

from cardstation.drivers.hiti.assumptions import RIBBON_CAPACITY
from cardstation.drivers.hiti.frames import RibbonType
from cardstation.drivers.hiti.state import TagState
from cardstation.simulators.printer.cards import Ribbon


class RibbonControls:
    def set_ribbon(
        self,
        type: int = RibbonType.YMCKO,
        remaining: int | None = None,
        tag: TagState | str = TagState.PRESENT,
        vendor_code: int = 0x1005,
    ) -> Ribbon:
        """Load a new ribbon."""
        with self._locked():
            rtype = RibbonType(type)
            self.ribbon = Ribbon(
                rtype,
                RIBBON_CAPACITY.get(rtype, 200) if remaining is None else remaining,
                TagState(tag),
                vendor_code,
            )
            self._latched.pop("RibbonTypeMismatch", None)
            return self.ribbon

    def _ribbon_set(self, **fields: Any) -> None:
        with self._locked():
            if self.ribbon is None:
                self.restore_ribbon()
            assert self.ribbon is not None
            for key, value in fields.items():
                setattr(self.ribbon, key, value)
            if "type" in fields:
                self._latched.pop("RibbonTypeMismatch", None)

    def remove_ribbon(self) -> None:
        with self._locked():
            if self.ribbon is not None:
                self._saved_ribbon = self.ribbon
            self.ribbon = None

    def restore_ribbon(self) -> None:
        with self._locked():
            self.ribbon = self._saved_ribbon or Ribbon()
            self._saved_ribbon = None
