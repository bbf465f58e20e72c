"""Backups, restore, compaction and preview retention (issue 16, item 6): no pending return is
ever lost, a backup is verified after writing, a damaged backup is found before it is used."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardstation.backup import (
    AUDIT_LOG,
    JOURNAL,
    MANIFEST,
    BackupError,
    make_backup,
    sha256_of,
    verify_backup,
)
from cardstation.cli import main
from cardstation.config import Config, ConfigError
from cardstation.personalization.journal import (
    Journal,
    JournalInUse,
    State,
    open_elsewhere,
    open_read_only,
)
from cardstation.personalization.outbox import Outbox
from cardstation.restore import RestoreRefused, compact, restore
from cardstation.retention import prune_previews
from cardstation.server.audit import AuditLog, verify
from cardstation.server.audit_head import JournalHeadStore, read_head
from cardstation.server.audit_key import load_or_create_key, read_key
from tests.support.journal import put_in
from tests.support.world import ledger_returns, settled


def station_config(tmp_path: Path) -> Config:
    return Config().with_values(station={"id": "410700-T01",
                                         "data_dir": str(tmp_path / "station")})


def pending_keys(journal_path: Path) -> list[str]:
    conn = open_read_only(journal_path)
    try:
        return [r[0] for r in conn.execute(
            "SELECT idempotency_key FROM outbox WHERE status != 'delivered' ORDER BY id")]
    finally:
        conn.close()


def audit(data: Path, journal: Journal, lines: int) -> None:
    log = AuditLog(data / "audit.jsonl", key=load_or_create_key(data / "audit.key"),
                   head=JournalHeadStore(journal))
    for i in range(lines):
        log.append("window-1", "operator", "/cardstation.v1.IssuanceService/CreateIssuance",
                   f"iss-{i}", "OK")
    log.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A station's data folder: 3 returns pending, 1 delivered, a keyed audit log of 4 lines."""
    cfg = station_config(tmp_path)
    data = cfg.data_path
    data.mkdir(mode=0o700)
    with Journal(data / JOURNAL, durable=False) as journal:
        outbox = Outbox(journal)
        for _ in range(4):
            put_in(journal, State.RETURN_QUEUED)
        first = outbox.pending()[0]
        outbox.mark_delivered(first.id, "ACK-1")
        put_in(journal, State.REJECTED)
        audit(data, journal, 4)
    return cfg


def test_a_backup_holds_every_row_and_pending_return_and_verifies(config, tmp_path) -> None:
    source = config.data_path / JOURNAL
    report = make_backup(config, tmp_path / "backups")
    assert report.ok, report.problems
    folder = report.folder
    assert folder.parent == tmp_path / "backups" and "410700-T01" in folder.name
    assert not list(folder.parent.glob("*.partial"))
    manifest = json.loads((folder / MANIFEST).read_text())
    assert len(manifest["pending_returns"]) == 3
    assert pending_keys(folder / JOURNAL) == pending_keys(source)
    assert manifest["counts"]["outbox"] == 4 and manifest["counts"]["issuances"] == 5
    # the copy's audit chain verifies against the head in the copied journal
    result = verify(folder / AUDIT_LOG, read_key(folder / "audit.key"),
                    read_head(folder / JOURNAL))
    assert result.ok and result.records == 4 and result.head_seq == 4
    assert manifest["audit"] == {"records": 4, "head_seq": 4}
    # personal data: the folder 0700, every file 0600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert verify_backup(folder).ok


def test_a_backup_taken_while_the_station_works_is_consistent(config, tmp_path) -> None:
    """The server keeps writing jobs and audit lines during the backup: the copy is one state
    of the journal, and its audit log reaches at least the head that state records."""
    data = config.data_path
    stop = threading.Event()

    def work() -> None:
        with Journal(data / JOURNAL, durable=False) as journal:
            log = AuditLog(data / "audit.jsonl", key=read_key(data / "audit.key"),
                           head=JournalHeadStore(journal))
            while not stop.is_set():
                put_in(journal, State.RETURN_QUEUED)
                log.append("window-1", "operator", "/x", None, "OK")
            log.close()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        time.sleep(0.2)
        reports = [make_backup(config, tmp_path / f"backups-{i}") for i in range(3)]
    finally:
        stop.set()
        worker.join()
    for report in reports:
        assert report.ok, report.problems
    assert len({r.manifest["counts"]["issuances"] for r in reports}) > 1  # taken mid-work


