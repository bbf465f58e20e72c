"""Printer models are adapters chosen by name: the HiTi CS-220e's, and a second, minimal
simulated model (tests/support/toy_printer) that makes a whole card through the unchanged
pipeline on the real PC/SC stack once its registry line is added."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cardstation import registries
from cardstation.config import ConfigError
from cardstation.personalization.journal import State
from cardstation.personalization.ports.printer import CardPrinter
from cardstation.personalization.printers.hiti import HitiCardPrinter
from cardstation.simulators.card import make_card
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from cardstation.simulators.station import CountingChip
from cardstation.station import build_station
from tests.support import toy_printer

pytestmark = pytest.mark.pcscd


@pytest.fixture
def toy_model() -> Iterator[None]:
    registries.register_printer_model(*toy_printer.REGISTRY_LINE)  # the one line
    yield
    registries.PRINTER_MODELS.pop(toy_printer.REGISTRY_LINE[0], None)
    toy_printer.DEVICES.clear()


def test_the_configured_model_is_built_from_the_registry(world) -> None:
    station = build_station(world.config())
    try:
        assert isinstance(station.printer, HitiCardPrinter)
        assert isinstance(station.printer, CardPrinter)  # the port, structurally
    finally:
        station.close()
    with pytest.raises(ConfigError, match=r"\[printer\] model 'evolis-primacy' is not known"):
        world.config(printer={"model": "evolis-primacy"})


def test_a_second_model_makes_a_card_through_the_same_pipeline(world, toy_model) -> None:
    chip = CountingChip(make_card("blank3", serial=0x30009001))
    device = toy_printer.ToyDevice(slot=world.encoder, feeder=[chip])
    toy_printer.DEVICES["lane-a"] = device
    station = build_station(world.config(printer={"model": "toy-card-printer",
                                                  "device": "toy://lane-a"}))
    try:
        assert isinstance(station.printer, toy_printer.ToyCardPrinter)
        issuance = station.pipeline.issue(EXAMPLE_ID_NUMBER)
        station.drain_returns(10)
        issuance = station.journal.get(issuance.id)
    finally:
        station.close()
    assert issuance.state is State.DONE, issuance.reason
    assert device.output == [chip] and len(device.printed) == 1 and not device.rejected
    assert max(chip.writes.values()) == 1  # the chip written once, by the unchanged pipeline
    (ret,) = [r for r in world.cms.ledger(photos=False)["returns"]
              if r["record"]["id_number"] == EXAMPLE_ID_NUMBER]
    assert ret["record"]["card_id_code"] == chip.card.card_identification_code.hex().upper()
    assert not world.model.print_log  # the HiTi simulator was never used


def test_a_second_models_fault_reaches_the_operator_in_the_domains_words(world,
                                                                         toy_model) -> None:
    toy_printer.DEVICES["empty"] = toy_printer.ToyDevice(slot=world.encoder)  # no blanks
    station = build_station(world.config(printer={"model": "toy-card-printer",
                                                  "device": "toy://empty"}))
    try:
        issuance = station.pipeline.issue(EXAMPLE_ID_NUMBER)
    finally:
        station.close()
    assert issuance.state is State.FAILED
    assert issuance.data["reason_code"] == "PRINTER_INPUT_EMPTY"
    assert "load blank cards" in issuance.data["remedy"]
