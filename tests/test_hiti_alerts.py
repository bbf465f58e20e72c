"""Every public HiTi alert code decodes to a named fault with a cause and a remedy (issue 14,
item 3). The code lists are transcribed from the public sources named in each docstring."""

from __future__ import annotations

import pytest

from cardstation.drivers.hiti import alerts, errors
from cardstation.drivers.hiti.frames import AlertList
from cardstation.drivers.hiti.printer import Printer
from cardstation.simulators.printer import PrinterModel

#: gutenprint src/cups/backend_hiti.c, hiti_errors(), gutenprint-mirror ea5b9229 (2024-06),
#: every compiled case except 0 ("None").
GUTENPRINT_2024 = [
    0x0100FE, 0x0300FE, 0x0301FE, 0x0302FE, 0x0303FE, 0x0304FE, 0x030001, 0x030101, 0x030201,
    0x030301, 0x030302, 0x030402, 0x030501, 0x030502, 0x030601, 0x030602, 0x030701, 0x030702,
    0x030802, 0x030901, 0x030A01, 0x030B01, 0x030C02, 0x030D02, 0x030E02, 0x030F02, 0x031002,
    0x031101, 0x031201, 0x031302, 0x050001, 0x050101, 0x0502FE, 0x080004, 0x080007, 0x080103,
    0x080104, 0x080105, 0x080204, 0x080207, 0x0802FE, 0x080303, 0x0803FE, 0x0804FE, 0x0805FE,
    0x0806FE, 0x0807FE, 0x0808FE, 0x0809FE, 0x030000, 0x03000F, 0x030200, 0x030300, 0x030400,
    0x030500, 0x030600, 0x030700, 0x030800, 0x030900, 0x030A00, 0x000008, 0x000100, 0x000101,
    0x000200, 0x000201, 0x000202, 0x000203, 0x000204, 0x000205, 0x000300, 0x000301, 0x000302,
    0x000400, 0x000401, 0x000402, 0x000500, 0x000501, 0x000502, 0x000503, 0x000504, 0x000600,
    0x000700, 0x000800, 0x000900, 0x001000, 0x001200, 0x001300, 0x001500, 0x007538, 0x007539,
    0x007540, 0x007542, 0x007543, 0x007544, 0x007545, 0x007546, 0x008000, 0x008008, 0x008010,
    0x008011, 0x008012, 0x008013, 0x008014, 0x008015, 0x080200, 0x080201, 0x080203, 0x080230,
    0x080240, 0x080250, 0x080260,
]  # fmt: skip

#: HiTi PavoApi.h revision 1.7.11.1100: the PAVO_DS_* codes that are device alerts (not the
#: driver states busy/offline/printing/processing/sending/write fail/read fail).
PAVOAPI = {
    0x0100FE: "CardMismatch", 0x0301FE: "CommandSequenceError", 0x030001: "PrinterMemoryError",
    0x030101: "PrinterMemoryError", 0x030201: "ControllerError", 0x030301: "PrinterMemoryError",
    0x030302: "PrinterMemoryError", 0x030701: "FirmwareError", 0x050001: "CoverOpen",
    0x050201: "SlavePrinterFault", 0x050301: "RejectBoxMissing", 0x050401: "RejectBoxFull",
    0x008000: "InputEmpty", 0x008001: "CardsLow", 0x080004: "RibbonMissing",
    0x080103: "RibbonOut", 0x0804FE: "RibbonChipError", 0x0806FE: "RibbonUnsupported",
    0x0808FE: "RibbonUnknown", 0x080204: "SlavePrinterFault", 0x080303: "SlavePrinterFault",
    0x0805FE: "SlavePrinterFault", 0x0807FE: "SlavePrinterFault", 0x0809FE: "SlavePrinterFault",
    0x030000: "CardJam", 0x040000: "CardJam", 0x050000: "CardJam", 0x030100: "CardJam",
    0x040100: "CardJam", 0x050100: "CardJam", 0x060100: "CardJam", 0x070100: "CardJam",
    0x008010: "ThicknessLever", 0x1100000D: "NoFlipperModule", 0x007540: "PrinterLocked",
    # "used for CS-2xx"
    0x000100: "CoverOpen", 0x000101: "FlipperCoverOpen", 0x000200: "RibbonChipMissing",
    0x000201: "RibbonMissing", 0x000202: "RibbonTypeMismatch", 0x000203: "RibbonUnsupported",
    0x000300: "RibbonSearchFail", 0x000301: "RibbonOut", 0x000302: "PrintFailed",
    0x000303: "PrintFailed", 0x000304: "RibbonOut", 0x000400: "InputEmpty",
    **{0x000500 + n: "CardJam" for n in range(9)}, 0x000600: "CardMismatch",
    0x000700: "DeviceService", **{0x000800 + n: "FlipperError" for n in range(4)},
    0x000900: "PrinterMemoryError", 0x001000: "RibbonError",
    0x001100: "RibbonTakeCalibrationFailed", 0x001101: "RibbonSupplyCalibrationFailed",
    0x001200: "ControllerError", 0x001300: "FirmwareError", 0x001301: "FirmwareError",
    0x001400: "PowerSupplyError",
}  # fmt: skip

