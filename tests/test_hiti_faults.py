"""Every injectable fault surfaces as the named driver error with its vendor code, over BOTH the
pyusb backend and the TCP transport; cable pulls leave the card somewhere a driver reads back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from cardstation.drivers.hiti import errors
from cardstation.drivers.hiti.frames import Opcode
from cardstation.drivers.hiti.printer import Printer
from cardstation.drivers.hiti.render import CardPanels
from cardstation.drivers.hiti.state import CardPosition
from cardstation.simulators.printer import PrinterModel, SimPosition
from tests.support.hiti import Rig

Action = Callable[[Printer, CardPanels], object]


def feed(p: Printer, panels: CardPanels) -> object:
    return p.move_to_contact()


def feed_and_print(p: Printer, panels: CardPanels) -> object:
    p.move_to_contact()
    return p.print_card(panels)


def feed_and_reject(p: Printer, panels: CardPanels) -> object:
    p.move_to_contact()
    return p.reject()


def calibrate(p: Printer, panels: CardPanels) -> object:
    return p.calibrate_ribbon_sensor()


def out_of_sequence(p: Printer, panels: CardPanels) -> object:
    return p._exchange(Opcode.END_PAGE)  # panel data / END_PAGE with no job open


@dataclass(frozen=True)
class Case:
    id: str
    inject: Callable[[PrinterModel], None]
    action: Action
    error: type[errors.PrinterError]
    vendor_code: int
    cs_code: str | None = None


CASES = [
    Case("cover_open", lambda m: m.inject("cover_open"), feed, errors.CoverOpen, 0x050001, "0100"),
    Case("jam_feeder", lambda m: m.inject("jam", at="feeder"), feed, errors.CardJam, 0x030200,
         "0501"),
    Case("jam_contact", lambda m: m.inject("jam", at="contact"), feed, errors.CardJam, 0x030300,
         "0502"),
    Case("jam_print", lambda m: m.inject("jam", at="print"), feed_and_print, errors.CardJam,
         0x030400, "0503"),
    Case("jam_flipper", lambda m: m.inject("jam", at="flipper"), feed_and_print, errors.CardJam,
         0x040000, "0504"),  # PavoApi.h 1.7.11.1100 PAVO_DS_CARD_JAM2 "card jam in flipper"
    Case("ribbon_missing", lambda m: m.inject("ribbon_missing"), feed_and_print,
         errors.RibbonMissing, 0x080004, "0201"),
    Case("ribbon_out", lambda m: m.inject("ribbon_out"), feed_and_print, errors.RibbonOut,
         0x080103, "0301"),
    Case("ribbon_chip_missing", lambda m: m.inject("ribbon_chip_missing"), feed_and_print,
         errors.RibbonChipMissing, 0x0802FE, "0200"),
    Case("ribbon_chip_unreadable", lambda m: m.inject("ribbon_chip_unreadable"), feed_and_print,
         errors.RibbonChipError, 0x0804FE, "0200"),
    Case("ribbon_type_mismatch", lambda m: m.inject("ribbon_type_mismatch"), feed_and_print,
         errors.RibbonTypeMismatch, 0x080201, "0202"),  # gutenprint 2024: "need YMCO"
    Case("ribbon_search_fail", lambda m: m.inject("sensor", offset_mm=1.5), feed_and_print,
         errors.RibbonSearchFail, 0x080105, "0300"),
    Case("calibration_fail", lambda m: m.inject("sensor", dirt=0.8), calibrate,
         errors.RibbonTakeCalibrationFailed, 0x080105, "1100"),
    Case("input_empty", lambda m: m.inject("input_empty"), feed, errors.InputEmpty, 0x008000,
         "0400"),
    Case("reject_box_full", lambda m: m.inject("reject_box_full"), feed_and_reject,
         errors.RejectBoxFull, 0x050401),
    Case("sequence_error", lambda m: None, out_of_sequence, errors.CommandSequenceError,
         0x0301FE),
    Case("printer_unplugged", lambda m: m.inject("printer_unplugged"), feed,
         errors.PrinterNotConnected, 0x80),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault_raises_named_error(
    case: Case, printer: Printer, model: PrinterModel, card_panels: CardPanels
) -> None:
    case.inject(model)
    with pytest.raises(errors.PrinterError) as info:
        case.action(printer, card_panels)
    err = info.value
    assert type(err) is case.error, err
    assert err.vendor_code == case.vendor_code
    assert err.remedy
    if case.cs_code is not None:
        assert isinstance(err, errors.PrinterAlert) and err.cs_code == case.cs_code
    payload = err.to_dict()
    assert payload["error"] == case.error.__name__
    assert payload["vendor_code"] == f"0x{case.vendor_code:06X}"


def test_status_reports_alerts_with_remedies(printer: Printer, model: PrinterModel) -> None:
    model.inject("cover_open")
    model.inject("ribbon_chip_missing")
    status = printer.status()
    assert set(status.flags) == {"operator", "supplies"}
    names = [a.name for a in status.alerts]
    assert names == ["CoverOpen", "RibbonChipMissing"]  # priority order: operator first
    chip = status.alerts[1]
    assert chip.cs_code == "0200" and "reseat its chip" in chip.remedy
    model.clear("cover_open")
    model.clear("ribbon_chip_missing")
    assert printer.status().ok


def test_supplies_alert_does_not_stop_a_move(printer: Printer, model: PrinterModel) -> None:
    model.inject("ribbon_out")
    assert printer.move_to_contact() == CardPosition.CONTACT
    assert printer.ribbon().remaining == 0


def test_jam_is_cleared_by_reset_to_the_reject_box(printer: Printer, model: PrinterModel) -> None:
    model.inject("jam", at="contact")
    with pytest.raises(errors.CardJam):
        printer.move_to_contact()
    assert printer.card_position() == CardPosition.JAMMED
    printer.reset()
    assert printer.status().ok
    assert model.snapshot()["reject_box"] == 1
    assert printer.move_to_contact() == CardPosition.CONTACT


def test_unplug_during_print_leaves_card_where_reconnecting_driver_finds_it(
    rig: Rig, printer: Printer, model: PrinterModel, card_panels: CardPanels
) -> None:
    printer.move_to_contact()
    seen: list[float] = []

    def progress(step: str, fraction: float) -> None:
        seen.append(fraction)
        if step == "upload" and fraction > 0.3:
            model.unplug_printer()

    with pytest.raises(errors.PrinterNotConnected):
        printer.print_card(card_panels, progress)
    assert printer.tracked_position == CardPosition.UNKNOWN
    assert model.card is not None and model.card.position is SimPosition.CONTACT
    assert model.print_log == []  # the half-sent job was discarded
    with pytest.raises(errors.PrinterNotConnected):
        printer.reconnect()  # still unplugged: USB fails here, TCP at the first exchange
        printer.status()
    model.plug_printer()
    printer.reconnect()
    assert printer.card_position() == CardPosition.CONTACT
    printer.print_card(card_panels)
    assert printer.eject() == CardPosition.OUTPUT_HOPPER
    assert len(model.print_log) == 1


def test_open_fails_cleanly_when_unplugged(rig: Rig, model: PrinterModel) -> None:
    model.unplug_printer()
    with pytest.raises(errors.PrinterNotConnected) as info:
        rig.printer().status()
    assert info.value.vendor_code == 0x80


def test_encoder_cable_callbacks(model: PrinterModel) -> None:
    events: list[str] = []
    model.on_encoder_unplugged = lambda: events.append("unplugged")
    model.on_encoder_plugged = lambda: events.append("plugged")
    model.inject("encoder_unplugged")
    assert not model.encoder_connected
    model.clear("encoder_unplugged")
    assert events == ["unplugged", "plugged"]
