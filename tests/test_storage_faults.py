"""Issue 17, storage: a journal locked by another program mid-print, a full disk and an empty
journal file. Each job a storage error stops ends FAILED with a reason and a remedy, keeps its
card in the printer (no other job feeds a card meanwhile) and resumes by itself once the store
can be written; nothing is claimed at the CMS that the journal cannot record; an empty or
damaged journal is refused at start, never made again over its history."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cardstation.config import Config
from cardstation.personalization.journal import Journal, JournalCorrupt, State
from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
from cardstation.protos.cardstation.v1 import station_pb2 as spb
from cardstation.protos.cardstation.v1 import station_pb2_grpc
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from tests.support.pcsc import ENCODER_READER, PSAM_READER
from tests.support.served import chips_written, final_event, issuances, ledger_returns, rpc_error

CLI = [sys.executable, "-m", "cardstation.cli"]

# A second program holding the journal's write lock (a backup tool, a database viewer): it
# takes BEGIN EXCLUSIVE, says "locked", and lets go after `hold` seconds or a line on stdin.
LOCKER = r"""
import select, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


class JournalLock:
    """The journal locked by another process until `release()` or `hold` seconds."""

    def __init__(self, path: Path, hold: float) -> None:
        self.child = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), str(hold)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.child.stdout is not None
        assert self.child.stdout.readline().strip() == "locked"
        self.at = time.monotonic()

    def release(self) -> None:
        if self.child.poll() is None:
            assert self.child.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.child.stdin.write("go\n")
                self.child.stdin.flush()
        self.child.wait(timeout=30)


def start_api(folder: Path, **station: object) -> object:
    from cardstation.commands.serve import start_server
    from cardstation.pcscd import ensure_running

    ensure_running()
    config = Config().with_values(station=station) if station else Config()
    running = start_server(config, "127.0.0.1:0", simulate=True, speed=0.0, blank_cards=6,
                           folder=str(folder))
    running.channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")  # type: ignore
    return running


def stop_api(running: object) -> None:
    from cardstation.drivers.pcsc.readers import PcscContext

    running.channel.close()  # type: ignore[attr-defined]
    running.stop()  # type: ignore[attr-defined]
    with PcscContext() as pcsc:
        for reader in (ENCODER_READER, PSAM_READER):
            pcsc.wait_for_removal(reader, timeout=10)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[object]:
    running = start_api(tmp_path)
    yield running
    stop_api(running)


def journal_path(api: object) -> Path:
    return api.runtime.journal.path  # type: ignore[attr-defined]


def others(api: object, count: int) -> list[str]:
    ready = api.simulated.cms.samples["ready"]  # type: ignore[attr-defined]
    return [i for i in ready if i != EXAMPLE_ID_NUMBER][:count]


def create(api: object, id_number: str) -> ipb.Issuance:
    return issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(id_number=id_number),
                                         timeout=30).issuance


def get(api: object, issuance_id: str) -> ipb.Issuance:
    return issuances(api).GetIssuance(ipb.GetIssuanceRequest(id=issuance_id)).issuance


def station(api: object) -> spb.Station:
    return station_pb2_grpc.StationServiceStub(api.channel).GetStation(  # type: ignore
        spb.GetStationRequest()).station


def claimed(api: object, id_number: str) -> bool:
    return id_number in api.simulated.cms.ledger(photos=False)["claims"]  # type: ignore


def storage_events(api: object, issuance_id: str, code: str) -> tuple[list, list]:
    """(the job's FAILED events with `code`, its automatic resumes), from the journal."""
    events = api.runtime.journal.events(issuance_id)  # type: ignore[attr-defined]
    failed = [e for e in events if e.to_state is State.FAILED
              and e.data.get("reason_code") == code]
    resumed = [e for e in events if e.reason.startswith("resumed automatically")]
    return failed, resumed


def reached(api: object, issuance_id: str, state: State) -> float:
    """When the job first reached `state` (journal time)."""
    events = api.runtime.journal.events(issuance_id)  # type: ignore[attr-defined]
    return min(e.at for e in events if e.to_state is state and e.from_state is not state)


def until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# -- the journal locked by another program mid-print ------------------------------------------

