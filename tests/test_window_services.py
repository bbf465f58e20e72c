"""Window services through the desk reader (pcscd + vpcd), the PSAM key service and the CMS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from cardstation.drivers.pcsc.transport import PcscTransport
from cardstation.personalization.cms import CmsClient
from cardstation.personalization.keys.scheme import Alg
from cardstation.personalization.keys.service import PsamKeyService
from cardstation.personalization.window import WindowError, WindowServices
from cardstation.simulators.card import Psam, make_card
from cardstation.simulators.cms.server import CmsSimulator
from tests.support.pcsc import DESK_READER, PSAM_READER

pytestmark = pytest.mark.pcscd
HOLDER = "11010519491231002X"


def pins(*sequence: str):
    """A PIN pad stand-in: answers each prompt with the next PIN (the pty pad has its own
    tests)."""
    answers = list(sequence)
    asked: list[str] = []

    def source(prompt: str) -> str:
        asked.append(prompt)
        return answers.pop(0)

    source.asked = asked  # type: ignore[attr-defined]
    return source


@pytest.fixture
def window(desk_slot, psam_slot) -> Iterator[tuple[WindowServices, object, CmsSimulator]]:
    psam_slot.insert(Psam(alg=Alg.SM4))
    cms = CmsSimulator(seed=1)
    cms.start()

    def open_psam() -> PcscTransport:
        transport = PcscTransport(PSAM_READER)
        transport.connect()
        return transport

    keys = PsamKeyService(open_psam)
    services = WindowServices(lambda: PcscTransport(DESK_READER), keys,
                              CmsClient(cms.base_url, "410700-W01"), "410700000001",
                              today=lambda: dt.date(2026, 11, 22))
    yield services, desk_slot, cms
    keys.close()
    cms.stop()


def test_read_a_formal_card_and_verify_a_returned_one(window) -> None:
    services, slot, _ = window
    slot.insert(make_card("personalised"))
    reading = services.read_card()
    assert reading.kind == "formal" and reading.generation == 3
    assert reading.info.id_number == HOLDER and reading.info.region == "410700"
    assert reading.info.terminal_number == "410700000001"
    assert reading.to_dict()["id_number"] == "110105********002X"
    assert services.verify_returned_card(HOLDER).info.card_number
    with pytest.raises(WindowError, match="does not belong") as info:
        services.verify_returned_card("11010519491231003X")
    assert info.value.reason == "WRONG_CARD"


def test_no_card_in_the_desk_reader(window) -> None:
    services, _, _ = window
    with pytest.raises(WindowError, match="insert the card") as info:
        services.read_card()
    assert info.value.reason == "NO_CARD"


def test_desk_reader_connections_are_given_back(window) -> None:
    """With a card and without one: each operation releases its PC/SC context (pcscd serves a
    client only 200)."""
    services, slot, _ = window
    opened: list[PcscTransport] = []

    def recording() -> PcscTransport:
        opened.append(PcscTransport(DESK_READER))
        return opened[-1]

    services.open_desk = recording
    with pytest.raises(WindowError):
        services.read_card()
    slot.insert(make_card("personalised"))
    services.read_card()
    assert len(opened) == 2
    assert all(t._card is None and not t._own_context for t in opened)


def test_pin_change_rules_countdown_lock_unblock_and_reset(window) -> None:
    services, slot, _ = window
    slot.insert(make_card("personalised"))
    services.verify_pin(pins("123456"))
    with pytest.raises(WindowError) as info:
        services.change_pin(pins("123456", "123456"))
    assert info.value.reason == "PIN_NOT_ALLOWED"
    with pytest.raises(WindowError) as info:
        services.change_pin(pins("123456", "802514", "802515"))
    assert info.value.reason == "PIN_MISMATCH"
    source = pins("123456", "802514", "802514")
    services.change_pin(source)
    assert source.asked == ["ENTER_PIN", "ENTER_NEW_PIN", "CONFIRM_NEW_PIN"]
    messages = []
    for _ in range(6):
        with pytest.raises(WindowError) as info:
            services.verify_pin(pins("000000"))
        messages.append((info.value.reason, str(info.value)))
    assert [m[0] for m in messages] == ["WRONG_PIN"] * 5 + ["PIN_LOCKED"]
    assert "5 tries left" in messages[0][1] and "1 tries left" in messages[4][1]
    with pytest.raises(WindowError) as info:
        services.verify_pin(pins("802514"))
    assert info.value.reason == "PIN_LOCKED"
    services.unblock_pin()  # tries restored, PIN unchanged
    services.verify_pin(pins("802514"))
    services.reset_pin(pins("470125", "470125"))  # without the old PIN
    services.verify_pin(pins("470125"))


def test_temporary_card_issue_refuse_second_rewrite_recall(window) -> None:
    services, slot, cms = window
    card = make_card("temporary")
    slot.insert(card)
    assert services.read_card().kind == "temporary"
    issued = services.issue_temporary(HOLDER, "李秀英", pins("246810", "246810"),
                                      agent_id="110105198001010016", agent_name="王二")
    assert (issued.valid_from, issued.valid_to) == ("20261122", "20270222")
    services.verify_pin(pins("246810"))  # the holder's own PIN
    reading = services.read_card()
    assert reading.info.id_number == HOLDER and reading.info.name == "李秀英"
    record = cms.ledger(photos=False)["temporary_cards"][issued.card_id_code]
    assert record["agent_name"] == "王二" and record["status"] == "issued"
    # a second temporary card for the same holder is refused while the first is out
    slot.remove()
    slot.insert(make_card("temporary", serial=0x30000099))
    with pytest.raises(WindowError, match="recall it") as info:
        services.issue_temporary(HOLDER, "李秀英", pins("246810", "246810"))
    assert info.value.reason == "TEMPORARY_CARD_OUTSTANDING"
    # back to the holder's card: rewrite the PIN, then recall it
    slot.remove()
    slot.insert(card)
    services.rewrite_temporary(pins("135790", "135790"))
    services.verify_pin(pins("135790"))
    recalled = services.recall_temporary()
    assert recalled.valid_to == "20261122"
    assert cms.ledger(photos=False)["temporary_cards"][issued.card_id_code]["status"] == \
        "recalled"
    assert services.read_card().info.expiry_date == "20261122"


def test_recall_of_an_unknown_card_and_formal_card_refused(window) -> None:
    services, slot, _ = window
    slot.insert(make_card("temporary", serial=0x30000077))
    with pytest.raises(WindowError) as info:
        services.recall_temporary()
    assert info.value.reason == "TEMPORARY_CARD_UNKNOWN"
    slot.remove()
    slot.insert(make_card("personalised"))
    with pytest.raises(WindowError) as info:
        services.issue_temporary(HOLDER, "李秀英", pins("246810", "246810"))
    assert info.value.reason == "NOT_TEMPORARY"
