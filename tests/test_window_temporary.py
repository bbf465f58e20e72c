"""Temporary cards abandoned midway, over the desk reader (pcscd + vpcd), the PSAM, the CMS
simulator and the pty PIN pad: nothing is left half done without a name.

- PIN entry cancelled, timed out or mistyped -> nothing on the chip, nothing at the CMS;
- the CMS refusing (or not answering) the record -> nothing on the chip;
- the card pulled between two writes, or the key module failing -> the CMS record is withdrawn
  (TEMPORARY_ISSUE_ROLLED_BACK), and issuing the same card again finishes the job;
- withdrawing fails too -> TEMPORARY_ISSUE_INCOMPLETE, and the operator can finish it;
- a recall cut short -> TEMPORARY_RECALL_INCOMPLETE, and recalling again finishes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cardstation.drivers.pcsc.readers import PcscContext
from cardstation.drivers.pcsc.transport import PcscTransport
from cardstation.drivers.pinpad.pinblock import TEST_PINPAD_KEK
from cardstation.drivers.pinpad.pinpad import PinPad
from cardstation.personalization import window as w
from cardstation.personalization.cms import CmsClient
from cardstation.personalization.keys.scheme import Alg
from cardstation.personalization.keys.service import KeyServiceError, PsamKeyService
from cardstation.personalization.pinentry import PinPadEntry
from cardstation.personalization.window import WindowError, WindowServices
from cardstation.simulators.card import Psam, make_card
from cardstation.simulators.cms.server import CmsSimulator
from cardstation.simulators.pinpad import PinPadSimulator
from cardstation.simulators.vpcd.nochip import NoChipUnderContacts
from tests.support.pcsc import DESK_READER, PSAM_READER

pytestmark = pytest.mark.pcscd
HOLDER = "11010519491231002X"
OTHER = "110105198001010016"
NAME = "李秀英"
UPDATE_RECORD = 0xDC
READ_RECORD = 0xB2
EXTERNAL_AUTH = 0x82


@dataclass
class Rig:
    services: WindowServices
    slot: object
    cms: CmsSimulator
    pad: PinPadSimulator
    pins: PinPadEntry
    keys: PsamKeyService

    def temporary(self, code: str) -> dict | None:
        return self.cms.ledger(photos=False)["temporary_cards"].get(code)

    def type(self, *entries: str) -> None:
        script: list[str] = []
        for entry in entries:
            script += [entry, "ENTER"]
        self.pad.script(script)


@pytest.fixture
def rig(desk_slot, psam_slot) -> Iterator[Rig]:
    psam_slot.insert(Psam(alg=Alg.SM4))
    cms = CmsSimulator(seed=1)
    cms.start()

    def open_psam() -> PcscTransport:
        transport = PcscTransport(PSAM_READER)
        transport.connect()
        return transport

    keys = PsamKeyService(open_psam)
    pad = PinPadSimulator()
    pad_path = pad.start()
    entry = PinPadEntry(PinPad(pad_path), TEST_PINPAD_KEK, timeout_s=1)
    services = WindowServices(lambda: PcscTransport(DESK_READER), keys,
                              CmsClient(cms.base_url, "410700-W01"), "410700000001",
                              today=lambda: dt.date(2026, 11, 22))
    yield Rig(services, desk_slot, cms, pad, entry, keys)
    entry.close()
    entry.pad.close()
    pad.stop()
    keys.close()
    cms.stop()


def holder_on_chip(rig: Rig) -> str:
    return rig.services.read_card().info.id_number


def code_of(card) -> str:
    return card.card_identification_code.hex().upper()


def is_first_write(command: bytes) -> bool:
    return command[1] == UPDATE_RECORD


def is_pin_reload_auth(command: bytes) -> bool:
    return command[1] == EXTERNAL_AUTH and command[3] == 0x06


def pull_card_at_first_write(rig: Rig, then=None, when=is_first_write) -> None:
    """The operator pulls the card out right after the chip accepted the first command `when`
    picks (by default its first write)."""
    def open_desk() -> PcscTransport:
        transport = PcscTransport(DESK_READER)

        def observe(command: bytes, response: bytes) -> None:
            if len(command) > 3 and when(command) and response[-2:] == b"\x90\x00":
                transport.observers.clear()
                rig.slot.remove()  # waits until pcscd has seen the card go
                if then is not None:
                    then()

        transport.observers.append(observe)
        return transport

    rig.services.open_desk = open_desk


def put_back(rig: Rig, card) -> None:
    rig.services.open_desk = lambda: PcscTransport(DESK_READER)
    rig.slot.insert(card)


def test_pin_entry_cancelled_timed_out_or_mistyped_leaves_nothing(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(card)
    rig.pad.script(["CANCEL"])
    with pytest.raises(WindowError) as info:
        rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    assert info.value.reason == w.PIN_ENTRY_CANCELLED
    assert "nothing was written" in str(info.value) and info.value.remedy
    with pytest.raises(WindowError) as info:  # nobody types: the pad times out
        rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    assert info.value.reason == w.PIN_ENTRY_TIMEOUT
    rig.type("246810", "246811")
    with pytest.raises(WindowError) as info:
        rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    assert info.value.reason == w.PIN_MISMATCH
    rig.type("246810")
    rig.pad.script(["CANCEL"])  # cancelled at the confirmation
    with pytest.raises(WindowError) as info:
        rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    assert info.value.reason == w.PIN_ENTRY_CANCELLED
    assert holder_on_chip(rig) == ""
    assert rig.temporary(code_of(card)) is None
    # and the card is still good for the holder
    rig.type("246810", "246810")
    issued = rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    assert holder_on_chip(rig) == HOLDER and rig.temporary(issued.card_id_code)["status"] == \
        "issued"


def test_cms_refusing_or_not_answering_the_record_writes_nothing(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(card)
    rival = CmsClient(rig.cms.base_url, "410700-W02")
    real_pins = rig.pins

    def pins_while_another_station_issues(prompt: str) -> str:
        # another window issues a card to the same holder while this holder types
        if prompt == "CONFIRM_NEW_PIN":
            rival.record_temporary_card("0" * 32, HOLDER, NAME, "20261122", "20270222")
        return real_pins(prompt)

    rig.type("246810", "246810")
    with pytest.raises(WindowError) as info:
        rig.services.issue_temporary(HOLDER, NAME, pins_while_another_station_issues)
    assert info.value.reason == w.TEMPORARY_CARD_OUTSTANDING
    assert "nothing was written" in info.value.cause and "收回" in info.value.remedy
    assert holder_on_chip(rig) == "" and rig.temporary(code_of(card)) is None
    # the CMS does not answer the record: unconfirmed, nothing written
    other_card = make_card("temporary", serial=0x30000055)
    rig.slot.remove()
    rig.slot.insert(other_card)
    rig.type("246810", "246810")

    def cms_goes_down(prompt: str) -> str:
        pin = real_pins(prompt)
        if prompt == "CONFIRM_NEW_PIN":
            rig.cms.inject("error_5xx", status=503)
        return pin

    with pytest.raises(WindowError) as info:
        rig.services.issue_temporary(OTHER, "王二", cms_goes_down)
    assert info.value.reason == w.TEMPORARY_ISSUE_UNCONFIRMED
    assert "nothing was written" in info.value.cause
    rig.cms.clear_faults()
    assert holder_on_chip(rig) == ""
    # the remedy: issue the same card again once the CMS answers
    rig.type("135790", "135790")
    rig.services.issue_temporary(OTHER, "王二", rig.pins)
    assert holder_on_chip(rig) == OTHER


def test_card_pulled_mid_write_voids_the_record_and_issuing_again_finishes(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(card)
    pull_card_at_first_write(rig)
    rig.type("246810", "246810")
    with pytest.raises(WindowError) as info:
        rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    error = info.value
    assert error.reason == w.TEMPORARY_ISSUE_ROLLED_BACK
    assert "left the desk reader" in error.cause and "withdrawn" in error.cause
    assert "issue it again to the same holder" in error.remedy
    record = rig.temporary(code_of(card))
    assert record["status"] == "voided"
    # another card for the holder is no longer refused as outstanding; nor is this one
    put_back(rig, card)
    assert rig.services.cms.check_temporary_card(code_of(card), HOLDER) is False
    rig.type("246810", "246810")
    issued = rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    assert rig.temporary(issued.card_id_code)["status"] == "issued"
    rig.type("246810")
    rig.services.verify_pin(rig.pins)
    assert rig.services.read_card().info.name == NAME


def test_rollback_failing_leaves_a_named_state_the_operator_finishes(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(card)
    pull_card_at_first_write(rig, then=lambda: rig.cms.inject("down"))
    rig.type("246810", "246810")
    with pytest.raises(WindowError) as info:
        rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    error = info.value
    assert error.reason == w.TEMPORARY_ISSUE_INCOMPLETE
    assert "withdrawing the CMS record failed" in error.cause
    assert "recall it (收回)" in error.remedy and "issue it again" in error.remedy
    assert HOLDER not in str(error)  # masked
    rig.cms.clear_faults()
    assert rig.temporary(code_of(card))["status"] == "issued"
    # finish it by recalling the card: the record is closed, the chip's validity ends today
    put_back(rig, card)
    recalled = rig.services.recall_temporary()
    assert recalled.valid_to == "20261122"
    assert rig.temporary(code_of(card))["status"] == "recalled"


def test_a_reissue_cut_short_keeps_the_earlier_record_and_says_how_to_finish(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(card)
    rig.type("246810", "246810")
    assert rig.services.issue_temporary(HOLDER, NAME, rig.pins).rewritten is False
    pull_card_at_first_write(rig, when=is_pin_reload_auth)  # the same data: only the PIN
    rig.type("135790", "135790")
    with pytest.raises(WindowError) as info:
        rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    assert info.value.reason == w.TEMPORARY_ISSUE_INCOMPLETE
    assert "it was before" in info.value.cause and "issue it again" in info.value.remedy
    assert rig.temporary(code_of(card))["status"] == "issued"  # the earlier issue stands
    put_back(rig, card)
    rig.type("135790", "135790")
    assert rig.services.issue_temporary(HOLDER, NAME, rig.pins).rewritten is True
    rig.type("135790")
    rig.services.verify_pin(rig.pins)


def test_key_module_failing_after_the_record_is_rolled_back(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(card)
    real = rig.keys.external_auth

    def refuse_pin_reload_key(key_id: int, *args, **kwargs):
        if key_id == 0x06:
            raise KeyServiceError("the PSAM has no key for key id 06")
        return real(key_id, *args, **kwargs)

    rig.keys.external_auth = refuse_pin_reload_key  # type: ignore[method-assign]
    rig.type("246810", "246810")
    with pytest.raises(WindowError) as info:
        rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    assert info.value.reason == w.TEMPORARY_ISSUE_ROLLED_BACK
    assert "key module" in info.value.cause
    assert rig.temporary(code_of(card))["status"] == "voided"


class DamagedChip:
    """A card whose chip memory fails (SW 6581) on every command `ins` (UPDATE RECORD)."""

    def __init__(self, card, ins: int = UPDATE_RECORD) -> None:
        self.card, self.ins = card, ins
        self.atr = card.atr

    def power_on(self) -> bytes:
        return self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def reset(self) -> bytes:
        return self.card.reset()

    def process_apdu(self, apdu: bytes) -> bytes:
        if len(apdu) > 1 and apdu[1] == self.ins:
            return b"\x65\x81"
        return self.card.process_apdu(apdu)


def test_damaged_chip_rolls_back_and_says_use_another_card(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(DamagedChip(card))
    rig.type("246810", "246810")
    with pytest.raises(WindowError) as info:
        rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    assert info.value.reason == w.TEMPORARY_ISSUE_ROLLED_BACK
    assert "memory failure (SW 6581)" in info.value.cause
    assert "chip is damaged" in info.value.remedy and "new temporary card" in info.value.remedy
    assert rig.temporary(code_of(card))["status"] == "voided"


def test_rewrite_takes_the_pin_first_and_refuses_a_card_not_issued(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(card)
    with pytest.raises(WindowError) as info:  # never issued: the CMS does not know it
        rig.services.rewrite_temporary(rig.pins)
    assert info.value.reason == w.TEMPORARY_CARD_UNKNOWN
    rig.type("246810", "246810")
    rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    rig.pad.script(["CANCEL"])
    with pytest.raises(WindowError) as info:
        rig.services.rewrite_temporary(rig.pins)
    assert info.value.reason == w.PIN_ENTRY_CANCELLED and "PIN was not changed" in \
        info.value.cause
    rig.type("246810")
    rig.services.verify_pin(rig.pins)  # unchanged
    rig.services.recall_temporary()
    with pytest.raises(WindowError) as info:
        rig.services.rewrite_temporary(rig.pins)
    assert info.value.reason == w.TEMPORARY_CARD_NOT_ISSUED


def test_rewrite_cut_short_says_so_and_rewriting_again_finishes(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(card)
    rig.type("246810", "246810")
    rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    pull_card_at_first_write(rig, when=is_pin_reload_auth)
    rig.type("135790", "135790")
    with pytest.raises(WindowError) as info:
        rig.services.rewrite_temporary(rig.pins)
    assert info.value.reason == w.CARD_REMOVED
    assert "may or may not have changed" in info.value.cause
    assert "rewrite it again" in info.value.remedy
    put_back(rig, card)
    rig.type("246810")
    rig.services.verify_pin(rig.pins)  # the reload never reached the card
    rig.type("135790", "135790")
    rig.services.rewrite_temporary(rig.pins)
    rig.type("135790")
    rig.services.verify_pin(rig.pins)


def test_recall_cut_short_is_finished_by_recalling_again(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(card)
    rig.type("246810", "246810")
    rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    cms_recall = rig.services.cms.recall_temporary_card

    def recall_then_pull(code: str) -> None:
        cms_recall(code)
        rig.slot.remove()  # pulled before the chip's end of validity is written

    rig.services.cms.recall_temporary_card = recall_then_pull  # type: ignore[method-assign]
    with pytest.raises(WindowError) as info:
        rig.services.recall_temporary()
    assert info.value.reason == w.TEMPORARY_RECALL_INCOMPLETE
    assert "recall it again" in info.value.remedy
    assert rig.temporary(code_of(card))["status"] == "recalled"
    put_back(rig, card)
    rig.services.cms.recall_temporary_card = cms_recall  # type: ignore[method-assign]
    assert rig.services.read_card().info.expiry_date == "20270222"
    rig.services.recall_temporary()
    assert rig.services.read_card().info.expiry_date == "20261122"


def test_recall_refuses_a_card_whose_chip_and_record_disagree(rig: Rig) -> None:
    card = make_card("temporary")
    rig.slot.insert(card)
    rig.type("246810", "246810")
    issued = rig.services.issue_temporary(HOLDER, NAME, rig.pins)
    cms = rig.services.cms
    cms.void_temporary_card(issued.card_id_code, HOLDER)  # the CMS now records it for OTHER
    cms.record_temporary_card(issued.card_id_code, OTHER, "王二", "20261122", "20270222")
    with pytest.raises(WindowError) as info:
        rig.services.recall_temporary()
    assert info.value.reason == w.TEMPORARY_CARD_MISMATCH
    assert rig.temporary(issued.card_id_code)["status"] == "issued"  # nothing recalled
    assert rig.services.read_card().info.expiry_date == "20270222"


# -- the desk reader's own faults name their cause ---------------------------------------------

class RefusingPsam(DamagedChip):
    """A PSAM that refuses to diversify keys (SW 6982): a PSAM of another city, say."""

    def process_apdu(self, apdu: bytes) -> bytes:
        if len(apdu) > 1 and apdu[1] == 0xDE:
            return b"\x69\x82"
        return self.card.process_apdu(apdu)


def test_a_refusing_key_module_is_not_blamed_on_the_card(rig: Rig, psam_slot) -> None:
    psam_slot.remove()
    psam_slot.insert(RefusingPsam(Psam(alg=Alg.SM4)))
    rig.keys.close()
    rig.slot.insert(make_card("personalised"))
    with pytest.raises(WindowError) as info:
        rig.services.read_card()  # a 3rd-generation card needs the read key
    assert info.value.reason == w.KEY_SERVICE
    assert "key module (PSAM)" in info.value.cause and "SW 6982" in info.value.cause

def test_dirty_or_wrong_way_card_at_the_desk_is_not_no_card(rig: Rig) -> None:
    rig.slot.insert(NoChipUnderContacts())
    with pytest.raises(WindowError) as info:
        rig.services.read_card()
    error = info.value
    assert error.reason == w.CARD_UNREADABLE
    assert "wrong way" in error.cause and "dirty" in error.cause
    assert "wipe the chip contacts" in error.remedy


def test_unplugged_desk_reader_names_its_cable(rig: Rig) -> None:
    def lookup(pattern: str):
        def open_desk() -> PcscTransport:
            with PcscContext() as pcsc:
                return PcscTransport(pcsc.find_reader(pattern))
        return open_desk

    for open_desk in (lookup("OMNIKEY 3121"), lambda: PcscTransport("Virtual PCD Desk 09 09")):
        rig.services.open_desk = open_desk
        with pytest.raises(WindowError) as info:
            rig.services.read_card()
        assert info.value.reason == w.DESK_READER_UNAVAILABLE
        assert "desk reader's USB cable" in info.value.remedy
        assert "no card" not in str(info.value).lower()


def test_no_card_says_insert_it_and_names_the_cable(rig: Rig) -> None:
    with pytest.raises(WindowError) as info:
        rig.services.read_card()
    assert info.value.reason == w.NO_CARD
    assert "chip first" in info.value.remedy and "USB cable" in info.value.remedy


def test_damaged_chip_at_the_desk_says_the_chip_is_damaged(rig: Rig) -> None:
    rig.slot.insert(DamagedChip(make_card("personalised"), ins=READ_RECORD))
    with pytest.raises(WindowError) as info:
        rig.services.read_card()
    assert info.value.reason == w.CARD_DAMAGED
    assert "memory failure (SW 6581)" in info.value.cause
    assert "chip is damaged" in info.value.remedy
