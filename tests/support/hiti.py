"""Shared fixtures for the HiTi CS-220e driver and simulator tests (a pytest plugin, see
conftest.py).

Both transports reach the same simulated printer: pyusb with the simulator's backend (in
process), and a byte stream to the TCP server (socket://). Everything runs at speed 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cardstation.drivers.hiti.bench import sample_face
from cardstation.drivers.hiti.printer import Printer, Timeouts
from cardstation.drivers.hiti.render import CardPanels, render_panels
from cardstation.drivers.hiti.transport import Transport, open_transport
from cardstation.simulators.printer import PrinterModel, PrinterSimServer, SimUsbBackend

USB_URL = "usb://0d16:030a"
TRANSPORTS = ("usb", "tcp")


def make_printer(transport: Transport, **kwargs: Any) -> Printer:
    """A driver that never sleeps: polls back to back (the simulator runs at speed 0)."""
    options: dict[str, Any] = {
        "sleep": lambda s: None,
        "poll_interval": 0.0,
        "panel_pause": 0.0,
        "timeouts": Timeouts(reply=2.0),
    }
    options.update(kwargs)
    return Printer(transport, **options)


class Rig:
    """A simulated printer and a way to (re)connect a driver to it over one transport."""

    def __init__(self, kind: str, model: PrinterModel) -> None:
        self.kind = kind
        self.model = model
        self.server: PrinterSimServer | None = None
        self.backend: SimUsbBackend | None = None
        if kind == "usb":
            self.backend = SimUsbBackend(model)
            self.url = USB_URL
        else:
            self.server = PrinterSimServer(model).start()
            self.url = self.server.url

    def transport(self) -> Transport:
        return open_transport(self.url, self.backend)

    def printer(self, **kwargs: Any) -> Printer:
        printer = make_printer(self.transport(), **kwargs)
        printer._open_args = (self.url, self.backend)  # lets reconnect() work
        return printer

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.model.close()


@pytest.fixture
def model(tmp_path: Path) -> PrinterModel:
    return PrinterModel(speed=0.0, cards=3, output_dir=tmp_path / "printed")


@pytest.fixture(params=TRANSPORTS)
def rig(request: pytest.FixtureRequest, model: PrinterModel) -> Iterator[Rig]:
    r = Rig(request.param, model)
    yield r
    r.close()


@pytest.fixture
def usb_rig(model: PrinterModel) -> Iterator[Rig]:
    r = Rig("usb", model)
    yield r
    r.close()


@pytest.fixture
def tcp_rig(model: PrinterModel) -> Iterator[Rig]:
    r = Rig("tcp", model)
    yield r
    r.close()


@pytest.fixture
def printer(rig: Rig) -> Iterator[Printer]:
    p = rig.printer()
    yield p
    try:
        p.close()
    except Exception:
        pass  # a test may have pulled the cable


@pytest.fixture(scope="session")
def card_panels() -> CardPanels:
    """Front and back of a sample card, rendered once."""
    return render_panels(sample_face(0), sample_face(1))
