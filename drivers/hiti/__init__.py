"""HiTi CS-220e card printer driver: A5 framing (construct), USB and byte-stream transports,
the printer API, panel rendering. Non-public payload layouts live in `assumptions`."""

from cardstation.drivers.hiti.errors import (
    PrinterAlert,
    PrinterError,
    PrinterNotConnected,
    PrinterTimeout,
)
from cardstation.drivers.hiti.printer import Printer, Timeouts
from cardstation.drivers.hiti.render import CardPanels, SidePanels, render_panels
from cardstation.drivers.hiti.state import CardPosition
from cardstation.drivers.hiti.transport import Transport, open_transport

__all__ = [
    "CardPanels",
    "CardPosition",
    "Printer",
    "PrinterAlert",
    "PrinterError",
    "PrinterNotConnected",
    "PrinterTimeout",
    "SidePanels",
    "Timeouts",
    "Transport",
    "open_transport",
    "render_panels",
]
