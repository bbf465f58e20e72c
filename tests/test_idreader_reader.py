"""Ga467Reader against the simulated reader over a real pty: reads, faults, timeouts, logging."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator

import pytest

from cardstation.drivers.idreader import (
    CardAuthFailed,
    FrameError,
    Ga467Reader,
    IdCard,
    IdReaderError,
    NoCard,
    NoSuchItem,
    PortUnavailable,
    ReaderNotResponding,
    ReadFailed,
    SamNotAuthorized,
    SamSelfTestFailed,
)
from cardstation.drivers.idreader.card import TextBlock
from cardstation.simulators.idreader import SAMPLE_CARD, SAMPLE_ID_NUMBER, IdReaderSimulator
from cardstation.simulators.idreader.model import id_check_char, make_card

OTHER_ID = "44030619800229123"
OTHER_ID += id_check_char(OTHER_ID)  # generated, male (17th digit odd)


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


def test_read_card_end_to_end_decodes_every_field(reader: Ga467Reader) -> None:
    reader.reset_sam()
    reader.sam_status()
    assert reader.sam_id() == "05.01-20150101-0000123456-0000654321"
    card = reader.read_id_card()
    assert card.name == "李秀英"
    assert (card.sex, card.sex_label) == ("2", "女")
    assert (card.nation, card.nation_label) == ("01", "汉族")
    assert card.birth_date == "19491231"
    assert card.address == "北京市朝阳区示例路1号院2号楼3单元401室"
    assert card.id_number == SAMPLE_ID_NUMBER
    assert card.issuer == "北京市公安局朝阳分局"
    assert (card.valid_from, card.valid_to) == ("20150101", "长期")
    assert len(card.photo_wlt) == 1024 and card.photo_wlt == SAMPLE_CARD.photo_wlt
    assert card.fingerprint is None
    assert card == dataclasses.replace(SAMPLE_CARD, fingerprint=None)


def test_read_with_fingerprint(reader: Ga467Reader) -> None:
    reader.find_card()
    assert reader.select_card() == bytes(8)
    card = reader.read_card(with_fingerprint=True)
    assert card.fingerprint == SAMPLE_CARD.fingerprint and len(card.fingerprint or b"") == 1024


def test_text_block_layout() -> None:
    block = SAMPLE_CARD.to_text_block()
    assert len(block) == 256
    assert block[:6] == "李秀英".encode("utf-16-le")
    assert block[6:30] == " ".encode("utf-16-le") * 12  # name padded with spaces to 30 bytes
    assert block[30:32] == b"2\x00" and block[32:36] == "01".encode("utf-16-le")
    assert block[122:158] == SAMPLE_ID_NUMBER.encode("utf-16-le")  # 30+2+4+16+70 = 122
    assert block[220:256] == " ".encode("utf-16-le") * 18  # reserved
    parsed = TextBlock.parse(block)
    assert parsed.valid_to == "长期" and parsed.reserved == ""
    with pytest.raises(ValueError, match="does not fit"):
        dataclasses.replace(SAMPLE_CARD, name="一" * 16).to_text_block()


def test_repr_masks_id_number() -> None:
    for text in (repr(SAMPLE_CARD), str(SAMPLE_CARD), f"{SAMPLE_CARD}"):
        assert SAMPLE_ID_NUMBER not in text and "110105********002X" in text
    assert SAMPLE_CARD.to_dict()["id_number"] == "110105********002X"
    assert SAMPLE_CARD.to_dict(show_id=True)["id_number"] == SAMPLE_ID_NUMBER


def test_no_card(sim: IdReaderSimulator, reader: Ga467Reader) -> None:
    sim.inject("no_card")
    assert reader.find_card() is False
    with pytest.raises(NoCard, match="put the ID card on the reader"):
        reader.read_id_card()
    sim.clear_faults()
    assert reader.read_id_card().id_number == SAMPLE_ID_NUMBER


def test_card_placed_and_removed_between_reads(sim: IdReaderSimulator,
                                               reader: Ga467Reader) -> None:
    assert reader.read_id_card().name == "李秀英"
    sim.remove()
    with pytest.raises(NoCard, match="put the ID card on the reader"):
        reader.read_id_card()
    with pytest.raises(ReadFailed):  # reading without find/select after the card left
        reader.read_card()
    other = dataclasses.replace(make_card(OTHER_ID, name="王建国"), valid_from="20200301",
                                valid_to="20400301", nation="03")
    sim.place(other)
    card = reader.read_id_card()
    assert (card.name, card.sex, card.sex_label) == ("王建国", "1", "男")
    assert (card.nation, card.nation_label) == ("03", "回族")
    assert (card.birth_date, card.valid_from, card.valid_to) == ("19800229", "20200301",
                                                                 "20400301")
    assert card.id_number == OTHER_ID


def test_sam_failure(sim: IdReaderSimulator, reader: Ga467Reader) -> None:
    sim.inject("sam_failure")
    with pytest.raises(SamSelfTestFailed, match="self-test"):
        reader.sam_status()
    with pytest.raises(SamSelfTestFailed):
        reader.read_id_card()
    sim.clear_faults()
    reader.sam_status()


def test_sam_not_authorized(sim: IdReaderSimulator, reader: Ga467Reader) -> None:
    sim.inject("sam_not_authorized")
    with pytest.raises(SamNotAuthorized, match="not authorized"):
        reader.read_id_card()
    with pytest.raises(SamNotAuthorized):
        reader.sam_status()


def test_auth_and_read_failures(sim: IdReaderSimulator, reader: Ga467Reader) -> None:
    sim.inject("auth_fail")
    with pytest.raises(CardAuthFailed, match="authentication failed"):
        reader.read_id_card()
    sim.clear_faults()
    sim.inject("read_fail")
    with pytest.raises(ReadFailed, match="keep the ID card still"):
        reader.read_id_card()


def test_corrupt_reply_checksum_detected(sim: IdReaderSimulator, reader: Ga467Reader) -> None:
    sim.inject("corrupt_frame")
    with pytest.raises(FrameError, match="checksum 68, computed 97"):
        reader.find_card()
    assert reader.find_card() is True  # one reply only
    reader.select_card()
    sim.inject("corrupt_frame")
    with pytest.raises(FrameError, match="checksum"):
        reader.read_card()
    assert reader.read_card().name == "李秀英"


def test_appended_address(sim: IdReaderSimulator, reader: Ga467Reader) -> None:
    reader.read_id_card()
    with pytest.raises(NoSuchItem):
        reader.read_appended_address()


def test_set_baud(sim: IdReaderSimulator, reader: Ga467Reader) -> None:
    reader.set_baud(9600)
    assert (reader.baudrate, sim.baudrate) == (9600, 9600)
    assert reader.read_id_card().name == "李秀英"
    reader.set_baud(115200)
    assert (reader.baudrate, sim.baudrate) == (115200, 115200)
    with pytest.raises(ValueError, match="unsupported rate"):
        reader.set_baud(12345)


def test_timeout_when_reader_silent(sim: IdReaderSimulator) -> None:
    with Ga467Reader(sim.path or "", timeout=0.4) as reader:
        sim.inject("no_reply")
        t0 = time.monotonic()
        with pytest.raises(ReaderNotResponding, match="does not answer"):
            reader.find_card()
        assert 0.3 < time.monotonic() - t0 < 2.0
        sim.clear_faults()
        assert reader.find_card() is True


def test_simulator_stopped(sim: IdReaderSimulator) -> None:
    path = sim.path or ""
    with Ga467Reader(path, timeout=0.5) as reader:
        assert reader.find_card() is True
        sim.stop()
        with pytest.raises(ReaderNotResponding):
            reader.find_card()
        with pytest.raises(ReaderNotResponding):
            reader.read_id_card()
    with pytest.raises(PortUnavailable):
        Ga467Reader("/dev/nonexistent-idreader", timeout=0.5)


def test_full_id_number_never_logged(sim: IdReaderSimulator, reader: Ga467Reader,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[IdReaderError] = []
    cards: list[IdCard] = [reader.read_id_card(), reader.read_card(with_fingerprint=True)]
    for fault in ("no_card", "sam_failure", "corrupt_frame", "auth_fail", "read_fail",
                  "sam_not_authorized"):
        sim.inject(fault)
        try:
            cards.append(reader.read_id_card())
        except IdReaderError as exc:
            errors.append(exc)
        sim.clear_faults()
    logging.getLogger("test").info("card read: %r", cards[0])
    assert len(errors) == 6 and len(cards) == 2
    assert caplog.records, "the driver logs at DEBUG"
    ucs2_hex = SAMPLE_ID_NUMBER.encode("utf-16-le").hex()
    for record in caplog.records:
        raw = str(record.msg) % record.args if record.args else str(record.msg)
        for text in (raw, record.getMessage()):
            assert SAMPLE_ID_NUMBER not in text
            assert ucs2_hex not in text.lower().replace(" ", "")
    assert SAMPLE_ID_NUMBER not in caplog.text
    assert "110105********002X" in caplog.text  # the masked form is what gets logged
    for exc in errors:
        assert SAMPLE_ID_NUMBER not in str(exc) and SAMPLE_ID_NUMBER not in repr(exc)
