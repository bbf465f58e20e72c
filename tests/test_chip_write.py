"""What ChipSession.write reads and writes: a new card is written without reading the items
it overwrites, a card that already has the holder's ID number only where it differs, and a card
of another holder not at all (INS bytes: ISO 7816-4 READ RECORD B2, UPDATE RECORD DC)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cardstation.drivers.pcsc.transport import InProcessTransport
from cardstation.personalization.chip import ChipBelongsToAnotherHolder, ChipSession
from cardstation.personalization.keys.service import SoftwareKeyService
from cardstation.personalization.profiles import THIRD_GENERATION
from cardstation.simulators.card import make_card
from cardstation.simulators.cms.applicants import example_applicant

READ_RECORD, UPDATE_RECORD = 0xB2, 0xDC


def _session() -> tuple[ChipSession, list[int]]:
    transport = InProcessTransport(make_card("blank3"))
    transport.connect()
    sent: list[int] = []
    transport.observers.append(lambda apdu, _response: sent.append(apdu[1]))
    session = ChipSession(transport, SoftwareKeyService(test_keys_allowed=True))
    session.open()
    sent.clear()
    return session, sent


def test_a_new_card_is_written_whole_after_reading_only_its_id_number() -> None:
    session, sent = _session()
    app = example_applicant()
    values = THIRD_GENERATION.values(app)
    written = session.write(values, app.id_number)
    assert written[0] == "id_number" and sorted(written) == sorted(values)
    assert sent.count(READ_RECORD) == 1 and sent.count(UPDATE_RECORD) == len(values)
    assert session.blank
    assert session.verify(values) == values


def test_a_card_with_the_holders_id_number_is_written_only_where_it_differs() -> None:
    session, sent = _session()
    app = example_applicant()
    values = THIRD_GENERATION.values(app)
    session.write(values, app.id_number)
    # resumed after a crash: everything is read, nothing written twice
    sent.clear()
    assert session.write(values, app.id_number) == []
    assert sent.count(READ_RECORD) == len(values) and UPDATE_RECORD not in sent
    assert not session.blank
    # one item the card does not have yet
    changed = THIRD_GENERATION.values(replace(app, expiry_date="20361231"))
    sent.clear()
    assert session.write(changed, app.id_number) == ["expiry_date"]
    assert sent.count(UPDATE_RECORD) == 1


def test_a_card_of_another_holder_is_refused_before_anything_is_written() -> None:
    session, sent = _session()
    app = example_applicant()
    session.write(THIRD_GENERATION.values(app), app.id_number)
    other = replace(app, id_number="11010519491231003X")
    sent.clear()
    with pytest.raises(ChipBelongsToAnotherHolder):
        session.write(THIRD_GENERATION.values(other), other.id_number)
    assert UPDATE_RECORD not in sent


SELECT, EXTERNAL_AUTH = 0xA4, 0x82


def test_a_card_is_written_and_verified_with_one_select_and_each_key_presented_once() -> None:
    """Field personalization selects the SSSE and presents a key once for all its records
    (ssc-chip.md section 13: the key holds until the SSSE is selected again)."""
    session, sent = _session()
    app = example_applicant()
    values = THIRD_GENERATION.values(app)
    session.write(values, app.id_number)
    assert session.verify(values) == values
    assert sent.count(SELECT) == 0  # open() selected the SSSE; nothing left it since
    assert sent.count(EXTERNAL_AUTH) == 2  # the read key, then the write key


def test_a_card_that_forgets_a_presented_key_gets_it_again_and_the_step_goes_on() -> None:
    card = make_card("blank3")
    transport = InProcessTransport(card)
    transport.connect()
    session = ChipSession(transport, SoftwareKeyService(test_keys_allowed=True))
    session.open()
    app = example_applicant()
    values = THIRD_GENERATION.values(app)
    session.write(values, app.id_number)
    card.security.clear()  # a card OS that drops its security state on its own
    sent: list[int] = []
    transport.observers.append(lambda apdu, _response: sent.append(apdu[1]))
    assert session.verify(values) == values  # refused once (6982), then selected and read
    assert sent.count(SELECT) == 1 and sent.count(EXTERNAL_AUTH) == 1


def test_leaving_the_ssse_means_selecting_it_and_presenting_keys_again() -> None:
    session, sent = _session()
    app = example_applicant()
    values = THIRD_GENERATION.values(app)
    session.write(values, app.id_number)
    session.read_pan()  # the bank application: outside the SSSE
    sent.clear()
    assert session.verify(values) == values
    assert sent.count(SELECT) == 1 and sent.count(EXTERNAL_AUTH) == 1
