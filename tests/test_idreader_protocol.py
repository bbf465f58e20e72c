"""GA 467 frames byte for byte (ssc-chip.md §12), both directions, over a real pty + pyserial.

Driver -> reader: what Ga467Reader writes, captured from the simulator's received frames.
Reader -> driver: what the simulator answers to raw frames written with pyserial.
A scripted responder on another pty feeds the driver replies the simulator never sends
(every SW3 code, malformed frames), still through a real serial line.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Iterator

import pytest
import serial

from cardstation.drivers.idreader import (
    SW3_ERRORS,
    FrameError,
    Ga467Reader,
    NoCard,
    ReaderNotResponding,
    ReaderStatusError,
    SamSelfTestFailed,
)
from cardstation.drivers.idreader.frames import build_card_data, build_reply, xor8
from cardstation.simulators.idreader import SAMPLE_CARD, IdReaderSimulator

H = bytes.fromhex


@pytest.fixture
def sim() -> Iterator[IdReaderSimulator]:
    s = IdReaderSimulator()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def reader(sim: IdReaderSimulator) -> Iterator[Ga467Reader]:
    with Ga467Reader(sim.path or "", timeout=1.0) as r:
        yield r


@pytest.fixture
def line(sim: IdReaderSimulator) -> Iterator[serial.Serial]:
    with serial.serial_for_url(sim.path, baudrate=115200, timeout=2.0) as port:
        yield port


def exchange(port: serial.Serial, frame: bytes, reply_len: int) -> bytes:
    port.reset_input_buffer()
    port.write(frame)
    return bytes(port.read(reply_len))


# -- driver -> reader -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("call", "frame"),
    [
        (lambda r: r.reset_sam(), "AAAAAA9669 0003 10FF EC"),
        (lambda r: r.sam_status(), "AAAAAA9669 0003 11FF ED"),
        (lambda r: r.sam_id(), "AAAAAA9669 0003 12FF EE"),
        (lambda r: r.find_card(), "AAAAAA9669 0003 2001 22"),
        (lambda r: (r.find_card(), r.select_card()), "AAAAAA9669 0003 2002 21"),
        (lambda r: r.set_baud(115200), "AAAAAA9669 0003 6000 63"),
        (lambda r: r.set_baud(57600), "AAAAAA9669 0003 6001 62"),
        (lambda r: r.set_baud(38400), "AAAAAA9669 0003 6002 61"),
        (lambda r: r.set_baud(19200), "AAAAAA9669 0003 6003 60"),
        (lambda r: r.set_baud(9600), "AAAAAA9669 0003 6004 67"),
    ],
)
def test_driver_sends_exact_frames(sim: IdReaderSimulator, reader: Ga467Reader, call: object,
                                   frame: str) -> None:
    call(reader)  # type: ignore[operator]
    assert sim.received[-1] == H(frame)
    assert bytes(sim.received_bytes).endswith(H(frame))


def test_driver_sends_exact_read_frames(sim: IdReaderSimulator, reader: Ga467Reader) -> None:
    reader.read_id_card()
    reader.read_card(with_fingerprint=True)
    sim.place(SAMPLE_CARD, appended_address="北京市朝阳区新地址2号")
    reader.find_card()
    reader.select_card()
    assert reader.read_appended_address() == "北京市朝阳区新地址2号"
    assert sim.received == [
        H("AAAAAA9669 0003 2001 22"),
        H("AAAAAA9669 0003 2002 21"),
        H("AAAAAA9669 0003 3001 32"),
        H("AAAAAA9669 0003 3010 23"),
        H("AAAAAA9669 0003 2001 22"),
        H("AAAAAA9669 0003 2002 21"),
        H("AAAAAA9669 0003 3003 30"),
    ]


# -- reader -> driver (the simulator's replies) -----------------------------------------------

def test_sim_find_and_select_replies(line: serial.Serial) -> None:
    find = H("AAAAAA9669 0003 2001 22")
    assert exchange(line, find, 15) == H("AAAAAA9669 0008 0000 9F 00000000 97")
    assert exchange(line, H("AAAAAA9669 0003 2002 21"), 19) == H(
        "AAAAAA9669 000C 0000 90 0000000000000000 9C"
    )


def test_sim_read_text_photo_reply_is_1295_bytes(line: serial.Serial) -> None:
    exchange(line, H("AAAAAA96690003200122"), 15)
    exchange(line, H("AAAAAA96690003200221"), 19)
    reply = exchange(line, H("AAAAAA96690003300132"), 1300)
    assert len(reply) == 1295
    assert reply[:14] == H("AAAAAA9669 0508 0000 90 0100 0400")
    assert reply[14:270] == SAMPLE_CARD.to_text_block()
    assert reply[270:1294] == SAMPLE_CARD.photo_wlt
    assert reply[-1] == xor8(reply[5:-1])


def test_sim_read_text_photo_fingerprint_reply_is_2321_bytes(line: serial.Serial) -> None:
    exchange(line, H("AAAAAA96690003200122"), 15)
    exchange(line, H("AAAAAA96690003200221"), 19)
    reply = exchange(line, H("AAAAAA96690003301023"), 2400)
    assert len(reply) == 2321
    assert reply[:16] == H("AAAAAA9669 090A 0000 90 0100 0400 0400")
    assert reply[16:272] == SAMPLE_CARD.to_text_block()
    assert reply[272:1296] == SAMPLE_CARD.photo_wlt
    assert reply[1296:2320] == SAMPLE_CARD.fingerprint
    assert reply[-1] == xor8(reply[5:-1])


def test_sim_sam_replies(line: serial.Serial) -> None:
    assert exchange(line, H("AAAAAA9669000310FFEC"), 11) == H("AAAAAA9669 0004 0000 90 94")
    assert exchange(line, H("AAAAAA9669000311FFED"), 11) == H("AAAAAA9669 0004 0000 90 94")
    reply = exchange(line, H("AAAAAA9669000312FFEE"), 27)
    assert reply[:10] == H("AAAAAA9669 0014 0000 90") and len(reply) == 27


def test_sim_no_card_replies(sim: IdReaderSimulator, line: serial.Serial) -> None:
    sim.remove()
    assert exchange(line, H("AAAAAA96690003200122"), 11) == H("AAAAAA9669 0004 0000 80 84")
    assert exchange(line, H("AAAAAA96690003200221"), 11) == H("AAAAAA9669 0004 0000 81 85")
    assert exchange(line, H("AAAAAA96690003300132"), 11) == H("AAAAAA9669 0004 0000 41 45")


def test_sim_host_checksum_error_is_sw3_10(line: serial.Serial) -> None:
    assert exchange(line, H("AAAAAA96690003200123"), 11) == H("AAAAAA9669 0004 0000 10 14")


def test_sim_length_errors_are_sw3_11(line: serial.Serial) -> None:
    # LEN below the minimum (CMD PARA CHK).
    assert exchange(line, H("AAAAAA9669 0002 20 22"), 11) == H("AAAAAA9669 0004 0000 11 15")
    # LEN counts a data byte that find card does not take (checksum itself is right).
    frame = H("AAAAAA9669 0004 2001 00")
    assert exchange(line, frame + bytes([xor8(frame[5:])]), 11) == H("AAAAAA9669000400001115")
    # LEN promises more bytes than ever arrive: answered after the frame timeout.
    assert exchange(line, H("AAAAAA9669 0005 2001"), 11) == H("AAAAAA9669 0004 0000 11 15")
    # The line recovers.
    assert exchange(line, H("AAAAAA96690003200122"), 15) == H("AAAAAA9669000800009F0000000097")


def test_sim_unknown_command_is_sw3_21(line: serial.Serial) -> None:
    frame = H("AAAAAA9669 0003 4001")
    assert exchange(line, frame + bytes([xor8(frame[5:])]), 11) == H("AAAAAA9669 0004 0000 21 25")
    frame = H("AAAAAA9669 0003 6009")  # set baud with an unknown rate code
    assert exchange(line, frame + bytes([xor8(frame[5:])]), 11) == H("AAAAAA9669000400002125")


def test_sim_skips_noise_before_preamble(line: serial.Serial) -> None:
    assert exchange(line, H("00FF13AAAAAA96690003200122"), 15) == H(
        "AAAAAA9669000800009F0000000097"
    )


@pytest.mark.parametrize(
    ("fault", "sw3"),
    [("sam_failure", 0x60), ("auth_fail", 0x31), ("read_fail", 0x41),
     ("sam_not_authorized", 0x66)],
)
def test_sim_read_faults(sim: IdReaderSimulator, line: serial.Serial, fault: str,
                         sw3: int) -> None:
    exchange(line, H("AAAAAA96690003200122"), 15)
    exchange(line, H("AAAAAA96690003200221"), 19)
    sim.inject(fault)
    expected = H("AAAAAA9669 0004 0000") + bytes([sw3, 0x04 ^ sw3])
    assert exchange(line, H("AAAAAA96690003300132"), 11) == expected
    sim.clear_faults()
    assert len(exchange(line, H("AAAAAA96690003300132"), 1295)) == 1295


# -- scripted replies through a pty: every SW3 and malformed frames ---------------------------

class ScriptedLine:
    """A pty whose far end answers each complete host frame with the next scripted bytes."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = list(replies)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set() and self.replies:
            if select.select([self.master], [], [], 0.05)[0]:
                buf += os.read(self.master, 4096)
            if len(buf) >= 7 and len(buf) >= 7 + int.from_bytes(buf[5:7], "big"):
                buf = b""
                os.write(self.master, self.replies.pop(0))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def scripted() -> Iterator[object]:
    lines: list[ScriptedLine] = []

    def make(*replies: bytes) -> Ga467Reader:
        sl = ScriptedLine(list(replies))
        lines.append(sl)
        return Ga467Reader(sl.path, timeout=0.5)

    yield make
    for sl in lines:
        sl.close()


