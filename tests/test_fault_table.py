"""The operators' fault table (reference/business-flows.md section 2, seed 001), row by row: the
station's message for each row names the row's cause and its remedy (printer errors as the
HiTi adapter hands them to the domain). Then every fault the
station can show at all: a stable UPPER_SNAKE code, a cause and a remedy.

The table's last row ("read card shows 0": a wrong city filter in the vendor program) has no
counterpart here: the station has no city filter.
"""

from __future__ import annotations

import pytest

from cardstation.drivers.hiti import alerts
from cardstation.drivers.hiti.errors import PrinterNotConnected, alert_error
from cardstation.drivers.pcsc import errors as pcsc
from cardstation.personalization.cms import CmsClient, CmsUnavailable
from cardstation.personalization.faults import (
    CATALOGUE,
    Action,
    fault,
    fault_of,
    is_reason_code,
)
from cardstation.personalization.printers.hiti import translate


def test_row_colour_offset_calibrate_or_clean_the_ribbon_sensor() -> None:
    problem = fault_of(translate(alert_error(alerts.by_name("RibbonSearchFail"))))
    assert problem.code == "PRINTER_RIBBON_SEARCH_FAIL"
    assert "sensor offset or dirty" in problem.cause and "ribbon" in problem.cause
    assert "calibrate or clean the ribbon sensor" in problem.remedy
    assert {Action.CALIBRATE_RIBBON_SENSOR, Action.CLEAN_CARD_PATH} <= set(problem.actions)


def test_row_chip_power_on_failed_orientation_reader_printer() -> None:
    exc = pcsc.pcsc_error(pcsc.SCARD_W_UNRESPONSIVE_CARD, "connecting")
    problem = fault_of(exc)
    assert problem.code == "CHIP_POWER_ON_FAILED"
    assert "wrong way" in problem.cause
    assert "orientation" in problem.remedy and "restart the printer" in problem.remedy
    assert "another card" in problem.remedy


def test_row_printer_not_connected_two_usb_cables_or_the_driver() -> None:
    problem = fault_of(translate(PrinterNotConnected("no USB device 0d16:030a")))
    assert problem.code == "PRINTER_NOT_CONNECTED"
    assert "not connected" in problem.cause
    assert "both USB cables" in problem.remedy and "reinstall the printer driver" in problem.remedy
    encoder = fault_of(pcsc.pcsc_error(pcsc.SCARD_E_NO_READERS_AVAILABLE, "looking"))
    assert encoder.code == "ENCODER_NOT_CONNECTED" and "both USB cables" in encoder.remedy


def test_row_ribbon_chip_not_detected_replace_or_reseat() -> None:
    problem = fault_of(translate(alert_error(alerts.by_name("RibbonChipMissing"))))
    assert problem.code == "PRINTER_RIBBON_CHIP_MISSING"
    assert "ribbon" in problem.cause and "damaged or loose" in problem.cause
    assert "replace the ribbon or reseat its chip" in problem.remedy


def test_row_write_not_successful_network_retry_and_restore() -> None:
    client = CmsClient("http://127.0.0.1:9", "T")
    down = client._unavailable("unreachable", "connection refused", "return")
    assert isinstance(down, CmsUnavailable)
    problem = fault("RETURN_PENDING", str(down))
    assert "network" in problem.message.lower()
    assert "失败数据回盘" in problem.remedy and "恢复申请" in problem.remedy
    assert "do not hand the card over" in problem.remedy
    refused = fault("RETURN_REFUSED")
    assert set(refused.actions) == {Action.RESTORE_AND_RESEND, Action.MARK_SPOILED}


def test_row_read_error_dirty_or_damaged_chip() -> None:
    with pytest.raises(pcsc.MemoryFailure) as caught:
        pcsc.raise_for_sw(0x6581, "UPDATE RECORD")
    problem = fault_of(caught.value)
    assert problem.code == "CHIP_DAMAGED" and "damaged" in problem.cause
    assert "clean the chip" in problem.remedy and "broken" in problem.remedy


# -- everything the station can show ------------------------------------------------------------

def _assert_actionable(problem) -> None:
    assert is_reason_code(problem.code), problem.code
    assert problem.cause.strip() and problem.remedy.strip(), problem
    assert " — " in problem.message


@pytest.mark.parametrize("alert", alerts.ALERTS, ids=lambda a: f"{a.name}-{a.cs_code}")
def test_every_printer_alert_has_a_code_cause_and_remedy(alert) -> None:
    problem = fault_of(translate(alert_error(alert)))
    _assert_actionable(problem)
    assert problem.code.startswith("PRINTER_") and Action.RESET_PRINTER in problem.actions


@pytest.mark.parametrize("code", sorted(pcsc._PCSC_CLASSES))
def test_every_pcsc_error_has_a_code_cause_and_remedy(code: int) -> None:
    _assert_actionable(fault_of(pcsc.pcsc_error(code, "test")))


@pytest.mark.parametrize("sw", sorted(pcsc.SW_TABLE))
def test_every_card_status_word_has_a_code_cause_and_remedy(sw: int) -> None:
    with pytest.raises(pcsc.CardStatusError) as caught:
        pcsc.raise_for_sw(sw)
    _assert_actionable(fault_of(caught.value))


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_catalogued_fault_has_a_cause_and_remedy(code: str) -> None:
    _assert_actionable(CATALOGUE[code])


def test_an_unexpected_error_is_internal_with_a_remedy_not_a_traceback() -> None:
    problem = fault_of(KeyError("x"))
    assert problem.code == "INTERNAL" and "KeyError" in problem.cause
    assert Action.RESUME in problem.actions


def test_the_readme_documents_every_reason_code() -> None:
    """One documented vocabulary: every fixed code the station can answer is in the README."""
    import re
    from pathlib import Path

    from cardstation.personalization import window
    from cardstation.server import servicers

    readme = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text("utf-8")
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    source = Path(servicers.__file__).read_text("utf-8")
    fixed = set(CATALOGUE) | set(re.findall(r'Fault\("([A-Z][A-Z0-9_]+)"', source))
    fixed |= {name for name in dir(window) if name.isupper() and isinstance(
        getattr(window, name), str) and getattr(window, name) == name}
    missing = sorted(code for code in fixed if code not in documented)
    assert not missing, f"README lacks: {', '.join(missing)}"
