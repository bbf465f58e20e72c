"""A photo the normaliser will not turn into a card photo: a catalogued fault, never a bare
exception text (`faults.fault_of` reads the `fault` it carries)."""

from __future__ import annotations

from cardstation.personalization.faults import Fault, fault


class PhotoRefused(Exception):
    """The picture cannot become a card photo; `fault` says why and what to do."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.fault: Fault = fault(code, detail)
        super().__init__(self.fault.message)

    @property
    def code(self) -> str:
        return self.fault.code
