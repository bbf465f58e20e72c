"""Defects the fuzzers found (make fuzz), pinned: each reproduced the fault before its fix."""

from __future__ import annotations

import pytest

from cardstation.drivers.hiti.errors import PrinterProtocolError
from cardstation.drivers.hiti.frames import CMD_STATUS_OK, Opcode, build_command
from cardstation.drivers.pinpad.errors import FrameError
from cardstation.drivers.pinpad.protocol import STX, Cmd
from cardstation.reliability.targets import pinpad as pad_target
from cardstation.reliability.targets import printer as printer_target


def _printer(*replies: tuple[str, int, bytes]):
    printer = printer_target._make()
    printer.transport.script = list(replies)
    return printer


@pytest.mark.parametrize(("operation", "replies"), [
    # GET_SUPPLIES answered with no payload: construct's StreamError escaped the driver
    ("ribbon", [("echo", CMD_STATUS_OK, b"")]),
    # GET_STATS announcing one record and carrying half of it
    ("statistics", [("echo", CMD_STATUS_OK, b"\x01\x03\x00")]),
    # a GET_SUMMARY reply shorter than the model-name offset: IndexError
    ("identity", [("echo", CMD_STATUS_OK, b"\x05")]),
])
def test_short_printer_replies_are_protocol_errors(operation, replies) -> None:
    printer = _printer(*replies)
    with pytest.raises(PrinterProtocolError, match="malformed reply"):
        getattr(printer, operation)()


def test_noise_after_a_reply_is_not_read_as_the_next_reply() -> None:
    """Bytes trailing a good reply in the same USB packet were taken as the start of the
    next command's reply."""
    good = build_command(Opcode.GET_PRINT_COUNT, (42).to_bytes(4, "big"))
    printer = _printer(("raw", 0, good + b"\xa5\x00\x09noise"))
    printer.transport.read_chunk_size = 64  # whole packets, as the USB transport reads
    assert printer.print_count() == 42
    printer.transport.script = [("echo", CMD_STATUS_OK, b"\x00\x00\x00")]
    status = printer.status()
    assert not status.busy and not status.alerts


def test_a_burst_of_bad_frames_fails_one_pin_pad_command_not_the_next_ones() -> None:
    """Several defective frames queued by one burst of noise failed the following commands
    one by one (each took a stale FrameError as its answer)."""
    pad = pad_target._make()
    line = pad._port
    # noise holding three frames with impossible lengths, then nothing
    noise = bytes([STX, 0xFF, 0xFF, STX, 0x7F, 0x00, STX, 0x40, 0x40])
    line.script = [("raw", [], noise)]
    with pytest.raises(FrameError):
        pad.hello()
    line.script = [("frames", [(0, 0, Cmd.ACK, pad_target.IDENTITY)], b"")]
    assert pad.hello().model == "CSPP-01"
