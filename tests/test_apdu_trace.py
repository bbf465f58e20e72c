"""The APDU trace masks by what an APDU addresses: the item, the application, the file."""

from __future__ import annotations

import logging

import pytest

from cardstation.drivers.pcsc.cardfiles import DEBIT_AID, ITEMS, PSAM_AID, SSSE_NAME
from cardstation.drivers.pcsc.transport import InProcessTransport
from cardstation.drivers.redaction import tag
from tests.support.fakecards import ScriptedCard

OK = b"\x90\x00"
ID_RECORD = b"\x08\x12" + b"11010519491231002X"
NAME_RECORD = b"\x09\x1e" + "李秀英".encode("gbk").ljust(30, b"\x00")
CARD_ID_RECORD = bytes.fromhex("0110410700D156000005CFFFEFFF13BAB3B0")
# the bank record whose track 2 glued the PAN into a 27-digit run in the old trace
BANK_RECORD = bytes.fromhex("702057136219991008053104646D3012201000000000000F9F1F0830303030")


def select(name: bytes) -> bytes:
    return bytes([0x00, 0xA4, 0x04, 0x00, len(name)]) + name


def select_ef(fid: int) -> bytes:
    return bytes([0x00, 0xA4, 0x02, 0x00, 0x02]) + fid.to_bytes(2, "big")


def read(item: str) -> bytes:
    i = ITEMS[item]
    return bytes([0x00, 0xB2, i.tag, i.sfi << 3, i.length + 2])


def run(script: list[tuple[bytes, bytes]], caplog: pytest.LogCaptureFixture,
        traced: set[int] | None = None) -> str:
    """Send `script` ({command: response} in order); only the steps in `traced` (all when
    None) at DEBUG. Returns the trace."""
    transport = InProcessTransport(ScriptedCard(dict(script)))
    transport.connect()
    apdu_log = logging.getLogger("cardstation.apdu")
    for n, (apdu, _) in enumerate(script):
        apdu_log.setLevel(logging.DEBUG if traced is None or n in traced else logging.INFO)
        with caplog.at_level(apdu_log.level, logger="cardstation.apdu"):
            transport.transmit(apdu)
    apdu_log.setLevel(logging.NOTSET)
    return caplog.text


def test_personal_items_are_masked_and_public_ones_shown(caplog) -> None:
    name_write = bytes([0x00, 0xDC, 0x09, 0x30, len(NAME_RECORD)]) + NAME_RECORD
    text = run([(select(SSSE_NAME), OK), (read("card_id_code"), CARD_ID_RECORD + OK),
                (read("id_number"), ID_RECORD + OK), (name_write, OK),
                (read("name"), NAME_RECORD + OK)], caplog)
    assert CARD_ID_RECORD.hex().upper() in text  # the card's identity is not a person's
    assert f"< <id_number 20 bytes #{tag(ID_RECORD)}> 9000" in text
    assert f"00DC0930 20 <name 32 bytes #{tag(NAME_RECORD)}>" in text
    assert f"< <name 32 bytes #{tag(NAME_RECORD)}> 9000" in text  # the read-back matches
    assert "C0EED0E3D3A2" not in text and "11010519491231002X" not in text


def test_every_bank_record_is_masked_whole(caplog) -> None:
    text = run([(select(DEBIT_AID), OK), (bytes.fromhex("00B2010C00"), BANK_RECORD + OK)],
               caplog)
    assert "6219991008053104646" not in text and "<bank record 31 bytes #" in text


def test_a_record_outside_a_known_application_is_masked(caplog) -> None:
    text = run([(read("card_id_code"), CARD_ID_RECORD + OK)], caplog)
    assert CARD_ID_RECORD.hex().upper() not in text and "<record 01 of SFI 05" in text


def test_binary_files_are_masked_unless_declared_public(caplog) -> None:
    secrets = bytes.fromhex("0120") + bytes(range(32))
    update = bytes([0x00, 0xD6, 0x00, 0x00, len(secrets)]) + secrets
    text = run([(select(SSSE_NAME), OK), (select_ef(0xEF13), OK), (update, OK),
                (select(PSAM_AID), OK), (select_ef(0x0016), OK),
                (bytes.fromhex("00B0000006"), bytes.fromhex("410700000001") + OK)], caplog)
    assert bytes(range(32)).hex().upper() not in text and "<EF EF13 34 bytes #" in text
    assert "< 410700000001 9000" in text  # the PSAM's terminal number names the station


def test_get_response_inherits_the_masking_of_the_command_it_completes(caplog) -> None:
    text = run([(select(SSSE_NAME), OK), (read("id_number"), b"\x61\x14"),
                (bytes.fromhex("00C0000014"), ID_RECORD + OK)], caplog)
    assert "11010519491231002X" not in text and "< <id_number 20 bytes #" in text


def test_the_selection_is_followed_while_the_trace_is_off(caplog) -> None:
    """DEBUG on at the PSAM's public file, off while the secrets EF is selected, on again for
    the write: the write is masked (a trace that only followed traced APDUs would show it)."""
    secrets = bytes(range(40))
    update = bytes([0x00, 0xD6, 0x00, 0x00, len(secrets)]) + secrets
    text = run([(select(PSAM_AID), OK), (select_ef(0x0016), OK), (select(SSSE_NAME), OK),
                (select_ef(0xEF13), OK), (update, OK)], caplog, traced={0, 1, 4})
    assert secrets.hex().upper() not in text and "<EF EF13 40 bytes #" in text


def test_after_a_refused_select_nothing_is_taken_as_public(caplog) -> None:
    """The PSAM refuses the SELECT of its terminal-number file: whatever EF is current then,
    the trace does not know it, so the read that follows is masked."""
    text = run([(select(PSAM_AID), OK), (select_ef(0x0016), b"\x6a\x82"),
                (bytes.fromhex("00B0000006"), bytes.fromhex("112233445566") + OK)], caplog)
    assert "112233445566" not in text and "<binary data 6 bytes #" in text


@pytest.mark.parametrize("apdu", [
    "0020000003123456",  # VERIFY
    "805E010007123456FF654321",  # SSC change PIN
    "805E000003654321",  # PIN reload
    "842400000811223344AABBCCDD",  # unblock with its MAC
    "002C000003123456",  # RESET RETRY COUNTER
    "BFDE4812181122334455667788AABBCCDDEEFF0011",  # PSAM diversify
    "80FA0000081122334455667788",  # PSAM encrypt
    "00D800000811223344AABBCCDD",  # PUT KEY
])
def test_pin_and_key_commands_show_no_data(apdu: str, caplog) -> None:
    command = bytes.fromhex(apdu)
    text = run([(command, OK)], caplog)
    assert command[5:].hex().upper() not in text and " bytes #" in text
    assert command[:4].hex().upper() in text  # which command it was stays visible