def _resign(folder: Path, name: str) -> None:
    """Make the manifest's checksum agree with a changed file, so the deeper checks must find
    the damage (an attacker, or a damaged disk that also hit the manifest)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][name]["sha256"] = sha256_of(folder / name)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_audit_tail(folder: Path) -> None:
    lines = (folder / AUDIT_LOG).read_bytes().splitlines(keepends=True)
    (folder / AUDIT_LOG).write_bytes(b"".join(lines[:-1]))
    _resign(folder, AUDIT_LOG)


def _damage_journal_page(folder: Path) -> None:
    path = folder / JOURNAL
    page = 4096
    conn = sqlite3.connect(path)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'outbox'").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page
    data[start:start + 16] = b"\x00" * 16  # the outbox table's page header
    path.write_bytes(bytes(data))
    _resign(folder, JOURNAL)


def _drop_pending_return(folder: Path) -> None:
    conn = sqlite3.connect(folder / JOURNAL)
    conn.execute("DELETE FROM outbox WHERE status = 'pending' AND id = "
                 "(SELECT MAX(id) FROM outbox)")
    conn.commit()
    conn.close()
    _resign(folder, JOURNAL)


@pytest.mark.parametrize("damage, finding", [
    (lambda f: _flip_byte(f / JOURNAL, 5000), "checksum"),
    (lambda f: _flip_byte(f / AUDIT_LOG, 40), "checksum"),
    (lambda f: (f / "audit.key").unlink(), "missing"),
    (lambda f: (f / MANIFEST).unlink(), "not a complete backup"),
    (_drop_audit_tail, "audit chain does not verify"),
    (_damage_journal_page, "journal"),
    (_drop_pending_return, "row counts"),
])
def test_a_damaged_backup_is_detected_and_never_restored(config, tmp_path, damage,
                                                         finding) -> None:
    folder = make_backup(config, tmp_path / "backups").folder
    damage(folder)
    report = verify_backup(folder)
    assert not report.ok
    assert any(finding in p for p in report.problems), report.problems
    before = sha256_of(config.data_path / JOURNAL)
    with pytest.raises(RestoreRefused, match="does not verify"):
        restore(config, folder)
    assert sha256_of(config.data_path / JOURNAL) == before  # nothing was touched
    assert not list(config.data_path.glob("replaced-*"))


def test_restore_brings_back_every_pending_return_and_keeps_the_replaced_files(
        config, tmp_path) -> None:
    data = config.data_path
    folder = make_backup(config, tmp_path / "backups").folder
    wanted = pending_keys(data / JOURNAL)
    # the journal is lost (a bad disk sector, a mistaken delete): an empty journal remains
    with Journal(data / JOURNAL, durable=False) as journal:
        for entry in Outbox(journal).pending():
            Outbox(journal).mark_delivered(entry.id, "later")
    result = restore(config, folder)
    assert pending_keys(data / JOURNAL) == wanted
    assert result.pending_returns == 3 and not result.lost_returns
    aside = Path(result.kept_aside)
    assert aside.parent == data and stat.S_IMODE(aside.stat().st_mode) == 0o700
    assert {p.name for p in aside.iterdir()} >= {JOURNAL, "audit.jsonl", "audit.key"}
    assert pending_keys(aside / JOURNAL) == []  # the replaced journal, kept as it was
    for name in (JOURNAL, "audit.jsonl", "audit.key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    # the restored station opens its journal and continues its audit chain
    with Journal(data / JOURNAL) as journal:
        assert len(Outbox(journal).pending()) == 3
        log = AuditLog(data / "audit.jsonl", key=read_key(data / "audit.key"),
                       head=JournalHeadStore(journal))
        assert log.records == 4
        log.close()


def test_restore_refuses_to_lose_a_newer_pending_return_unless_forced(config, tmp_path) -> None:
    data = config.data_path
    folder = make_backup(config, tmp_path / "backups").folder
    with Journal(data / JOURNAL, durable=False) as journal:
        newer = put_in(journal, State.RETURN_QUEUED)  # queued after the backup
    before = sha256_of(data / JOURNAL)
    with pytest.raises(RestoreRefused, match=r"1 return.*not yet acknowledged.*--force"):
        restore(config, folder)
    assert sha256_of(data / JOURNAL) == before and not list(data.glob("replaced-*"))
    result = restore(config, folder, force=True)
    assert result.lost_returns == [f"{newer.id}:return"]
    # even then it is not deleted: the replaced journal still holds it
    assert f"{newer.id}:return" in pending_keys(Path(result.kept_aside) / JOURNAL)


def test_restore_refuses_another_stations_backup_unless_forced(config, tmp_path) -> None:
    from dataclasses import replace

    folder = make_backup(config, tmp_path / "backups").folder
    other = replace(config, station=replace(config.station, id="410700-W09"))
    before = sha256_of(config.data_path / JOURNAL)
    with pytest.raises(RestoreRefused, match=r"of station 410700-T01.*410700-W09.*--force"):
        restore(other, folder)
    assert sha256_of(config.data_path / JOURNAL) == before
    assert restore(other, folder, force=True).kept_aside


# The running server, as far as the journal can tell: another process with it open, idle.
HOLDER = r"""
import sys
from cardstation.personalization.journal import Journal
journal = Journal(sys.argv[1])
print("open", flush=True)
sys.stdin.readline()
journal.close()
"""


@contextlib.contextmanager
def held_open_elsewhere(path: Path) -> Iterator[None]:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        yield
    finally:
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        child.wait(timeout=30)


def test_restore_and_compact_refuse_while_the_server_has_the_journal_open(config,
                                                                           tmp_path) -> None:
    data = config.data_path
    folder = make_backup(config, tmp_path / "backups").folder
    before = sha256_of(data / JOURNAL)
    with held_open_elsewhere(data / JOURNAL):  # the running server's connection, idle
        assert open_elsewhere(data / JOURNAL)
        with pytest.raises(JournalInUse, match="stop it first"):
            restore(config, folder)
        with pytest.raises(JournalInUse, match="stop it first"):
            compact(config)
    assert sha256_of(data / JOURNAL) == before and not list(data.glob("replaced-*"))
    assert not open_elsewhere(data / JOURNAL)  # stopped: both go ahead
    assert compact(config).pending_returns == 3
    assert restore(config, folder).pending_returns == 3


def test_compact_shrinks_the_journal_and_keeps_every_pending_return(config) -> None:
    path = config.data_path / JOURNAL
    with Journal(path, durable=False) as journal:  # free pages, as a long-running journal has
        for i in range(50):
            journal.set_meta(f"scratch-{i}", "x" * 20000)
        for i in range(50):
            journal.set_meta(f"scratch-{i}", None)
    wanted = pending_keys(path)
    result = compact(config)
    assert result.bytes_after < result.bytes_before
    assert result.pending_returns == 3 and pending_keys(path) == wanted
    with Journal(path) as journal:
        assert len(Outbox(journal).pending()) == 3


def _toml(config: Config, tmp_path: Path, retention: int = 30) -> Path:
    path = tmp_path / "cardstation.toml"
    path.write_text(f'[station]\nid = "{config.station.id}"\n'
                    f'data_dir = "{config.station.data_dir}"\n'
                    f"preview_retention_days = {retention}\n")
    return path


def test_the_commands(config, tmp_path, capsys) -> None:
    toml = _toml(config, tmp_path)
    assert main(["backup", "--to", str(tmp_path / "b"), "--config", str(toml)]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["ok"] and made["pending_returns"] == 3
    assert main(["backup", "--verify", made["backup"], "--config", str(toml)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    assert main(["compact", "--config", str(toml)]) == 0
    assert json.loads(capsys.readouterr().out)["pending_returns"] == 3
    assert main(["restore", "--from", made["backup"], "--config", str(toml)]) == 0
    assert json.loads(capsys.readouterr().out)["pending_returns"] == 3
    _flip_byte(Path(made["backup"]) / JOURNAL, 5000)
    assert main(["backup", "--verify", made["backup"], "--config", str(toml)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"] and "do not restore" in out["message"]
    assert main(["restore", "--from", made["backup"], "--config", str(toml)]) == 1
    assert "does not verify" in json.loads(capsys.readouterr().out)["message"]
    with held_open_elsewhere(config.data_path / JOURNAL):
        assert main(["compact", "--config", str(toml)]) == 1
        assert "stop it first" in json.loads(capsys.readouterr().out)["message"]
    assert main(["backup", "--config", str(toml)]) == 2  # nothing asked
    capsys.readouterr()


def test_a_backup_of_a_station_without_a_journal_says_so(tmp_path) -> None:
    with pytest.raises(BackupError, match="no journal"):
        make_backup(station_config(tmp_path), tmp_path / "b")


# -- preview retention ------------------------------------------------------------------------

DAY = 86400.0


def test_previews_of_finished_cards_past_retention_are_deleted(config, tmp_path, capsys) -> None:
    data = config.data_path
    previews = data / "previews"
    previews.mkdir()
    now = time.time()
    with Journal(data / JOURNAL, durable=False) as journal:
        jobs = {state: put_in(journal, state) for state in
                (State.DONE, State.REJECTED, State.FAILED, State.EJECTED)}
    for job in jobs.values():
        (previews / f"{job.id}.png").write_bytes(b"\x89PNG" + b"\0" * 100)
    orphan_old = previews / "gone-old.png"
    orphan_new = previews / "gone-new.png"
    for orphan in (orphan_old, orphan_new):
        orphan.write_bytes(b"\x89PNG")
    os.utime(orphan_old, (now - 40 * DAY, now - 40 * DAY))
    # 29 days after the jobs ended: within retention, only the 69-day-old orphan goes
    early = prune_previews(data, 30, clock=lambda: now + 29 * DAY)
    assert (early.deleted, early.orphans_deleted, early.kept) == (0, 1, 5)
    assert not orphan_old.exists()
    result = prune_previews(data, 30, clock=lambda: now + 31 * DAY)
    assert (result.deleted, result.orphans_deleted, result.kept) == (2, 1, 2)
    assert result.bytes_freed == 2 * 104 + 4
    left = {p.stem for p in previews.iterdir()}
    assert left == {jobs[State.FAILED].id, jobs[State.EJECTED].id}  # unfinished: kept
    # the command: `backup --prune` alone prunes only
    (previews / f"{jobs[State.DONE].id}.png").write_bytes(b"\x89PNG")
    toml = _toml(config, tmp_path, retention=0)
    assert main(["backup", "--prune", "--config", str(toml)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["previews"]["deleted"] == 1 and out["previews"]["retention_days"] == 0
    assert "backup" not in out


def test_jpeg_previews_and_older_png_ones_are_pruned_alike(config) -> None:
    """The pipeline writes <job>.jpg; a station upgraded from a version that wrote <job>.png
    still has those on disk: both go once their card is past retention, nothing else does."""
    data = config.data_path
    previews = data / "previews"
    previews.mkdir()
    now = time.time()
    with Journal(data / JOURNAL, durable=False) as journal:
        done, failed = put_in(journal, State.DONE), put_in(journal, State.FAILED)
    for name in (f"{done.id}.jpg", f"{done.id}.png", f"{failed.id}.jpg", "notes.txt"):
        (previews / name).write_bytes(b"\xff\xd8" + b"\0" * 10)
    result = prune_previews(data, 0, clock=lambda: now + DAY)
    assert (result.deleted, result.kept) == (2, 1)
    assert sorted(p.name for p in previews.iterdir()) == sorted([f"{failed.id}.jpg",
                                                                  "notes.txt"])


def test_preview_retention_days_must_not_be_negative(tmp_path) -> None:
    with pytest.raises(ConfigError, match="preview_retention_days must be >= 0"):
        Config().with_values(station={"preview_retention_days": -1})
    assert Config().station.preview_retention_days == 30


# -- on the simulated station ------------------------------------------------------------------


@pytest.mark.pcscd
def test_backup_compact_restore_lose_no_pending_return_of_real_jobs(
        world, tmp_path) -> None:
    """Cards made on the simulated station whose returns the CMS refuses for now (503): the
    returns stay pending through a backup, a compaction, the loss of the journal and its
    restore, and reach the CMS once each when it answers again."""
    from cardstation.station import build_station

    config = world.config()
    journal_path = config.data_path / JOURNAL
    ready = world.cms.samples["ready"][:3]
    world.load_blank(3)
    station = build_station(config)
    try:
        assert settled(station, station.pipeline.issue(ready[0])).state is State.DONE
        world.cms.inject("fail_returns", count=1000)
        for id_number in ready[1:]:
            job = station.pipeline.issue(id_number)
            assert job.state is State.EJECTED and job.data["reason_code"] == "RETURN_PENDING"
        station.drain_returns(0.5)  # tried, refused: still pending
        assert len(station.outbox.pending()) == 2
    finally:
        station.close()
    wanted = pending_keys(journal_path)
    assert len(wanted) == 2
    report = make_backup(config, tmp_path / "backups")
    assert report.ok and report.manifest["pending_returns"] == wanted
    assert compact(config).pending_returns == 2 and pending_keys(journal_path) == wanted
    journal_path.unlink()  # the disk lost it
    for suffix in ("-wal", "-shm"):
        journal_path.with_name(journal_path.name + suffix).unlink(missing_ok=True)
    restore(config, report.folder)
    assert pending_keys(journal_path) == wanted
    world.cms.clear_faults()
    restarted = build_station(config)
    try:
        assert restarted.drain_returns(10) == 0
        states = [settled(restarted, job).state for job in restarted.journal.issuances()]
    finally:
        restarted.close()
    assert states == [State.DONE] * 3
    for id_number in ready:
        assert len(ledger_returns(world, id_number)) == 1  # each return reached the CMS once


def test_a_backup_carries_the_data_key_its_journal_needs(config, tmp_path) -> None:
    """The journal's personal fields are sealed under data.key: a backup without it could
    not show one holder's data, so it is backed up, checked and restored with the journal."""
    data = config.data_path
    folder = make_backup(config, tmp_path / "backups").folder
    assert (folder / "data.key").read_bytes() == (data / "data.key").read_bytes()
    assert "data.key" in json.loads((folder / MANIFEST).read_text())["files"]
    # a key of another journal in the backup, or none, is found by verify
    other = tmp_path / "other"
    other.mkdir()
    Journal(other / JOURNAL, durable=False).close()
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in folder.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / "data.key").write_bytes((other / "data.key").read_bytes())
    os.chmod(broken / "data.key", 0o600)
    problems = verify_backup(broken).problems
    assert any("data.key" in p and "does not open" in p for p in problems), problems
    manifest = json.loads((broken / MANIFEST).read_text())
    del manifest["files"]["data.key"]
    (broken / MANIFEST).write_text(json.dumps(manifest))
    (broken / "data.key").unlink()
    assert any("has no data.key" in p for p in verify_backup(broken).problems)
    # restore: the key goes back with the journal (the station's own is kept aside)
    (data / "data.key").unlink()
    result = restore(config, folder)
    assert (data / "data.key").read_bytes() == (folder / "data.key").read_bytes()
    assert stat.S_IMODE((data / "data.key").stat().st_mode) == 0o600
    assert str(data / "data.key") in result.restored
    with Journal(data / JOURNAL) as journal:
        assert len(Outbox(journal).pending()) == 3
