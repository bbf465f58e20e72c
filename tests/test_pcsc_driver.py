"""The pyscard driver through the real pcscd + vpcd stack, with scripted cards."""

from __future__ import annotations

import logging
import threading

import pytest

from cardstation.drivers.pcsc.atr import historical_bytes, protocols_from_atr
from cardstation.drivers.pcsc.errors import (
    CardRemoved,
    CardWaitTimeout,
    NoCard,
    ReaderNotFound,
    ReaderUnavailable,
    RecordNotFound,
    SecurityNotSatisfied,
    UnresponsiveCard,
    VerificationFailed,
)
from cardstation.drivers.pcsc.transport import InProcessTransport, PcscTransport
from cardstation.simulators.vpcd.nochip import NoChipUnderContacts
from tests.support.fakecards import SSC_ATR, ScriptedCard
from tests.support.pcsc import ENCODER_READER, restart_pcscd

pytestmark = pytest.mark.pcscd

SELECT_SSSE = bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
FCI = bytes.fromhex("6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C03860103")


def t0_script() -> dict[bytes, bytes]:
    return {
        SELECT_SSSE: b"\x61" + bytes([len(FCI)]),
        bytes.fromhex("00C00000") + bytes([len(FCI)]): FCI + b"\x90\x00",
        bytes.fromhex("00B2012C00"): b"\x6c\x12",
        bytes.fromhex("00B2012C12"): bytes.fromhex("0110410700D15600000512345678ABCDEF01")
        + b"\x90\x00",
        bytes.fromhex("00B2092C12"): b"\x6a\x83",
        bytes.fromhex("00B2013412"): b"\x69\x82",
        bytes.fromhex("0020000003123457"): b"\x63\xc4",
    }


