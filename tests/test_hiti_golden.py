"""Golden transcripts: the exact bytes the driver sends for each operation.

Each file under tests/golden/hiti/ lists the host's writes in order, one per line, as hex. Raw
panel data is stored as its length and SHA-256 (a duplex card is 6.5 MB), with one line per
plane. Regenerate after an intended protocol change with CARDSTATION_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cardstation.drivers.hiti.printer import Printer
from cardstation.drivers.hiti.render import CardPanels, SidePanels
from cardstation.drivers.hiti.transport import RecordingTransport, open_transport
from cardstation.simulators.printer import PrinterModel, SimUsbBackend
from tests.support.hiti import USB_URL, make_printer

GOLDEN = Path(__file__).parent / "golden" / "hiti"
UPDATE = os.environ.get("CARDSTATION_UPDATE_GOLDEN") == "1"
#: Writes longer than this are raw plane data: recorded by length and hash.
RAW_THRESHOLD = 64


def transcript(sent: list[bytes]) -> str:
    lines = []
    for data in sent:
        if len(data) > RAW_THRESHOLD:
            lines.append(f"= raw {len(data)} sha256:{hashlib.sha256(data).hexdigest()}")
        else:
            lines.append(f"> {data.hex()}")
    return "\n".join(lines) + "\n"


def record(
    model: PrinterModel, setup: Callable[[Printer], object], run: Callable[[Printer], object]
) -> str:
    transport = RecordingTransport(open_transport(USB_URL, SimUsbBackend(model)))
    printer = make_printer(transport)
    setup(printer)
    transport.records.clear()
    run(printer)
    printer.close()
    return transcript(transport.sent())


def check(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.hex"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"missing golden file {path}; run with CARDSTATION_UPDATE_GOLDEN=1")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"bytes sent differ from {path}"


def nothing(p: Printer) -> None:
    return None


def test_status(model: PrinterModel) -> None:
    check("status", record(model, nothing, lambda p: p.status()))


def test_status_with_alerts(model: PrinterModel) -> None:
    model.inject("cover_open")
    model.inject("ribbon_out")
    text = record(model, nothing, lambda p: p.status())
    # GET_STATUS, then the operator list (0x0406) before the supplies list (0x040A).
    assert text.splitlines() == ["> a50003500400", "> a50003500406", "> a5000350040a"]
    check("alerts", text)


def test_ribbon(model: PrinterModel) -> None:
    check("ribbon", record(model, nothing, lambda p: p.ribbon()))


def test_identity(model: PrinterModel) -> None:
    check("identity", record(model, nothing, lambda p: p.identity()))


def test_move_to_contact(model: PrinterModel) -> None:
    text = record(model, nothing, lambda p: p.move_to_contact())
    assert "> a5000350e02e" in text.splitlines()
    check("move_to_contact", text)


def golden_panels() -> CardPanels:
    """Deterministic planes built without Pillow, so the hashes do not move with its version."""
    size = 1014 * 642

    def plane(seed: int) -> bytes:
        return (bytes((i * seed) & 0xFF for i in range(256)) * (size // 256 + 1))[:size]

    front = SidePanels(plane(1), plane(3), plane(5), plane(7), b"\xff" * size)
    back = SidePanels(plane(11), plane(13), plane(17), plane(19), b"\xff" * size)
    return CardPanels(front, back)


def test_print_job_front_and_back(model: PrinterModel) -> None:
    panels = golden_panels()
    text = record(model, lambda p: p.move_to_contact(), lambda p: p.print_card(panels))
    lines = text.splitlines()
    assert sum(line.startswith("= raw 650988 ") for line in lines) == 10  # YMCKO x 2 sides
    # gutenprint backend_hiti.c hiti_main_loop (2019 and 2024): SET_FORMAT, then START_JOB,
    # then the heating setting {0, 1} (default tables), then START_PAGE.
    assert lines[2].startswith("> a5000b508100")  # SET_FORMAT
    assert lines[3] == "> a50006500500000001"  # START_JOB lun 0, job 1
    assert lines[4] == "> a5000550810100" + "01"  # SET_HEATING {0, 1}
    assert lines[5] == "> a50003508200"  # START_PAGE
    check("print_duplex", text)


def test_eject(model: PrinterModel) -> None:
    check("eject", record(model, lambda p: p.move_to_contact(), lambda p: p.eject()))


def test_reject(model: PrinterModel) -> None:
    check("reject", record(model, lambda p: p.move_to_contact(), lambda p: p.reject()))
