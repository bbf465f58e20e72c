"""Retention of personal data (issue 17 item 5): finished jobs past `[station]
personal_data_days` lose their personal fields; the day's report still works from what stays,
and a purged job's face is not reprinted (REPRINT_DATA_PURGED)."""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from pathlib import Path

import pytest

from cardstation.cli import main
from cardstation.personalization.journal import Journal, State
from cardstation.personalization.outbox import Outbox
from cardstation.reconcile import day_report
from cardstation.retention import DAY, purge_personal
from tests.support.data_at_rest import (
    BANK,
    ID_NUMBER,
    NAME,
    application,
    assert_sealed_at_rest,
    file_bytes,
    make_done,
    needles,
)

DAY_OF_JOBS = date(2024, 3, 1)
OTHER = "110105194912310021"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 3, 1, 10, 0).timestamp()  # local time: the report's day

    def __call__(self) -> float:
        return self.now


def test_only_finished_jobs_past_the_limit_are_purged(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "journal.sqlite"
    with Journal(path, clock=clock, durable=False) as journal:
        old = make_done(journal)
        unfinished = journal.create(application(OTHER, "李四"), OTHER).id
        clock.now += 20 * DAY
        recent = make_done(journal, "410702198001010011", "王五")
        result = purge_personal(journal, 10, clock=clock)
        assert (result.jobs, result.returns) == (1, 1) and result.events >= 1
        purged = journal.get(old)
        assert purged.purged_at is not None
        assert purged.id_number == "410702********987X"  # the masked number stays
        assert purged.application == {"card_number": "A98765432", "batch": "PCH777",
                                      "issue_date": "20240101", "expiry_date": "20340101"}
        assert "chip" not in purged.data and purged.state is State.DONE
        assert any(e.data.get("print_count_before") == 5 for e in journal.events(old))
        assert not any("chip" in e.data for e in journal.events(old))
        assert set(Outbox(journal).get(old).record) == {"card_number", "batch", "issue_date",
                                                        "expiry_date"}
        assert journal.history_for(ID_NUMBER) == []  # no lookup left either
        assert journal.get(unfinished).application["name"] == "李四"  # not finished: kept
        assert journal.get(recent).data["chip"]["bank_account"] == BANK  # too recent: kept
        assert purge_personal(journal, 10, clock=clock).jobs == 0  # done once
        assert purge_personal(journal, 0, clock=clock).jobs == 0  # 0 keeps everything
    report = day_report(path, DAY_OF_JOBS, "410700-W01")
    assert [(m.issuance_id, m.id_number_masked, m.card_number) for m in report.made] == [
        (old, "410702********987X", "A98765432")]
    assert_sealed_at_rest(path)


def test_a_purged_journal_keeps_no_personal_bytes_even_with_the_key(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "journal.sqlite"
    with Journal(path, clock=clock, durable=False) as journal:
        make_done(journal)
        clock.now += 40 * DAY
        purge_personal(journal, 30, clock=clock)
    (tmp_path / "data.key").unlink()  # the key cannot bring back what is gone: look in clear
    raw = file_bytes(path)
    assert raw and not any(n in raw for n in needles().values())


def test_the_command_purges_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "station"
    data.mkdir(mode=0o700)
    clock = Clock()
    with Journal(data / "journal.sqlite", clock=clock, durable=False) as journal:
        done = make_done(journal)
    config = tmp_path / "cardstation.toml"
    config.write_text(f'[station]\ndata_dir = "{data}"\npersonal_data_days = 30\n')
    assert main(["retention", "purge", "--config", str(config)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["jobs"] == 1 and out["days"] == 30  # 2024 is long past 30 days
    with Journal(data / "journal.sqlite") as journal:
        assert journal.get(done).purged_at is not None
        assert NAME not in json.dumps(journal.get(done).application, ensure_ascii=False)


def test_a_purged_jobs_reprint_is_refused_with_its_reason(world) -> None:
    from cardstation.personalization.pipeline import ReprintRefused
    from cardstation.station import build_station
    from tests.support.world import settled

    world.load_blank(1)
    station = build_station(world.config())
    try:
        made = settled(station, station.pipeline.issue(world.cms.samples["ready"][0]))
        assert made.state is State.DONE
        assert purge_personal(station.journal, 1, clock=lambda: time.time() + 2 * DAY).jobs == 1
        with pytest.raises(ReprintRefused) as refused:
            station.pipeline.reprint(made.id)
    finally:
        station.close()
    assert refused.value.fault.code == "REPRINT_DATA_PURGED"
    assert "personal_data_days" in refused.value.fault.cause and refused.value.fault.remedy


def test_the_servers_daily_pass_purges_without_a_call(tmp_path: Path) -> None:
    from cardstation.retention import PurgeTimer

    path = tmp_path / "journal.sqlite"
    with Journal(path, clock=Clock(), durable=False) as journal:
        done = make_done(journal)  # finished in 2024: far past 30 days
    with PurgeTimer(path, 30, first_after=0.01) as timer:
        with Journal(path) as journal:
            deadline = time.monotonic() + 10
            while journal.get(done).purged_at is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert journal.get(done).purged_at is not None
    assert not timer._thread.is_alive()  # stopped with the server
    with PurgeTimer(path, 0, first_after=0.01) as off:  # 0 keeps: no thread at all
        assert not off._thread.is_alive()