def test_atr_parsing() -> None:
    assert protocols_from_atr(SSC_ATR) == {0}
    assert historical_bytes(SSC_ATR) == bytes.fromhex("008154443686605328A8888888")
    assert protocols_from_atr(bytes.fromhex("3B818131FE450031")) == {1}  # TD1=81: T=1 only
    assert protocols_from_atr(bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")) == {0, 1}
    with pytest.raises(ValueError, match="TS byte"):
        protocols_from_atr(b"\x00\x00")


def test_reader_discovery_by_name_and_regex(pcsc_context) -> None:
    names = pcsc_context.readers()
    assert ENCODER_READER in names
    assert pcsc_context.find_reader(ENCODER_READER) == ENCODER_READER
    assert pcsc_context.find_reader(r"Desk.*00 00$") == "Virtual PCD Desk 00 00"
    with pytest.raises(ReaderNotFound, match=r"connected readers: .*Virtual PCD 00 00"):
        pcsc_context.find_reader("OMNIKEY")
    with pytest.raises(ReaderNotFound, match="not a valid regex"):
        pcsc_context.find_reader("([")


def test_t0_get_response_and_6c_reissue_over_pcscd(encoder_slot) -> None:
    card = ScriptedCard(t0_script())
    encoder_slot.insert(card)
    wire: list[tuple[bytes, bytes]] = []
    with PcscTransport(ENCODER_READER) as t:
        t.observers.append(lambda c, r: wire.append((c, r)))
        assert t.atr == SSC_ATR
        assert t.protocol == "T=0"
        assert t.transmit(SELECT_SSSE) == (FCI, 0x9000)
        data, sw = t.transmit(bytes.fromhex("00B2012C00"))
        assert sw == 0x9000 and data[:2] == b"\x01\x10"
    # exactly one GET RESPONSE and one re-issue, byte for byte
    assert [c.hex().upper() for c, _ in wire] == [
        SELECT_SSSE.hex().upper(),
        "00C000001B",
        "00B2012C00",
        "00B2012C12",
    ]


def test_status_words_become_typed_errors(encoder_slot) -> None:
    encoder_slot.insert(ScriptedCard(t0_script()))
    with PcscTransport(ENCODER_READER) as t:
        with pytest.raises(RecordNotFound, match="6A83"):
            t.command(bytes.fromhex("00B2092C12"), "read")
        with pytest.raises(SecurityNotSatisfied, match="security status not satisfied"):
            t.command(bytes.fromhex("00B2013412"))
        with pytest.raises(VerificationFailed) as info:
            t.command(bytes.fromhex("0020000003123457"))
        assert info.value.tries_left == 4


def test_no_card_and_wrong_way_card(encoder_slot) -> None:
    with pytest.raises(NoCard, match="no card"):
        PcscTransport(ENCODER_READER).connect()
    encoder_slot.insert(NoChipUnderContacts())
    with pytest.raises(UnresponsiveCard, match="wrong way") as info:
        PcscTransport(ENCODER_READER).connect()
    assert info.value.code in (0x80100066, 0x80100067)


def test_insert_and_remove_detection(encoder_slot, pcsc_context) -> None:
    with pytest.raises(CardWaitTimeout):
        pcsc_context.wait_for_card(ENCODER_READER, timeout=0.3)
    timer = threading.Timer(0.3, encoder_slot.insert, args=(ScriptedCard({}),),
                            kwargs={"wait": False})
    timer.start()
    atr = pcsc_context.wait_for_card(ENCODER_READER, timeout=5)
    assert atr == SSC_ATR
    threading.Timer(0.3, encoder_slot.remove, kwargs={"wait": False}).start()
    pcsc_context.wait_for_removal(ENCODER_READER, timeout=5)
    assert not pcsc_context.card_present(ENCODER_READER)


def test_card_removed_mid_command(encoder_slot) -> None:
    card = ScriptedCard(t0_script())
    encoder_slot.insert(card)
    t = PcscTransport(ENCODER_READER)
    t.connect()
    encoder_slot.remove()
    with pytest.raises(CardRemoved, match="removed"):
        t.transmit(SELECT_SSSE)
    t.close()


def test_vpcd_link_reconnects_after_pcscd_restart(encoder_slot, pcsc_context) -> None:
    from cardstation.drivers.pcsc.readers import PcscContext

    encoder_slot.insert(ScriptedCard(t0_script()))
    restart_pcscd()

    with PcscContext() as ctx:
        ctx.wait_for_card(ENCODER_READER, timeout=10)
    with PcscTransport(ENCODER_READER) as t:
        assert t.transmit(SELECT_SSSE)[1] == 0x9000
    # the fixture's context died with the old daemon: give the slot a live one for teardown
    encoder_slot.context = PcscContext()


def test_in_process_transport_same_t0_handling() -> None:
    t = InProcessTransport(ScriptedCard(t0_script()))
    t.connect()
    assert t.transmit(SELECT_SSSE) == (FCI, 0x9000)
    assert t.transmit(bytes.fromhex("00B2012C00"))[1] == 0x9000
    with pytest.raises(NoCard):
        InProcessTransport(None).connect()


def test_trace_masks_pins_cryptograms_and_id_numbers(caplog) -> None:
    id_record = b"\x08\x12" + b"11010519491231002X"
    script = {
        bytes.fromhex("0020000003123456"): b"\x90\x00",
        bytes.fromhex("008200041011223344556677880102030405060708"): b"\x90\x00",
        bytes.fromhex("00B2083012"): id_record + b"\x90\x00",
        bytes.fromhex("00B2011400"): bytes.fromhex("70125A0A6228230029000005274F5F2403301231")
        + b"\x90\x00",
    }
    t = InProcessTransport(ScriptedCard(script))
    t.connect()
    with caplog.at_level(logging.DEBUG, logger="cardstation.apdu"):
        for apdu in script:
            t.transmit(apdu)
    text = caplog.text
    assert "123456" not in text
    assert "1122334455667788" not in text
    assert "11010519491231002X" not in text
    assert id_record.hex().upper()[4:] not in text
    assert "6228230029000005274" not in text
    assert "00200000 03 <PIN data 3 bytes #" in text
    assert "00820004 10 <key data 16 bytes #" in text


def test_wait_timeouts_name_the_reader_cable_not_a_missing_card(encoder_slot, pcsc_context) -> None:
    """An unplugged encoder looks like an empty reader: the timeout must say check the cable."""
    with pytest.raises(CardWaitTimeout) as info:
        pcsc_context.wait_for_card(ENCODER_READER, timeout=0.2)
    text = str(info.value)
    assert "no card was inserted" not in text
    assert "USB cable" in text and "second" in text and info.value.remedy
    encoder_slot.insert(ScriptedCard({}))
    with pytest.raises(CardWaitTimeout) as info:
        pcsc_context.wait_for_removal(ENCODER_READER, timeout=0.2)
    assert "still reports a card" in info.value.cause and "eject" in info.value.remedy
    with pytest.raises(ReaderUnavailable) as info:  # a reader PC/SC does not know (unplugged)
        pcsc_context.wait_for_card("Virtual PCD 09 09", timeout=0.2)
    assert "unplugged" in info.value.cause and "USB cable" in info.value.remedy
