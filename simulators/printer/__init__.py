"""Simulated HiTi CS-220e: device model, A5 protocol session, pyusb backend, TCP server."""

from cardstation.simulators.printer.cards import Orientation, Ribbon, SimCard, SimPosition
from cardstation.simulators.printer.model import FAULTS, TIMINGS, PrinterModel
from cardstation.simulators.printer.server import PrinterSimServer
from cardstation.simulators.printer.usb_backend import SimUsbBackend

__all__ = [
    "FAULTS",
    "TIMINGS",
    "Orientation",
    "PrinterModel",
    "PrinterSimServer",
    "Ribbon",
    "SimCard",
    "SimPosition",
    "SimUsbBackend",
]
