"""The simulator and the driver against gutenprint's HiTi backend (issue 14, item 2).

Source: gutenprint `src/cups/backend_hiti.c`, version of 2024-06 (gutenprint-mirror commit
ea5b9229), compared with the 2019-11 copy (ecfed957) where named. The replay below is the
command sequence that backend sends to a P_HITI_CS2XX printer, with the reply-buffer size it
allows for each command (a longer reply fails its "Response too long" check).
"""

from __future__ import annotations

import pytest

from cardstation.drivers.hiti import assumptions as asm
from cardstation.drivers.hiti.frames import (
    CMD_STATUS_OK,
    HEADER_SIZE,
    STATUS_FAILED,
    Opcode,
    build_command,
    build_heat_table_header,
    parse_header,
)
from cardstation.drivers.hiti.printer import Printer
from cardstation.drivers.hiti.render import CardPanels
from cardstation.drivers.hiti.transport import RecordingTransport, open_transport
from cardstation.simulators.printer import PrinterModel, SimUsbBackend
from cardstation.simulators.printer.protocol import Session
from tests.support.hiti import USB_URL, make_printer

#: (command, payload, gutenprint's reply buffer in bytes), in the order the backend sends them.
#: hiti_attach for a card printer (not a "sheet" model, not P51x): 0x8010 first.
ATTACH_2024 = [
    (0x8010, b"", 15),  # hiti_query_unk8010, unk_8010[15]
    (0x0100, b"", 256),  # hiti_query_version (RDC_RS)
    (0x040C, b"\x00", 5),  # hiti_query_supplies: RSUS arg 0, struct hiti_ribbon
    (0x0401, b"", 4),  # ... then RIS, struct hiti_paper
    (0x8001, b"", 2),  # hiti_query_calibration
    (0x800F, b"", 2),  # hiti_query_ribbonvendor
    (0x8009, b"", 3),  # hiti_query_rpidm
    (0x801C, b"", 6),  # hiti_query_hilightadj
    (0x8007, bytes([18]), 18),  # hiti_query_serno
    (0x8000, b"", 29),  # hiti_query_summary, struct hiti_erdc_rs
]
#: hiti_get_info, hiti_query_stats (markers, status, counter) and hiti_get_status (queue).
QUERIES_2024 = [
    (0x800E, b"", 2),  # hiti_query_tphv
    (0x8006, b"", 10),  # hiti_query_led_calibration
    (0x0104, b"", 256),  # hiti_dump_options
    (0x040B, b"", 30),  # hiti_query_statistics
    (0x0400, b"", 3),  # hiti_query_status
    (0x8005, b"\x01", 4),  # hiti_query_counter(ctx, 1, ...), one u32 on non-P51x models
    (0x0503, b"\x00\x00\x00", 17),  # hiti_query_job_qa with job {0, 0}
]
#: The 2019-11 hiti_attach: 0x8010 first as well, then the same queries up to 0x801C.
ATTACH_2019 = ATTACH_2024[:8]


def _exchange(session: Session, cmd: int, payload: bytes) -> tuple[int, int, bytes]:
    session.feed(build_command(cmd, payload))
    out = session.take_output()
    hdr = parse_header(out)
    body = out[HEADER_SIZE:]
    assert len(body) == hdr.length - 3, f"0x{cmd:04X}: reply length field disagrees"
    return hdr.status, hdr.cmd, body


@pytest.mark.parametrize("sequence", [ATTACH_2024 + QUERIES_2024, ATTACH_2019],
                         ids=["2024", "2019"])
