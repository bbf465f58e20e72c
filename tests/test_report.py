"""The day's reconciliation and hand-over sheet (issue 16, item 7): after a small batch on the
simulated station its numbers match the journal and the printer simulator's own counters, and
neither the JSON nor the PDF carries a full ID number."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import pytest

from cardstation.cli import main
from cardstation.handover_pdf import render, sheet_of
from cardstation.personalization.journal import State
from cardstation.reconcile import DayReport, MadeCard, day_report, record_reading
from tests.support.world import settled


@pytest.fixture
def batch(world, tmp_path):
    """Four blanks: A made; B made, its face reprinted, then marked spoiled; C loaded the wrong
    way round (rejected, to the reject box); D made while the CMS refuses returns (pending)."""
    from cardstation.station import build_station

    model = world.model
    ribbon_before = model.ribbon.remaining
    a, b, c, d = world.cms.samples["ready"][:4]
    chips = world.load_blank(2)
    world.load_blank(1, orientation="chip_far_end")
    world.load_blank(1)
    station = build_station(world.config())
    journal = world.data_dir / "journal.sqlite"
    try:
        # the morning's reading of the printer's counters (report day --read-printer)
        record_reading(journal, time.time(), station.printer.print_count(),
                       station.printer.ribbon().remaining)
        made_a = settled(station, station.pipeline.issue(a))
        made_b = settled(station, station.pipeline.issue(b))
        rejected = station.pipeline.issue(c)
        world.cms.inject("fail_returns", count=1000)
        pending = station.pipeline.issue(d)
        station.drain_returns(0.3)
        model.load_card("right_way", chip=chips[1])  # B's card put back for 补打卡面
        station.pipeline.reprint(made_b.id)
        station.pipeline.reject_card(made_b.id, spoiled=True)
        assert (made_a.state, made_b.state, rejected.state, pending.state) == (
            State.DONE, State.DONE, State.REJECTED, State.EJECTED)
        assert rejected.data["reason_code"] == "CHIP_POWER_ON_FAILED"
        printer_count = station.printer.print_count()  # the adapter's reading, as --read-printer
        ribbon_now = station.printer.ribbon().remaining
    finally:
        station.close()
    report = day_report(journal, date.today(), "410700-SIM",
                        print_count_now=printer_count, ribbon_remaining_now=ribbon_now)
    return {"world": world, "report": report, "ribbon_before": ribbon_before,
            "ids": (a, b, c, d), "jobs": (made_a, made_b, rejected, pending)}


@pytest.mark.pcscd
def test_the_report_matches_the_journal_and_the_printer(batch) -> None:
    report: DayReport = batch["report"]
    model = batch["world"].model
    made_a, made_b, _rejected, _pending = batch["jobs"]
    # the journal's view
    assert [card.issuance_id for card in report.made] == [made_a.id, made_b.id]
    assert [card.spoiled for card in report.made] == [False, True]
    assert report.rejected_by_reason == {"CHIP_POWER_ON_FAILED": 1}
    assert report.spoiled == 1 and report.reprinted == 1
    assert report.returns == {"acknowledged": 2, "pending": 1, "failed": 0, "withdrawn": 0}
    # against the printer simulator's own counters
    assert report.blank_cards_used == 4 and not model.input_cards  # 4 blanks, all taken
    assert report.rejected_cards == len(model.reject_box) == 1
    assert report.prints == {"station": model.print_count, "printer_counter_start": 0,
                             "printer_counter_end": model.print_count,
                             "printer": model.print_count, "difference": 0}
    assert model.print_count == 4  # A, B, D and B's reprint; C was never printed
    used = batch["ribbon_before"] - model.ribbon.remaining
    assert used == 4
    assert report.ribbon == {"prints_used": used, "remaining_start": batch["ribbon_before"],
                             "remaining_end": model.ribbon.remaining, "ribbon": used,
                             "difference": 0, "remaining_now": model.ribbon.remaining}
    # nothing from another day
    other = day_report(batch["world"].data_dir / "journal.sqlite", date(2001, 1, 1), "x")
    assert (other.made_count, other.rejected, other.blank_cards_used) == (0, 0, 0)
    assert other.prints["printer"] == 0 and other.prints["difference"] == 0


@pytest.mark.pcscd
def test_json_and_pdf_from_the_command_carry_no_full_id_number(batch, tmp_path,
                                                               capsys) -> None:
    toml = tmp_path / "cardstation.toml"
    toml.write_text(batch["world"].toml())
    assert main(["report", "day", "--config", str(toml)]) == 0
    text = capsys.readouterr().out
    out = json.loads(text)
    assert (out["made_count"], out["rejected"]) == (2, 1)
    assert out["date"] == date.today().isoformat()
    assert out["prints"]["printer"] is None  # the printer not read: its closing count unknown
    pdf = tmp_path / "sheet.pdf"
    assert main(["report", "day", "--config", str(toml), "--format", "pdf",
                 "--out", str(pdf)]) == 0
    assert json.loads(capsys.readouterr().out)["pdf"] == str(pdf)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and b"ReportLab" in data and data.rstrip().endswith(b"%%EOF")
    assert pdf.stat().st_mode & 0o077 == 0
    for id_number in batch["ids"]:
        assert id_number not in text
        assert id_number.encode() not in data
    masked = [card["id_number_masked"] for card in out["made"]]
    assert masked == [batch["ids"][0][:6] + "********" + batch["ids"][0][-4:],
                      batch["ids"][1][:6] + "********" + batch["ids"][1][-4:]]


@pytest.mark.pcscd
def test_the_hand_over_sheet_shows_the_counts_and_masked_numbers_only(batch) -> None:
    report: DayReport = batch["report"]
    sheet = sheet_of(report)
    strings = sheet.strings()
    for id_number in batch["ids"]:
        assert not any(id_number in s for s in strings)  # never a full ID number
    assert [row[1] for row in sheet.cards] == [c.id_number_masked for c in report.made]
    assert [row[2] for row in sheet.cards] == [c.card_number for c in report.made]
    counts = dict(sheet.counts)
    assert counts["制成卡数（已回盘确认）"] == "2"
    assert counts["退卡数（按原因）"] == "1（CHIP_POWER_ON_FAILED 1）"
    assert counts["打印次数：本站 / 打印机计数 / 差"] == "4 / 4 / 0"
    assert counts["色带用量：本站 / 色带计数 / 差"] == "4 / 4 / 0"
    assert any(s.startswith("交接人") for s in sheet.signatures)
    assert any(s.startswith("接收人") for s in sheet.signatures)
    assert ("制卡点", "410700-SIM") in sheet.info


def test_a_sheet_renders_to_a_pdf_without_devices(tmp_path) -> None:
    report = DayReport("2026-12-01", "410700-W01", made=[
        MadeCard("a" * 32, "110105********002X", "A12345678", "09:30")],
        rejected_by_reason={"PREVIEW_FINDINGS": 1})
    report.prints = {"station": 1, "printer": None, "difference": None}
    report.ribbon = {"prints_used": 1, "remaining_now": None}
    out = render(sheet_of(report), tmp_path / "sheet.pdf")
    data = Path(out).read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 2000
    assert dict(sheet_of(report).counts)["打印次数：本站 / 打印机计数 / 差"] == "1 / 未知 / 未知"


def test_a_past_day_closes_with_the_next_days_counters_and_shows_differences(tmp_path) -> None:
    """Two prints the station does not know of (a test print from the printer's panel) show
    as a difference of 2 in the printer's and in the ribbon's count."""
    from datetime import datetime

    from cardstation.personalization.journal import Journal
    from tests.support.clock import FakeClock
    from tests.support.journal import put_in

    def at(day: int, hour: int) -> float:
        return datetime(2026, 3, day, hour).timestamp()  # local time, as the report's days

    path = tmp_path / "journal.sqlite"
    clock = FakeClock(at(2, 8))
    with Journal(path, clock=clock, durable=False) as journal:
        record_reading(path, at(2, 8), 10, 100)  # the morning's reading
        clock.now = at(2, 10)
        job = put_in(journal, State.RETURN_QUEUED)
        journal.update_data(job.id, {"print_count_before": 10}, "printing")
        record_reading(path, at(2, 18), 13, 97)  # the evening's: 3 printed, 3 ribbon prints
        clock.now = at(3, 9)
        later = put_in(journal, State.RETURN_QUEUED)
        journal.update_data(later.id, {"print_count_before": 13}, "printing")
    report = day_report(path, date(2026, 3, 2), "410700-W01", print_count_now=20,
                        ribbon_remaining_now=50)  # today's live reading: not that day's
    assert report.prints == {"station": 1, "printer_counter_start": 10,
                             "printer_counter_end": 13, "printer": 3, "difference": 2}
    assert report.ribbon["remaining_start"] == 100 and report.ribbon["remaining_end"] == 97
    assert report.ribbon["ribbon"] == 3 and report.ribbon["difference"] == 2
    assert report.blank_cards_used == 1  # the job's feed was that day