@pytest.mark.pcscd
def test_journal_locked_during_the_printed_commit_holds_the_lane_and_resumes(api) -> None:
    """The issue's case: locked for 15 s right after the face was printed. Before, the worker
    took the next job, which fed the printed card, found another holder on it and rejected it."""
    pipeline = api.runtime.pipeline
    model = api.simulated.model
    printed = pipeline._print
    locks: list[JournalLock] = []

    def print_then_lock(issuance) -> None:
        printed(issuance)
        if not locks:  # the first card only: its PRINTED commit meets the lock
            locks.append(JournalLock(journal_path(api), hold=15.0))

    pipeline._print = print_then_lock
    first = create(api, EXAMPLE_ID_NUMBER)
    second = create(api, others(api, 1)[0])  # queued behind it
    try:
        end = final_event(api, first.id, timeout=120)
        # the first event that ends the watch is the storage fault, with its reason and remedy
        assert end.state == ipb.ISSUANCE_STATE_FAILED, end
        assert end.reason_code == "STORAGE_UNAVAILABLE" and "lock" in end.message
        assert "by itself" in end.remedy
        assert final_event(api, second.id, timeout=120).state == ipb.ISSUANCE_STATE_DONE
    finally:
        for lock in locks:
            lock.release()
    assert until(lambda: get(api, first.id).state == ipb.ISSUANCE_STATE_DONE, 60,
                 "the first job to resume by itself and finish")
    failed, resumed = storage_events(api, first.id, "STORAGE_UNAVAILABLE")
    assert failed and resumed and resumed[0].at > failed[0].at
    # the lane held: the next card was fed only once the first one had left the printer
    assert reached(api, first.id, State.EJECTED) < reached(api, second.id, State.FED)
    assert model.reject_box == []  # no good card wrongly rejected
    assert len(model.print_log) == 2  # each face printed once: the first not printed again
    assert len(model.output_hopper) == 2
    assert sorted(chips_written(api), reverse=True)[2:] == [0] * (len(api.simulated.chips) - 2)
    assert len(ledger_returns(api, EXAMPLE_ID_NUMBER)) == 1


@pytest.mark.pcscd
def test_create_refuses_before_the_claim_while_the_journal_is_locked(api) -> None:
    applicant = others(api, 1)[0]
    lock = JournalLock(journal_path(api), hold=30.0)
    try:
        code, reason, message = rpc_error(lambda: create(api, applicant))
    finally:
        lock.release()
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")
    assert "lock" in message and "journal" in message
    assert not claimed(api, applicant)  # nothing irreversible happened
    assert final_event(api, create(api, applicant).id).state == ipb.ISSUANCE_STATE_DONE


@pytest.mark.pcscd
def test_a_job_that_cannot_be_recorded_after_the_claim_releases_the_claim(api) -> None:
    """The journal checked fine, then was locked between the CMS claim and the job's insert:
    the claim is released (the applicant is not stranded), the answer names it."""
    pipeline = api.runtime.pipeline
    database = api.runtime.journal.database
    claim = pipeline.cms.claim
    locks: list[JournalLock] = []

    def claim_then_lock(id_number: str) -> None:
        claim(id_number)
        with database.lock:  # this test's journal waits half a second for a lock, not ten
            database.timeout = 0.5
            database.conn.execute("PRAGMA busy_timeout = 500")
        locks.append(JournalLock(journal_path(api), hold=30.0))

    pipeline.cms.claim = claim_then_lock
    applicant = others(api, 1)[0]
    try:
        code, reason, message = rpc_error(lambda: create(api, applicant))
    finally:
        for lock in locks:
            lock.release()
        pipeline.cms.claim = claim
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")
    assert "claim was released" in message
    assert not claimed(api, applicant)
    assert api.runtime.journal.live_for(applicant) is None
    assert final_event(api, create(api, applicant).id).state == ipb.ISSUANCE_STATE_DONE


# -- a full disk -------------------------------------------------------------------------------

def fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (1 << 20, 4096, 1):  # then the last blocks' bytes
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * size)
    assert os.statvfs(folder).f_bavail == 0
    return filler


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/station (the simulated station's data folder) on a 48 MB tmpfs of its own."""
    data = tmp_path / "station"
    data.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root, inside its own "
                    "mount namespace)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(data)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


@pytest.mark.pcscd
def test_a_full_disk_stops_the_job_in_a_named_state_and_everything_resumes(tmp_path,
                                                                         small_disk) -> None:
    """The issue's case: 11 of 12 jobs stuck at FETCHED, one at VERIFIED with its card inside,
    none FAILED, no reason, CreateIssuance INTERNAL after the claim, nothing resumed."""
    api = start_api(tmp_path, min_free_mb=4)
    try:
        pipeline = api.runtime.pipeline
        model = api.simulated.model
        fillers: list[Path] = []

        def full_after_verify(state: State) -> None:
            if state is State.VERIFIED and not fillers:  # the card is written and inside
                fillers.append(fill(small_disk))

        pipeline.after_commit = full_after_verify
        later = others(api, 3)
        jobs = [create(api, EXAMPLE_ID_NUMBER), create(api, later[0]), create(api, later[1])]
        stopped = until(lambda: (j := get(api, jobs[0].id)).reason_code and j, 60,
                        "the first job to stop")
        assert stopped.state == ipb.ISSUANCE_STATE_FAILED
        assert stopped.reason_code == "STORAGE_FULL" and "disk is full" in stopped.cause
        assert "free space" in stopped.remedy and "by itself" in stopped.remedy
        assert list(stopped.actions) == []  # nothing to press: it resumes by itself
        # the station shows why it is stopped; the other jobs wait, no card was fed for them
        problems = until(lambda: [p for p in station(api).problems
                                  if p.reason_code == "STORAGE_FULL"], 10, "the problem")
        assert problems[0].device == "journal" and problems[0].remedy
        for job in jobs[1:]:
            assert get(api, job.id).state == ipb.ISSUANCE_STATE_QUEUED
        time.sleep(2.0)  # the lane holds: still nothing fed, nothing rejected
        assert sum(1 for n in chips_written(api) if n) == 1
        assert model.reject_box == [] and model.output_hopper == []
        assert get(api, jobs[0].id).state == ipb.ISSUANCE_STATE_FAILED
        # a new job is refused before the CMS claim, as the client's "try later"
        code, reason, message = rpc_error(lambda: create(api, later[2]))
        assert "disk" in message
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_FULL")
        assert not claimed(api, later[2])
        # space comes back: the held job's FAILED is written, it resumes, the others follow
        for path in small_disk.glob("filler*"):
            path.unlink()
        for job in jobs:
            assert until(lambda job=job: get(api, job.id).state == ipb.ISSUANCE_STATE_DONE, 90,
                         f"job {job.id[:8]} to finish")
        failed, resumed = storage_events(api, jobs[0].id, "STORAGE_FULL")
        assert failed and resumed
        assert failed[0].data["resume_from"] == State.VERIFIED.value
        ejected = reached(api, jobs[0].id, State.EJECTED)
        assert all(ejected < reached(api, job.id, State.FED) for job in jobs[1:])
        assert model.reject_box == [] and len(model.print_log) == 3
        assert station(api).ready
    finally:
        stop_api(api)


# -- an empty or damaged journal file ---------------------------------------------------------

def test_an_empty_journal_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    os.truncate(path, 0)  # what a failed copy or a full disk at the wrong moment leaves
    with pytest.raises(JournalCorrupt) as refused:
        Journal(path)
    message = str(refused.value)
    assert str(path) in message and "empty" in message
    assert "backup" in message and "move the file away" in message
    assert path.stat().st_size == 0  # not made again over the lost history


def test_an_unreadable_journal_is_refused_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "journal.sqlite"
    folder.mkdir()  # a folder where the file should be
    with pytest.raises(JournalCorrupt, match="is a folder"):
        Journal(folder)
    damaged = tmp_path / "damaged.sqlite"
    Journal(damaged).close()
    with open(damaged, "r+b") as fh:
        fh.write(b"\0" * 100)  # the header overwritten
    with pytest.raises(JournalCorrupt) as refused:
        Journal(damaged)
    assert str(damaged) in str(refused.value) and "backup" in str(refused.value)


def test_a_new_journal_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        assert journal.unfinished() == []
    # no leftovers; the data key (schema 4) beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.key", "journal.sqlite"]
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"


@pytest.mark.parametrize("command", ["serve", "run"])
def test_start_up_refuses_an_empty_journal_clearly(tmp_path: Path, command: str) -> None:
    data = tmp_path / "station"
    data.mkdir()
    (data / "journal.sqlite").touch()
    config = tmp_path / "cardstation.toml"
    config.write_text(f'[station]\ndata_dir = "{data}"\n')
    args = ["--listen", "127.0.0.1:0"] if command == "serve" else [EXAMPLE_ID_NUMBER]
    done = subprocess.run([*CLI, command, "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stdout + done.stderr
    assert str(data / "journal.sqlite") in done.stderr and "empty" in done.stderr
    assert "backup" in done.stderr
    assert (data / "journal.sqlite").stat().st_size == 0
