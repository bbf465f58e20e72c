"""Simulator behaviour seen through the driver and through raw bytes: framing robustness,
colour offset and calibration, printed PNGs, coupling hooks, timing, control channel, CLI."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from cardstation.commands import printer as printer_command
from cardstation.drivers.hiti import errors
from cardstation.drivers.hiti.bench import run_benchmarks, sample_face
from cardstation.drivers.hiti.frames import Opcode, build_command
from cardstation.drivers.hiti.printer import Printer, Timeouts
from cardstation.drivers.hiti.render import CardPanels, render_panels, render_side
from cardstation.drivers.hiti.state import CardPosition
from cardstation.drivers.hiti.transport import Transport, open_transport
from cardstation.simulators.printer import (
    Orientation,
    PrinterModel,
    PrinterSimServer,
    SimCard,
    SimPosition,
    SimUsbBackend,
)
from cardstation.simulators.printer.imaging import PX_PER_MM
from tests.support.clock import FakeClock
from tests.support.hiti import USB_URL, Rig, make_printer

# --- raw bytes against the TCP simulator ----------------------------------------------------


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "simulator closed the connection"
        data += chunk
    return data


def _raw(rig: Rig) -> socket.socket:
    assert rig.server is not None
    host, port = rig.server.address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def test_raw_client_gets_status(tcp_rig: Rig) -> None:
    """Knowing only the public framing: A5, u16 len, 0x50, u16 0x0400 -> 3-byte status."""
    with _raw(tcp_rig) as sock:
        sock.sendall(bytes([0xA5, 0x00, 0x03, 0x50, 0x04, 0x00]))
        head = _recv_exact(sock, 6)
        assert head[0] == 0xA5
        assert int.from_bytes(head[1:3], "big") == 3 + 3
        assert head[3] == 0x50 and head[4:6] == b"\x04\x00"
        status = _recv_exact(sock, 3)
        assert status == b"\x00\x00\x00"


@pytest.mark.parametrize(
    ("garbage", "echo"),
    [
        (b"\x00\x01\x02hello", 0x0000),  # bad header byte
        (bytes.fromhex("a50001500400"), 0x0000),  # length shorter than status + cmd
        (bytes.fromhex("a50003001234"), 0x1234),  # host status byte not 0x50
        (bytes.fromhex("a50003501234"), 0x1234),  # unknown opcode
        (bytes.fromhex("a50004500500ff"), 0x0500),  # START_JOB with a short payload
    ],
    ids=["bad-header", "short-length", "bad-status", "unknown-opcode", "bad-payload"],
)
def test_malformed_frames_get_error_reply_and_simulator_survives(
    tcp_rig: Rig, model: PrinterModel, garbage: bytes, echo: int
) -> None:
    with _raw(tcp_rig) as sock:
        sock.sendall(garbage)
        head = _recv_exact(sock, 6)
        assert head[0] == 0xA5 and head[3] & 0x80, head.hex()  # failed status
        assert int.from_bytes(head[4:6], "big") == echo
        # the same connection still works
        sock.sendall(build_command(Opcode.GET_STATUS))
        assert _recv_exact(sock, 9)[:6] == bytes.fromhex("a50006500400")
    assert model.protocol_errors
    # and a fresh driver connection too
    p = tcp_rig.printer()
    assert p.status().ok
    p.close()


def test_malformed_frames_over_usb(usb_rig: Rig, model: PrinterModel) -> None:
    transport = usb_rig.transport()
    transport.write(b"\x13\x37garbage")
    reply = transport.read_exact(6)
    assert reply == bytes.fromhex("a50003d80000")
    printer = make_printer(transport)
    with pytest.raises(errors.CommandRejected, match="malformed or unknown"):
        printer._exchange(0x1234)
    assert printer.status().ok
    assert any("bad header" in e for e in model.protocol_errors)
    printer.close()


class _Scripted(Transport):
    """Replies with fixed bytes, whatever is sent."""

    def __init__(self, reply: bytes) -> None:
        super().__init__("scripted://")
        self.reply = bytearray(reply)

    def _write(self, data: bytes, timeout: float) -> None:
        pass

    def _read_chunk(self, size: int, timeout: float) -> bytes:
        out = bytes(self.reply[:size])
        del self.reply[:size]
        return out

    def _close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (b"garbage!", errors.PrinterProtocolError, "bad frame header"),
        (bytes.fromhex("a50001500400"), errors.PrinterProtocolError, "shorter than 3"),
        (bytes.fromhex("a50006500401000000"), errors.PrinterProtocolError, "echoes command"),
        (bytes.fromhex("a5000650040000"), errors.PrinterTimeout, "timed out"),
    ],
    ids=["garbage", "short-length", "wrong-echo", "truncated"],
)
def test_driver_reports_malformed_replies(
    reply: bytes, error: type[errors.PrinterError], text: str
) -> None:
    printer = make_printer(_Scripted(reply), timeouts=Timeouts(reply=0.05))
    with pytest.raises(error, match=text):
        printer.status()


# --- printing, colour offset, calibration ---------------------------------------------------


def _print_one(printer: Printer, panels: CardPanels) -> None:
    printer.move_to_contact()
    printer.print_card(panels)
    printer.eject()


def test_print_writes_png_per_side(
    printer: Printer, model: PrinterModel, card_panels: CardPanels
) -> None:
    steps: list[tuple[str, float]] = []
    printer.move_to_contact()
    printer.print_card(card_panels, lambda step, f: steps.append((step, f)))
    assert printer.card_position() == CardPosition.PRINT
    assert printer.eject() == CardPosition.OUTPUT_HOPPER
    assert printer.card_position() == CardPosition.OUTPUT_HOPPER
    record = model.print_log[-1]
    assert [s.physical_side for s in record.sides] == ["front", "back"]
    for side in record.sides:
        assert side.png is not None and side.png.exists()
        with Image.open(side.png) as img:
            assert img.size == (1014, 642)
    assert steps[0] == ("upload", 0.0) and ("print", 1.0) in steps
    assert model.ribbon is not None and model.ribbon.remaining == 198  # two colour sides


def test_a_failed_png_write_is_reported_once_and_does_not_stop_the_simulator(
    printer: Printer, model: PrinterModel, card_panels: CardPanels, monkeypatch, caplog
) -> None:
    import cardstation.simulators.printer.model as model_module

    def broken(*_args: object) -> Image.Image:
        raise OSError("disk full")

    monkeypatch.setattr(model_module, "reconstruct", broken)
    _print_one(printer, card_panels)  # printing itself is not affected
    with pytest.raises(OSError, match="disk full"):
        model.flush_output()
    assert len(model.print_log) == 1  # reported once; the log is readable again
    _print_one(printer, card_panels)
    model.close()  # logs the second failure instead of raising
    assert "could not be written" in caplog.text


def test_printed_png_matches_the_face(usb_rig: Rig, model: PrinterModel) -> None:
    face = sample_face(3)
    printer = usb_rig.printer()
    _print_one(printer, render_panels(face))
    png = model.print_log[-1].sides[0].png
    assert png is not None
    with Image.open(png) as printed:
        diff = ImageChops.difference(printed.convert("RGB"), face.convert("RGB"))
    assert max(ImageStat.Stat(diff).mean) < 3


def test_colour_offset_then_calibration(
    printer: Printer, model: PrinterModel, card_panels: CardPanels
) -> None:
    model.inject("sensor", offset_mm=0.4)
    _print_one(printer, card_panels)
    shifted = model.print_log[-1].sides[0].offsets_px
    assert shifted == {"Y": 0, "M": round(0.4 * PX_PER_MM), "C": round(0.8 * PX_PER_MM)}
    calibration = printer.calibrate_ribbon_sensor()
    assert calibration.ok and calibration.offset_um == 0
    _print_one(printer, card_panels)
    assert model.print_log[-1].sides[0].offsets_px == {"Y": 0, "M": 0, "C": 0}


def test_dirty_sensor_needs_cleaning_not_just_calibration(
    printer: Printer, model: PrinterModel, card_panels: CardPanels
) -> None:
    model.inject("sensor", dirt=0.3)
    calibration = printer.calibrate_ribbon_sensor()
    assert calibration.dirt_percent == 30 and calibration.offset_um == 300
    _print_one(printer, card_panels)
    assert model.print_log[-1].sides[0].offsets_px["C"] > 0
    model.clean_sensor()
    printer.calibrate_ribbon_sensor()
    _print_one(printer, card_panels)
    assert model.print_log[-1].sides[0].offsets_px["C"] == 0


def test_ribbon_search_fail_is_fixed_by_calibration(
    printer: Printer, model: PrinterModel, card_panels: CardPanels
) -> None:
    model.inject("sensor", offset_mm=2.0)
    printer.move_to_contact()
    with pytest.raises(errors.RibbonSearchFail) as info:
        printer.print_card(card_panels)
    assert info.value.cs_code == "0300"
    assert "calibrate or clean the ribbon sensor" in info.value.remedy
    printer.calibrate_ribbon_sensor()
    printer.print_card(card_panels)


def test_mono_back_on_ymckok_ribbon(usb_rig: Rig, model: PrinterModel) -> None:
    model.set_ribbon(type=4, remaining=10)  # YMCKOK
    printer = usb_rig.printer()
    panels = render_panels(sample_face(0), sample_face(1), back_colour=False)
    _print_one(printer, panels)
    assert model.print_log[-1].sides[1].panels == ("K", "O")
    assert model.ribbon is not None and model.ribbon.remaining == 9


# --- card orientation and coupling hooks ----------------------------------------------------


def test_contact_hooks_follow_the_card(
    printer: Printer, model: PrinterModel, card_panels: CardPanels
) -> None:
    events: list[tuple[str, int, str]] = []
    model.on_contact_enter = lambda c: events.append(("enter", c.serial, c.orientation.value))
    model.on_contact_leave = lambda c: events.append(("leave", c.serial, c.orientation.value))
    model.empty_input()
    card = model.load_card(Orientation.CHIP_FAR_END, chip="chip-object")
    printer.move_to_contact()
    assert events == [("enter", card.serial, "chip_far_end")]
    assert model.card is card and card.chip == "chip-object"
    printer.print_card(card_panels)
    assert events[-1] == ("leave", card.serial, "chip_far_end")
    printer.move_to_contact()  # back from the print position for a rewrite
    assert events[-1][0] == "enter"
    printer.reject()
    assert events[-1][0] == "leave"
    assert model.reject_box == [card] and card.position is SimPosition.REJECT


def test_face_down_card_prints_on_its_back(usb_rig: Rig, model: PrinterModel) -> None:
    model.empty_input()
    card: SimCard = model.load_card("face_down")
    printer = usb_rig.printer()
    _print_one(printer, render_panels(sample_face(0)))
    assert list(card.printed) == ["back"]
    assert model.print_log[-1].sides[0].physical_side == "back"


# --- timing ---------------------------------------------------------------------------------


def test_timed_operations_report_busy_and_progress(card_panels: CardPanels) -> None:
    clock = FakeClock(1000.0)
    model = PrinterModel(speed=1.0, clock=clock, cards=1, autorun=False)

    def sleep(seconds: float) -> None:
        clock.now += seconds
        model.advance()

    transport = open_transport(USB_URL, SimUsbBackend(model))
    printer = Printer(transport, clock=clock, sleep=sleep, poll_interval=0.5, panel_pause=0)
    seen: list[tuple[str, float]] = []
    start = clock.now
    printer.move_to_contact(lambda step, f: seen.append((step, f)))
    assert 3.0 <= clock.now - start <= 3.5  # feed takes 3 s
    assert any(0 < f < 1 for _, f in seen) and seen[-1] == ("feed", 1.0)
    start = clock.now
    printer.print_card(card_panels)
    # contact->print 1.5 + YMCKO 21 + flip 4 + YMCKO 21
    assert 47.5 <= clock.now - start <= 48.5
    printer.timeouts.move = 1.0
    with pytest.raises(errors.PrinterTimeout):
        printer.eject()
    transport.close()


# --- transports and control -----------------------------------------------------------------


def test_usb_serial_selection(model: PrinterModel) -> None:
    backend = SimUsbBackend(model)
    ok = open_transport(f"{USB_URL}?serial={model.serial}", backend)
    ok.close()
    with pytest.raises(errors.PrinterNotConnected, match="serial NOPE"):
        open_transport(f"{USB_URL}?serial=NOPE", backend)


def test_socket_refused_is_not_connected() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(errors.PrinterNotConnected):
        open_transport(f"socket://127.0.0.1:{port}")


def test_control_channel(model: PrinterModel) -> None:
    server = PrinterSimServer(model, control_listen="127.0.0.1:0").start()
    try:
        assert server.control_address is not None
        host, port = server.control_address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            f = sock.makefile("rwb")

            def ask(request: object) -> dict:
                f.write(json.dumps(request).encode() + b"\n")
                f.flush()
                return json.loads(f.readline())

            assert ask({"op": "inject", "fault": "cover_open"}) == {"ok": True}
            assert ask({"op": "inject", "fault": "bogus"})["ok"] is False
            f.write(b"not json\n")
            f.flush()
            assert json.loads(f.readline())["ok"] is False
            p = make_printer(open_transport(server.url))
            assert [a.name for a in p.status().alerts] == ["CoverOpen"]
            assert ask({"op": "clear", "fault": "cover_open"}) == {"ok": True}
            assert ask({"op": "load_cards", "count": 2})["ok"]
            state = ask({"op": "state"})["state"]
            assert state["input_hopper"] == 5 and not state["cover_open"]
            p.close()
    finally:
        server.close()


def test_server_run_prints_address_first(tmp_path: Path) -> None:
    code = (
        "import sys; from cardstation.simulators.printer import server; import argparse;"
        "p = argparse.ArgumentParser(); server.add_arguments(p);"
        "sys.exit(server.run(p.parse_args(sys.argv[1:])))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--listen", "127.0.0.1:0", "--speed", "0",
         "--control", "127.0.0.1:0", "--output", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert proc.stdout.readline().startswith("control 127.0.0.1:")
        p = make_printer(open_transport(f"socket://{address}"))
        assert p.identity().model == "CS-220e"
        p.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


# --- CLI and bench --------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    printer_command.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_commands(tcp_rig: Rig, model: PrinterModel, capsys: pytest.CaptureFixture) -> None:
    url = tcp_rig.url
    assert _cli(["printer", "status", "--device", url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["identity"]["model"] == "CS-220e" and out["card_position"] == "out"
    supplies = out["supplies"]  # doctor's and county IT's look at the consumables
    assert supplies["ribbon"]["chip_present"] is True and supplies["ribbon_capacity"] > 0
    assert 0 < supplies["ribbon_remaining_ratio"] <= 1 and supplies["cards_printed"] >= 0
    assert _cli(["printer", "ribbon", "--device", url]) == 0
    assert json.loads(capsys.readouterr().out)["ribbon"]["chip_present"] is True
    assert _cli(["printer", "feed", "--device", url]) == 0
    assert json.loads(capsys.readouterr().out)["card_position"] == "contact"
    assert _cli(["printer", "reject", "--device", url]) == 0
    assert json.loads(capsys.readouterr().out)["card_position"] == "reject_box"
    assert _cli(["printer", "calibrate", "--device", url]) == 0
    assert json.loads(capsys.readouterr().out)["calibration"]["ok"] is True
    model.inject("cover_open")
    assert _cli(["printer", "feed", "--device", url]) == 1
    err = json.loads(capsys.readouterr().out)
    assert err["error"] == "CoverOpen" and err["vendor_code"] == "0x050001"
    assert err["cs_code"] == "0100" and err["remedy"]
    model.clear("cover_open")
    assert _cli(["printer", "eject", "--device", url]) == 0
    capsys.readouterr()


def test_cli_not_connected(capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert _cli(["printer", "status", "--device", f"socket://127.0.0.1:{port}"]) == 1
    err = json.loads(capsys.readouterr().out)
    assert err["error"] == "PrinterNotConnected" and "USB cables" in err["remedy"]


def test_render_masks() -> None:
    face = Image.new("RGB", (1014, 642), (255, 255, 255))
    face.paste((0, 0, 0), (0, 0, 10, 10))  # black text -> resin K
    face.paste((255, 0, 0), (20, 0, 30, 10))  # red -> magenta + yellow
    side = render_side(face)
    assert side.k is not None and side.k[0] == 0 and side.k[25] == 255
    assert side.y is not None and side.m is not None and side.c is not None
    assert (side.y[0], side.m[0], side.c[0]) == (0, 0, 0)  # no dye under resin K
    assert (side.y[25], side.m[25], side.c[25]) == (255, 255, 0)
    assert side.o == b"\xff" * (1014 * 642)
    portrait = render_side(Image.new("RGB", (642, 1014), "white"))
    assert portrait.cols == 1014 and portrait.y is not None and len(portrait.y) == 1014 * 642


def test_bench() -> None:
    results = {r["name"]: r for r in run_benchmarks(runs=3)}
    assert results["printer.render_ms_median"]["unit"] == "ms"
    assert results["printer.render_ms_median"]["value"] > 0
    assert results["printer.bytes_per_card"]["value"] > 10 * 1014 * 642


def test_the_socket_transport_sends_each_command_without_waiting_for_an_ack(tcp_rig: Rig) -> None:
    """pyserial's socket:// leaves Nagle's algorithm on; a command's short last segment then
    waits for the printer's delayed ACK (up to 40 ms per exchange). The transport turns it off."""
    transport = tcp_rig.transport()
    try:
        sock = transport._port._socket  # type: ignore[attr-defined]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        transport.close()