@pytest.mark.parametrize("sw3", sorted(SW3_ERRORS))
def test_every_sw3_maps_to_its_exception(scripted: object, sw3: int) -> None:
    with scripted(build_reply(sw3)) as reader, pytest.raises(SW3_ERRORS[sw3]) as info:  # type: ignore[operator]
        reader.sam_status()
    assert info.value.sw3 == sw3
    assert SW3_ERRORS[sw3].operator_message in str(info.value)
    assert f"SW3={sw3:02X}" in str(info.value)


def test_sw3_table_is_complete() -> None:
    section_12 = {0x91, 0x10, 0x11, 0x21, 0x23, 0x24, 0x31, 0x32, 0x33, 0x37, 0x3F, 0x40, 0x41,
                  0x47, 0x60, 0x66, 0x80, 0x81}
    assert set(SW3_ERRORS) == section_12
    assert len({cls.__name__ for cls in SW3_ERRORS.values()}) == len(section_12)


def test_operator_messages() -> None:
    assert "put the ID card on the reader" in str(NoCard())
    assert "self-test" in str(SamSelfTestFailed())


def test_unlisted_sw3_is_a_status_error(scripted: object) -> None:
    with scripted(build_reply(0x55)) as reader, pytest.raises(ReaderStatusError) as info:  # type: ignore[operator]
        reader.sam_status()
    assert type(info.value) is ReaderStatusError and "0x55" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (H("AAAAAA9669 0004 0000 90 95"), "checksum 95, computed 94"),
        (H("AAAAAA9669 0002 0000"), "length field 2"),
        (H("AAAAAA9669 0FFF 0000"), "length field 4095"),
        (H("AAAAAA9669 0008 0000 90"), "truncated"),
        (build_reply(0x9F, b"\x00\x00"), "2 data bytes, expected 4"),
        (H("0102030405060708"), "no frame preamble"),
    ],
)
def test_malformed_replies_raise_frame_error(scripted: object, reply: bytes, words: str) -> None:
    with scripted(reply) as reader, pytest.raises(FrameError, match=words):  # type: ignore[operator]
        reader.find_card()


def test_read_card_declared_lengths_checked(scripted: object) -> None:
    text = SAMPLE_CARD.to_text_block()
    bad = build_reply(0x90, build_card_data(text, bytes(512)))  # photo length 0200, not 0400
    with scripted(bad) as reader, pytest.raises(FrameError, match=r"0100/0200, expected 0100/0400"):  # type: ignore[operator]
        reader.read_card()


def test_noise_before_reply_is_skipped(scripted: object) -> None:
    with scripted(H("00FF55") + build_reply(0x9F, bytes(4))) as reader:  # type: ignore[operator]
        assert reader.find_card() is True


def test_silence_is_reader_not_responding(scripted: object) -> None:
    with scripted() as reader, pytest.raises(ReaderNotResponding, match=r"within 0\.5 s"):  # type: ignore[operator]
        reader.find_card()
