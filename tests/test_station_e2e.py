"""Whole simulated station: printer simulator coupled to the encoder's vpcd slot, real pcscd."""

from __future__ import annotations

import contextlib
import json

import pytest

from cardstation.drivers.hiti import Printer
from cardstation.drivers.pcsc.errors import UnresponsiveCard
from cardstation.drivers.pcsc.transport import PcscTransport
from cardstation.simulators.card import make_card
from cardstation.simulators.coupling import EncoderCoupler
from cardstation.simulators.printer.model import PrinterModel
from cardstation.simulators.printer.server import PrinterSimServer
from tests.support.pcsc import ENCODER_READER

pytestmark = pytest.mark.pcscd


def test_demo_makes_a_card_and_the_cms_has_its_return(pcscd, tmp_path, capsys) -> None:
    from cardstation.demo import run_demo

    assert run_demo(str(tmp_path), "11010519491231002X", speed=0.0) == 0
    out = capsys.readouterr().out
    states = [line.split("]")[1].split()[0] for line in out.splitlines()
              if line.startswith("[")]
    assert states == ["FETCHED", "PREVIEWED", "FED", "CHIP_WRITTEN", "VERIFIED",
                      "RETURN_QUEUED", "PRINTED", "EJECTED", "DONE"]
    assert "application fetched" in out
    summary = json.loads(out[out.index("{"):])
    chip = make_card("blank3", serial=0x30001000)  # the blank the demo loads
    record = summary["cms_ledger_return"]
    assert record["card_id_code"] == chip.card_identification_code.hex().upper()
    assert record["atr"] == chip.atr.hex().upper()
    assert record["bank_account"].endswith(chip.pan[-4:])
    assert len([p for p in summary["printed"] if p.endswith("-front.png")]) == 1
    assert "11010519491231002X" not in out  # the operator's screen shows it masked


@contextlib.contextmanager
def coupled_printer(slot, orientation: str, chip):
    """A printer simulator whose contact station feeds `slot`, one card loaded."""
    model = PrinterModel(speed=0)
    coupler = EncoderCoupler(model, slot.link)
    model.load_card(orientation, chip=chip)
    server = PrinterSimServer(model).start()
    printer = Printer.open(server.url, poll_interval=0.01)
    try:
        yield model, coupler, printer
    finally:
        printer.close()
        server.close()


@pytest.mark.parametrize("orientation", ["chip_far_end", "face_down"])
def test_wrong_way_card_reports_chip_power_on_failure(encoder_slot, orientation) -> None:
    with coupled_printer(encoder_slot, orientation, make_card("blank3")) as (model, _, printer):
        printer.move_to_contact()
        encoder_slot.context.wait_for_card(ENCODER_READER, timeout=5)
        with pytest.raises(UnresponsiveCard, match="wrong way"):
            PcscTransport(ENCODER_READER).connect()
        printer.reject()
        encoder_slot.context.wait_for_removal(ENCODER_READER, timeout=5)
        assert len(model.reject_box) == 1


def test_right_way_card_chip_follows_the_card(encoder_slot) -> None:
    chip = make_card("blank3")
    with coupled_printer(encoder_slot, "right_way", chip) as (model, _, printer):
        printer.move_to_contact()
        atr = encoder_slot.context.wait_for_card(ENCODER_READER, timeout=5)
        assert atr == chip.atr
        printer.eject()
        encoder_slot.context.wait_for_removal(ENCODER_READER, timeout=5)
        assert len(model.output_hopper) == 1


def test_encoder_cable_unplugged_shows_as_no_card_until_plugged_back(encoder_slot) -> None:
    from cardstation.drivers.pcsc.errors import NoCard

    chip = make_card("blank3")
    with coupled_printer(encoder_slot, "right_way", chip) as (model, coupler, printer):
        printer.move_to_contact()
        encoder_slot.context.wait_for_card(ENCODER_READER, timeout=5)
        model.inject("encoder_unplugged")
        encoder_slot.context.wait_for_removal(ENCODER_READER, timeout=5)
        assert not coupler.encoder_plugged
        with pytest.raises(NoCard):
            PcscTransport(ENCODER_READER).connect()
        model.clear("encoder_unplugged")
        assert encoder_slot.context.wait_for_card(ENCODER_READER, timeout=5) == chip.atr
