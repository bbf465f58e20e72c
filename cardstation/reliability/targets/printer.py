"""The printer driver reading A5 reply frames: whatever the printer answers, every driver
operation returns or raises a PrinterError, and the driver answers a valid exchange afterwards.

The transport is scripted: each command the driver writes is answered by the next reply of
the input, either a well-formed frame echoing the command with a generated status and payload
(to get past the framing into the payload parsers) or raw bytes.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

from cardstation.drivers.hiti.errors import PrinterError
from cardstation.drivers.hiti.frames import CMD_STATUS_OK, HEADER_SIZE, build_command
from cardstation.drivers.hiti.printer import Printer, Timeouts
from cardstation.drivers.hiti.transport import Transport
from cardstation.reliability.fuzz_target import Target, mutate, reply_mutants, scripted

OPERATIONS = ("status", "check", "ribbon", "statistics", "identity", "print_count",
              "card_position", "sensor_calibration", "wait_idle", "eject", "reset")

#: One reply: ("echo", status, payload) answers the command just written; ("raw", bytes).
Reply = tuple[str, int, bytes]


class ScriptedTransport(Transport):
    """Answers each command written with the next scripted reply; nothing when none is left
    (the driver's read times out at once: its reply timeout is tiny)."""

    def __init__(self) -> None:
        super().__init__("scripted://")
        self.script: list[Reply] = []
        self.pending = bytearray()

    def _write(self, data: bytes, timeout: float) -> None:
        if len(data) < HEADER_SIZE or data[0] != 0xA5 or not self.script:
            return  # bulk data, or the script is over
        kind, status, payload = self.script.pop(0)
        if kind == "echo":
            cmd = int.from_bytes(data[4:6], "big")
            self.pending += build_command(cmd, payload[:0xFFF0], status)
        else:
            self.pending += payload

    def _read_chunk(self, size: int, timeout: float) -> bytes:
        out = bytes(self.pending[:size])
        del self.pending[:size]
        return out

    def _close(self) -> None:
        pass


def _make() -> Printer:
    return Printer(ScriptedTransport(), sleep=lambda _s: None, poll_interval=0.0,
                   timeouts=Timeouts(reply=0.0005, move=0.05, print=0.05, reset=0.05,
                                     clean=0.05), panel_pause=0.0)


def _feed(printer: Printer, example: tuple[str, list[Reply]]) -> None:
    operation, replies = example
    with scripted(printer.transport, replies):
        if operation == "wait_idle":
            printer.wait_idle("fuzz", 0.05, job=1)
        else:
            getattr(printer, operation)()


def _alive(printer: Printer) -> None:
    """GET_STATUS answered all clear: status() says so (one resynchronising retry allowed,
    as after any garbled reply the driver drops what was buffered)."""
    transport = printer.transport
    assert isinstance(transport, ScriptedTransport)
    transport.pending.clear()  # the line is quiet again: nothing more arrives
    fuzzing, printer.timeouts = printer.timeouts, Timeouts()
    try:
        _status_all_clear(printer, transport)
    finally:
        printer.timeouts = fuzzing


def _status_all_clear(printer: Printer, transport: ScriptedTransport) -> None:
    for attempt in range(2):
        transport.script = [("echo", CMD_STATUS_OK, b"\x00\x00\x00")]
        try:
            status = printer.status()
        except PrinterError:
            if attempt:
                raise
            continue
        assert not status.busy and not status.alerts and status.flags == (), status
        return


_payloads = st.one_of(
    st.binary(max_size=8),
    st.binary(min_size=3, max_size=40),
    st.builds(lambda n, body: bytes([n]) + body, st.integers(0, 6), st.binary(max_size=60)),
)
_replies = st.one_of(
    st.tuples(st.just("echo"), st.sampled_from([CMD_STATUS_OK, 0x51, 0xD8, 0xDB, 0x80])
              | st.integers(0, 255), _payloads),
    st.tuples(st.just("raw"), st.just(0), st.binary(max_size=40)),
)


def _mutant(reply: Reply, rng: random.Random) -> Reply:
    kind, status, payload = reply
    if kind == "echo" and rng.random() < 0.5:  # mutate the whole frame on the wire
        return ("raw", status, mutate(build_command(0x0400, payload[:0xFFF0], status), rng))
    return (kind, status, mutate(payload, rng))


TARGET = Target(
    name="printer",
    strategy=st.tuples(st.sampled_from(OPERATIONS), st.lists(_replies, max_size=8)),
    make=_make,
    feed=_feed,
    documented=(PrinterError,),
    alive=_alive,
    expand=reply_mutants(_mutant),
)
