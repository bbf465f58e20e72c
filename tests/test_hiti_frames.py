"""A5 framing, bulk header, status bits, alert lists and the alert/error tables."""

from __future__ import annotations

import pytest
from construct import ConstructError

from cardstation.drivers.hiti import alerts, errors, frames
from cardstation.drivers.hiti.assumptions import JAM_PATHS
from cardstation.drivers.hiti.frames import Opcode


def test_command_frame_layout() -> None:
    assert frames.build_command(Opcode.GET_STATUS) == bytes.fromhex("a50003500400")
    frame = frames.build_command(Opcode.START_JOB, bytes.fromhex("000007"))
    assert frame == bytes.fromhex("a50006500500000007")
    parsed = frames.Command.parse(frame)
    assert parsed.cmd == Opcode.START_JOB and parsed.payload == b"\x00\x00\x07"


def test_bad_header_is_rejected() -> None:
    with pytest.raises(ConstructError):
        frames.parse_header(bytes.fromhex("a60003500400"))


def test_bulk_header_splits_24_bit_length() -> None:
    data_len = 1014 * 642  # one full panel
    header = frames.build_bulk_header(data_len, 0, 642)
    assert len(header) == frames.BULK_HEADER_SIZE
    total = data_len + 8
    assert header[1:3] == (total >> 8).to_bytes(2, "big")
    assert header[3] == 0x50 and header[4:6] == b"\x83\x09"
    assert header[6] == total & 0xFF
    parsed = frames.BulkHeader.parse(header)
    assert frames.bulk_data_len(parsed) == data_len
    assert (parsed.start_line, parsed.num_lines) == (0, 642)


def test_status_summary_bits() -> None:
    assert frames.build_status(busy=True) == b"\x80\x00\x00"
    assert frames.build_status(power_on=True, resend=True) == b"\x05\x00\x00"
    assert frames.build_status(input=True, jam=True, supplies=True) == b"\x00\x0b\x00"
    assert frames.build_status(operator=True, service=True, warning=True) == b"\x00\x00\x0e"
    parsed = frames.StatusSummary.parse(b"\x80\x02\x08")
    assert parsed.busy and parsed.jam and parsed.operator and not parsed.supplies


def test_alert_list_and_decoding() -> None:
    raw = frames.AlertList.build(
        {"count": 2, "alerts": [
            {"code24": 0x050001, "aux": 0, "ascii": "0100"},
            {"code24": 0x080105, "aux": 0, "ascii": "1101"},
        ]}
    )  # fmt: skip
    assert raw.hex() == "02" + "05000100" + "30313030" + "08010500" + "31313031"
    parsed = frames.AlertList.parse(raw)
    names = [alerts.decode(a.code24, a.ascii).name for a in parsed.alerts]
    assert names == ["CoverOpen", "RibbonSupplyCalibrationFailed"]


def test_unknown_alert_keeps_its_codes() -> None:
    alert = alerts.decode(0x123456, "4242")
    err = errors.alert_error(alert)
    assert type(err) is errors.UnknownAlert
    assert err.vendor_code == 0x123456 and err.cs_code == "4242"


@pytest.mark.parametrize("position", list(JAM_PATHS))
def test_jam_errors_name_the_position(position: str) -> None:
    err = errors.alert_error(alerts.jam_alert(position))
    assert isinstance(err, errors.CardJam)
    assert err.position == position
    assert err.to_dict()["position"] == position


def test_every_named_alert_has_an_error_class_and_remedy() -> None:
    for alert in alerts.ALERTS:
        err = errors.alert_error(alert)
        assert type(err).__name__ == alert.name
        assert err.remedy and err.vendor_code == alert.code24


def test_remedies_follow_the_operator_fault_table() -> None:
    assert "calibrate or clean the ribbon sensor" in alerts.by_name("RibbonSearchFail").remedy
    assert "replace the ribbon or reseat its chip" in alerts.by_name("RibbonChipMissing").remedy
    assert "USB cables" in errors.PrinterNotConnected("x").remedy


def test_stats_and_supplies_replies() -> None:
    raw = frames.StatsReply.build({"count": 1, "records": [{"type": 3, "value": 199}]})
    assert raw == bytes.fromhex("0103000000c7")
    info = frames.RibbonInfo.parse(bytes.fromhex("0000040000"))
    assert info.type == frames.RibbonType.YMCKOK