def test_gutenprint_connection_replay_gets_no_failed_ack(
    sequence: list[tuple[int, bytes, int]], model: PrinterModel
) -> None:
    """gutenprint backend_hiti.c hiti_attach/hiti_get_info/hiti_query_stats/hiti_get_status,
    2024-06 (ea5b9229) and 2019-11 (ecfed957): every command acked without the failed bit,
    echoing its command code, with a reply that fits gutenprint's buffer."""
    session = Session(model)
    replies = {}
    for cmd, payload, limit in sequence:
        status, echo, body = _exchange(session, cmd, payload)
        assert not status & STATUS_FAILED, f"0x{cmd:04X} failed with status 0x{status:02X}"
        assert status == CMD_STATUS_OK and echo == cmd
        assert len(body) <= limit, f"0x{cmd:04X}: {len(body)} bytes > gutenprint's {limit}"
        replies[cmd] = body
    assert not model.protocol_errors
    summary = replies[0x0100]  # hiti_query_version: id length at [33], id at [34]
    assert summary[34 : 34 + summary[33]] == b"CS-220e"
    version = summary[34 + summary[33] + 1 :].split(b"\x00")[0]  # gutenprint skips one byte
    assert version.decode().startswith(model.firmware[:9])
    assert replies[0x8009][:2] == b"\x03\x0a"  # struct hiti_rpidm: usb_pid 0x030A
    if 0x8007 in replies:
        assert replies[0x8007].rstrip(b"\x00") == model.serial.encode()
    if 0x040B in replies:  # gutenprint reads the first record only: ribbon remaining (type 3)
        stats = replies[0x040B]
        assert stats[0] >= 1 and stats[1] == 0x03
        assert int.from_bytes(stats[2:6], "big") == model.ribbon.remaining
    if 0x8005 in replies:
        assert int.from_bytes(replies[0x8005], "big") == model.print_count


def test_print_count_is_read_as_gutenprint_reads_it(
    printer: Printer, model: PrinterModel, card_panels: CardPanels
) -> None:
    """gutenprint backend_hiti.c 2024 hiti_query_stats: ERDC_RPC 0x8005 arg 01 -> u32be; the
    statistics (0x040B) carry only the ribbon-remaining record first."""
    before = printer.print_count()
    printer.move_to_contact()
    printer.print_card(card_panels)
    assert printer.print_count() == before + 1 == model.print_count
    assert list(printer.statistics()) == [0x03]


def test_header_then_payload_commands_are_acked_before_their_payload(
    model: PrinterModel,
) -> None:
    """gutenprint backend_hiti.c 2024 hiti_shptc (0x830B) and hiti_cvd (0xE002): a 6-byte
    header whose length counts the payload, an ack, then the raw payload; 0x830C is the CS
    variant. The next ordinary command is parsed normally."""
    session = Session(model)
    for cmd in (Opcode.SEND_HEAT_TONE, Opcode.SEND_HEAT_TONE_CS, Opcode.SEND_VOLTAGE_DROP):
        payload = bytes(range(256)) * 9  # longer than an ordinary frame may be
        header = build_command(cmd, payload)[:HEADER_SIZE]
        session.feed(header)
        ack = session.take_output()
        assert parse_header(ack).cmd == cmd and not parse_header(ack).status & STATUS_FAILED
        session.feed(payload)
        assert session.take_output() == b""
        assert session.uploads[(int(cmd), 0)] == payload
    status, echo, _ = _exchange(session, Opcode.GET_STATUS, b"")
    assert echo == Opcode.GET_STATUS and not status & STATUS_FAILED
    assert not model.protocol_errors


def test_heat_table_header_carries_a_24_bit_length_and_a_plane(model: PrinterModel) -> None:
    """gutenprint backend_hiti.c 2024 struct hiti_seht2: 0x8303 with len = (data+5) >> 8 and
    lenb = its low byte, then the plane; the data follows the ack."""
    session = Session(model)
    data = bytes(70000)  # needs the 24-bit length
    session.feed(build_heat_table_header(len(data), 2))
    ack = session.take_output()
    assert parse_header(ack).cmd == Opcode.SEND_HEAT_TABLE
    session.feed(data[:1000])
    session.feed(data[1000:])
    assert session.uploads[(int(Opcode.SEND_HEAT_TABLE), 2)] == data
    assert _exchange(session, Opcode.GET_STATUS, b"")[1] == Opcode.GET_STATUS
    assert not model.protocol_errors