_UNKNOWN_REMEDY = alerts.decode(0x7FFFFF, None).remedy


def _assert_named(code: int) -> alerts.AlertDef:
    found = alerts.decode(code, None)
    assert found.name != "UnknownAlert", f"0x{code:06X} has no named fault"
    assert found.code24 == code
    assert ":" in found.description or found.name == "CardJam", found.description
    assert len(found.remedy) > 15 and found.remedy != _UNKNOWN_REMEDY
    err = errors.alert_error(found)
    assert err.name == found.name and err.remedy == found.remedy and err.vendor_code == code
    return found


@pytest.mark.parametrize("code", GUTENPRINT_2024, ids=lambda c: f"0x{c:06X}")
def test_every_gutenprint_alert_is_a_named_fault(code: int) -> None:
    """gutenprint src/cups/backend_hiti.c hiti_errors(), version of 2024-06 (ea5b9229)."""
    _assert_named(code)


@pytest.mark.parametrize("code,name", sorted(PAVOAPI.items()), ids=lambda v: str(v))
def test_every_pavoapi_alert_is_its_named_fault(code: int, name: str) -> None:
    """HiTi PavoApi.h revision 1.7.11.1100 (2016-02-03), PAVO_DS_* codes."""
    assert _assert_named(code).name == name


def test_pavoapi_jam_codes_name_where_the_card_is() -> None:
    """PavoApi.h 1.7.11.1100: CARD_JAM1 card path, JAM2 flipper, JAM3 eject box."""
    assert alerts.decode(0x030000, None).position == "card path"
    assert alerts.decode(0x040000, None).position == "flipper"
    assert alerts.decode(0x050000, None).position == "reject box"
    assert alerts.jam_alert("flipper").code24 == 0x040000
    assert alerts.jam_alert("reject box").code24 == 0x050000


def test_unsupported_ribbon_type_is_not_a_type_mismatch() -> None:
    """gutenprint backend_hiti.c 2024-06: 0x080200 "Unsupported ribbon type", 0x080201
    "need YMCO", 0x080203/0x080230 "need KO" (the 2019 copy called 0x080200 a mismatch)."""
    assert alerts.decode(0x080200, None).name == "RibbonTypeUnsupported"
    for code in (0x080201, 0x080203, 0x080230):
        assert alerts.decode(code, None).name == "RibbonTypeMismatch"
    assert "unsupported" in alerts.decode(0x080200, None).description


def test_four_digit_code_names_an_alert_whose_24_bit_code_is_unknown() -> None:
    """PavoApi.h 1.7.11.1100: the CS-2xx code "0801" is flipper error 0x00000801."""
    assert alerts.decode(0x7FFFFE, "0801").name == "FlipperError"


def test_every_alert_has_a_cause_and_an_actionable_remedy() -> None:
    """Every entry of the table (gutenprint 2024-06 and PavoApi.h 1.7.11.1100)."""
    for alert in alerts.ALERTS:
        assert alert.description and alert.remedy, alert
        assert alert.remedy[0].islower() and " " in alert.remedy, alert.remedy


#: The codes the reference's corrections name (PavoApi jams, gutenprint's newer entries).
WIRE_SAMPLE = [0x040000, 0x050000, 0x008001, 0x0808FE, 0x080007, 0x0803FE, 0x0502FE, 0x080200,
               0x000300, 0x000801]


@pytest.mark.parametrize("code", WIRE_SAMPLE, ids=lambda c: f"0x{c:06X}")
def test_alert_sent_by_the_printer_reaches_the_driver_named(
    code: int, printer: Printer, model: PrinterModel
) -> None:
    """An alert on the wire (AlertCS layout) comes out of Printer.status() with its name and
    remedy (codes from PavoApi.h 1.7.11.1100 and gutenprint 2024-06)."""
    alert = alerts.decode(code, None)
    model.latch(alert)
    reports = [a for a in printer.status().alerts if a.code24 == code]
    assert reports and reports[0].name == alert.name and reports[0].remedy == alert.remedy
    raw = AlertList.build({"count": 1, "alerts": [{"code24": code, "aux": 0, "ascii": "0000"}]})
    assert AlertList.parse(raw).alerts[0].code24 == code


def test_card_low_is_reported_but_does_not_stop_the_printer(
    printer: Printer, model: PrinterModel
) -> None:
    """PavoApi.h 1.7.11.1100 PAVO_DS_CARD_LOW 0x00008001 "Card low": a notice, not a fault."""
    model.latch(alerts.by_name("CardsLow"))
    report = [a for a in printer.status().alerts if a.name == "CardsLow"]
    assert report and report[0].blocks is False
    printer.move_to_contact()  # not raised