def test_resend_request_resends_start_plane_header_and_data(
    model: PrinterModel, card_panels: CardPanels
) -> None:
    """gutenprint backend_hiti.c hiti_main_loop (2019 and 2024): on RESEND_DATA it jumps back
    to resend_y/m/c: the start-plane command, the SEPD header, then the data."""
    transport = RecordingTransport(open_transport(USB_URL, SimUsbBackend(model)))
    printer = make_printer(transport)
    printer.move_to_contact()
    model.inject("resend")
    transport.records.clear()
    printer.print_card(card_panels)
    sent = transport.sent()
    start_y = build_command(Opcode.START_Y)
    first = sent.index(start_y)
    assert sent[first + 1][4:6] == b"\x83\x09"  # SEPD header
    after = sent[first + 2 :]  # raw plane, status query, then the resend
    assert after[1] == build_command(Opcode.GET_STATUS)
    assert after[2] == start_y and after[3] == sent[first + 1] and after[4] == sent[first + 2]
    assert model.print_count == 1 and not model.protocol_errors


def test_driver_waits_while_power_on_is_set(card_panels: CardPanels) -> None:
    """gutenprint backend_hiti.c (2019 and 2024) waits while `sts[0] & (POWERON|BUSY)`; the
    simulator shows POWER-ON, not BUSY, while a reset runs."""
    from tests.support.clock import FakeClock

    clock = FakeClock(1000.0)
    model = PrinterModel(speed=1.0, clock=clock, cards=1, autorun=False)

    def sleep(seconds: float) -> None:
        clock.now += seconds
        model.advance()

    transport = open_transport(USB_URL, SimUsbBackend(model))
    printer = Printer(transport, clock=clock, sleep=sleep, poll_interval=0.5, panel_pause=0)
    printer._exchange(Opcode.RESET, bytes([asm.RESET_FULL]))
    st = printer.status()
    assert st.power_on and not st.busy
    start = clock.now
    printer.wait_idle("reset", 30.0)
    assert clock.now - start >= 7.5  # the reset takes 8 s
    assert not printer.status().power_on
    transport.close()


def test_job_ids_stay_in_1_to_7fff(printer: Printer, model: PrinterModel,
                                   card_panels: CardPanels) -> None:
    """gutenprint backend_hiti.c hiti_attach: jobid & 0x7fff, 0 becomes 1."""
    printer._jobid = 0x7FFF
    printer.move_to_contact()
    assert printer.print_card(card_panels) == 1
    session = Session(model)
    for bad in (0, 0x8000):
        status, _, _ = _exchange(session, Opcode.START_JOB, bytes([0]) + bad.to_bytes(2, "big"))
        assert status & STATUS_FAILED


def test_clean_path_takes_one_argument(printer: Printer, model: PrinterModel) -> None:
    """gutenprint backend_hiti.c 2024: CMD_EDM_CPP 0xE023 "Clean Paper Path (1 arg)"."""
    printer.clean_card_path()
    assert model.clean_count == 1
    session = Session(model)
    status, _, _ = _exchange(session, Opcode.CLEAN_PATH, b"")
    assert status & STATUS_FAILED


def test_set_format_before_start_job_is_accepted(model: PrinterModel) -> None:
    """gutenprint backend_hiti.c hiti_main_loop (2019 and 2024): EFD_SF, then JC_SJ, then
    EFD_CHS {0, 1}, then EPC_SP; each answered with an empty payload (gutenprint passes a
    zero-length reply buffer to SF, CHS and SP)."""
    session = Session(model)
    fmt = asm.CardFormat.build({"sides": 1, "ribbon_type": 0, "colorseq_front": 0x97,
                                "colorseq_back": 0, "cols": 1014, "rows": 642})
    for cmd, payload in ((Opcode.SET_FORMAT, fmt), (Opcode.START_JOB, b"\x00\x00\x05"),
                         (Opcode.SET_HEATING, b"\x00\x01"), (Opcode.START_PAGE, b"")):
        status, echo, body = _exchange(session, cmd, payload)
        assert not status & STATUS_FAILED and echo == cmd
        assert body == (b"\x00\x00\x05" if cmd == Opcode.START_JOB else b"")
    assert not model.protocol_errors
