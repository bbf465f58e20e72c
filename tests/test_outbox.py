"""The return outbox and its worker: delivery, back-off, give-up, retry, redaction, claims."""

from __future__ import annotations

import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cardstation.personalization.journal import Journal, State
from cardstation.personalization.outbox import (
    Outbox,
    OutboxEntry,
    OutboxEntryNotFound,
    OutboxStatus,
    ReturnWorker,
    claim_owner,
)
from tests.support.applicants import ID_NUMBER
from tests.support.clock import FakeClock
from tests.support.journal import put_in


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal(tmp_path: Path, clock: FakeClock) -> Journal:
    j = Journal(tmp_path / "journal.db", clock=clock, durable=False)
    yield j
    j.close()


@pytest.fixture
def outbox(journal: Journal) -> Outbox:
    return Outbox(journal)


def queue(journal: Journal, n: int = 1) -> list[str]:
    return [put_in(journal, State.RETURN_QUEUED).id for _ in range(n)]


class Cms:
    """A fake CMS: fails the first `failures` calls, records every delivery."""

    def __init__(self, failures: int = 0, message: str = "CMS unreachable") -> None:
        self.failures = failures
        self.message = message
        self.calls: list[tuple[dict, str]] = []

    def __call__(self, record: dict, key: str) -> str:
        self.calls.append((record, key))
        if self.failures:
            self.failures -= 1
            raise ConnectionError(self.message)
        return f"ack-{len(self.calls)}"


def test_worker_delivers_once_with_the_idempotency_key(
    journal: Journal, outbox: Outbox, clock: FakeClock
) -> None:
    [iid] = queue(journal)
    delivered: list[OutboxEntry] = []
    cms = Cms()
    worker = ReturnWorker(outbox, cms, clock=clock, on_delivered=delivered.append)
    assert [e.issuance_id for e in outbox.due()] == [iid]
    assert worker.run_once() == 1
    assert cms.calls == [(outbox.get(iid).record, f"{iid}:return")]
    assert cms.calls[0][0]["id_number"] == ID_NUMBER
    entry = outbox.get(iid)
    assert entry is not None and entry.status is OutboxStatus.DELIVERED
    assert entry.ack == "ack-1" and entry.delivered_at == clock.now and entry.lease_until is None
    assert [e.id for e in delivered] == [entry.id] and delivered[0].ack == "ack-1"
    assert outbox.pending() == [] and [e.id for e in outbox.delivered()] == [entry.id]
    clock.advance(10_000)
    assert worker.run_once() == 0 and len(cms.calls) == 1


def test_backoff_is_exponential_within_jitter_bounds(
    journal: Journal, outbox: Outbox, clock: FakeClock
) -> None:
    [iid] = queue(journal)
    cms = Cms(failures=100)
    failed: list[OutboxEntry] = []
    worker = ReturnWorker(
        outbox,
        cms,
        base_delay=2.0,
        max_delay=60.0,
        jitter=0.25,
        clock=clock,
        rng=random.Random(7),
        on_failed=failed.append,
    )
    for attempt in range(1, 9):
        assert worker.run_once() == 0
        entry = outbox.get(iid)
        assert entry.status is OutboxStatus.PENDING and entry.attempts == attempt
        nominal = min(60.0, 2.0 * 2 ** (attempt - 1))
        delay = entry.next_attempt_at - clock.now
        assert nominal * 0.75 <= delay <= nominal * 1.25, (attempt, delay)
        assert entry.last_error == "CMS unreachable"
        # not due a moment before, due at the time
        clock.advance(delay - 0.001)
        assert worker.run_once() == 0 and len(cms.calls) == attempt
        clock.advance(0.001)
    assert len(failed) == 8 and all(e.status is OutboxStatus.PENDING for e in failed)


def test_delay_samples_cover_the_jitter_range(outbox: Outbox) -> None:
    worker = ReturnWorker(outbox, Cms(), base_delay=1.0, max_delay=300.0, jitter=0.2)
    for attempts, nominal in ((1, 1.0), (2, 2.0), (5, 16.0), (9, 256.0), (10, 300.0), (500, 300)):
        samples = [worker.delay(attempts) for _ in range(300)]
        assert all(nominal * 0.8 <= s <= nominal * 1.2 for s in samples)
        assert max(samples) - min(samples) > nominal * 0.2  # really jittered
    assert ReturnWorker(outbox, Cms(), jitter=0.0).delay(3) == 4.0


def test_gives_up_after_max_attempts_and_retry_now_brings_it_back(
    journal: Journal, outbox: Outbox, clock: FakeClock
) -> None:
    [iid] = queue(journal)
    cms = Cms(failures=3)
    failed: list[OutboxEntry] = []
    worker = ReturnWorker(
        outbox, cms, base_delay=1.0, max_attempts=3, clock=clock, on_failed=failed.append
    )
    for _ in range(3):
        worker.run_once()
        clock.advance(1000)
    entry = outbox.get(iid)
    assert entry.status is OutboxStatus.FAILED and entry.attempts == entry.total_attempts == 3
    assert [e.status for e in failed] == ["pending", "pending", "failed"]
    assert outbox.pending() == [] and [e.id for e in outbox.failed()] == [entry.id]
    clock.advance(1_000_000)
    assert outbox.due() == [] and worker.run_once() == 0 and len(cms.calls) == 3

    assert outbox.retry_now() == 1
    entry = outbox.get(iid)
    assert entry.status is OutboxStatus.PENDING and entry.attempts == 0
    assert entry.total_attempts == 3 and entry.next_attempt_at == clock.now
    assert worker.run_once() == 1
    assert outbox.get(iid).status is OutboxStatus.DELIVERED
    assert outbox.retry_now() == 0  # delivered entries are left alone


def test_retry_now_selected_entries(journal: Journal, outbox: Outbox, clock: FakeClock) -> None:
    ids = queue(journal, 3)
    entries = [outbox.get(i) for i in ids]
    for e in entries:
        outbox.mark_attempt_failed(e.id, "down", clock.now + 500, give_up=True)
    assert outbox.retry_now([entries[0].id, entries[2].id]) == 2
    assert [e.status for e in (outbox.entry(x.id) for x in entries)] == [
        "pending",
        "failed",
        "pending",
    ]
    assert outbox.retry_now([]) == 0
    outbox.mark_attempt_failed(entries[0].id, "down", clock.now + 500)
    assert outbox.due() == [outbox.entry(entries[2].id)]
    assert outbox.retry_now() == 3  # pending ones are made due now as well
    assert len(outbox.due()) == 3


def test_delivery_errors_are_redacted(
    journal: Journal, outbox: Outbox, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    [iid] = queue(journal)
    message = f"CMS rejected holder {ID_NUMBER} account 6222021234567890123"
    worker = ReturnWorker(outbox, Cms(failures=1, message=message), clock=clock)
    with caplog.at_level(logging.DEBUG):
        worker.run_once()
    entry = outbox.get(iid)
    assert ID_NUMBER not in entry.last_error and "6222021234567890123" not in entry.last_error
    assert "110105********002X" in entry.last_error and "622202*********0123" in entry.last_error
    assert ID_NUMBER not in caplog.text and "110105********002X" in caplog.text
    # mark_attempt_failed redacts whatever it is given, too
    outbox.mark_attempt_failed(entry.id, f"raw {ID_NUMBER}", clock.now)
    assert ID_NUMBER not in outbox.get(iid).last_error


def test_an_empty_ack_or_a_callback_error_does_not_lose_anything(
    journal: Journal, outbox: Outbox, clock: FakeClock
) -> None:
    [a, b] = queue(journal, 2)

    def deliver(record: dict, key: str) -> str | None:
        return None if key.startswith(a) else "ok"

    def broken(entry: OutboxEntry) -> None:
        raise RuntimeError("callback bug")

    worker = ReturnWorker(outbox, deliver, clock=clock, on_delivered=broken, on_failed=broken)
    assert worker.run_once() == 1
    assert outbox.get(a).status is OutboxStatus.PENDING
    assert "no acknowledgement" in outbox.get(a).last_error
    assert outbox.get(b).status is OutboxStatus.DELIVERED


def test_mark_delivered_is_final_and_unknown_entries_raise(
    journal: Journal, outbox: Outbox, clock: FakeClock
) -> None:
    [iid] = queue(journal)
    entry = outbox.get(iid)
    outbox.mark_delivered(entry.id, "first")
    outbox.mark_delivered(entry.id, "second")
    outbox.mark_attempt_failed(entry.id, "late worker", clock.now + 5, give_up=True)
    after = outbox.entry(entry.id)
    assert after.status is OutboxStatus.DELIVERED and after.ack == "first"
    assert after.attempts == 0 and after.last_error == ""
    with pytest.raises(OutboxEntryNotFound):
        outbox.mark_delivered(9999, "x")
    with pytest.raises(OutboxEntryNotFound):
        outbox.mark_attempt_failed(9999, "x", clock.now)
    with pytest.raises(OutboxEntryNotFound):
        outbox.entry(9999)
    with pytest.raises(ValueError):
        outbox.mark_attempt_failed(entry.id, "x", float("nan"))
    assert outbox.get("no-such-issuance") is None


def test_a_claim_holds_until_its_lease_expires(
    journal: Journal, outbox: Outbox, clock: FakeClock
) -> None:
    """A worker that died mid-delivery: its claim blocks others until the lease runs out."""
    [iid] = queue(journal)
    entry = outbox.get(iid)
    claimed = outbox.claim(entry.id, "dead-worker", clock.now + 60)
    assert claimed is not None and claimed.status is OutboxStatus.DELIVERING
    assert claimed.claimed_by == "dead-worker"
    assert outbox.claim(entry.id, "other", clock.now + 60) is None
    assert outbox.next_due_at() == clock.now + 60

    # the station restarts: a new connection sees the claim, and waits for the lease
    journal.close()
    again = Journal(journal.path, clock=clock, durable=False)
    reopened = Outbox(again)
    assert [e.status for e in reopened.pending()] == ["delivering"]
    cms = Cms()
    worker = ReturnWorker(reopened, cms, clock=clock)
    assert worker.run_once() == 0 and cms.calls == []
    clock.advance(60)
    assert [e.id for e in reopened.due()] == [entry.id]
    assert worker.run_once() == 1 and len(cms.calls) == 1
    done = reopened.get(iid)
    assert done.status is OutboxStatus.DELIVERED and done.claimed_by == worker.worker_id
    assert done.attempts == 0  # a crashed delivery is not a recorded failure
    again.close()


def test_claims_of_dead_local_processes_are_released_at_once(
    journal: Journal, outbox: Outbox, clock: FakeClock
) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    host = socket.gethostname()
    owners = {
        "dead pid": f"{host}:{dead_pid}:feedface0000:return-worker-1",
        "same pid, earlier process": f"{host}:{os.getpid()}:0123456789ab:return-worker-1",
        "this process": claim_owner("other-worker"),
        "live pid": f"{host}:{os.getppid()}:0123456789ab:return-worker-1",
        "other host": f"not-{host}:{dead_pid}:feedface0000:return-worker-1",
        "unrecognised": "dead-worker",
    }
    ids = dict(zip(owners, queue(journal, len(owners)), strict=True))
    for label, owner in owners.items():
        assert outbox.claim(outbox.get(ids[label]).id, owner, clock.now + 300) is not None
    cms = Cms()
    worker = ReturnWorker(outbox, cms, clock=clock)
    assert worker.run_once() == 2
    delivered = {e.issuance_id for e in outbox.delivered()}
    assert delivered == {ids["dead pid"], ids["same pid, earlier process"]}
    assert outbox.release_dead_claims() == 0
    clock.advance(300)  # the others wait for their lease
    assert worker.run_once() == 4


def test_two_workers_never_deliver_the_same_entry(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path, durable=False)
    ids = queue(journal, 30)
    in_flight: set[str] = set()
    deliveries: list[str] = []
    overlaps: list[str] = []
    guard = threading.Lock()

    def deliver(record: dict, key: str) -> str:
        with guard:
            if key in in_flight:
                overlaps.append(key)
            in_flight.add(key)
        time.sleep(0.001)
        with guard:
            in_flight.discard(key)
            deliveries.append(key)
        return "ok"

    # two workers in two threads, each with its own connection to the file
    outboxes = [Outbox(path, durable=False), Outbox(path, durable=False)]
    workers = [ReturnWorker(o, deliver) for o in outboxes]
    barrier = threading.Barrier(2)

    def run(worker: ReturnWorker) -> None:
        barrier.wait()
        for _ in range(3):
            worker.run_once()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    assert sorted(deliveries) == sorted(f"{i}:return" for i in ids)
    assert len(Outbox(journal).delivered()) == 30
    for o in outboxes:
        o.close()
    journal.close()


def test_background_thread_delivers_and_wakes(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db", durable=False)
    outbox = Outbox(journal)
    done = threading.Event()
    worker = ReturnWorker(outbox, Cms(), poll_interval=30.0, on_delivered=lambda e: done.set())
    worker.start()
    worker.start()  # no second thread
    try:
        assert worker.running
        queue(journal)
        worker.wake()
        assert done.wait(5)
        done.clear()
        # a failed entry re-queued by hand is picked up after wake(), not after the 30 s poll
        [iid] = queue(journal)
        entry = outbox.get(iid)
        claimed = outbox.claim(entry.id, "me", time.time() + 60)
        assert claimed is not None
        outbox.mark_attempt_failed(entry.id, "down", time.time() + 3600, give_up=True)
        assert outbox.retry_now() == 1
        worker.wake()
        assert done.wait(5)
    finally:
        worker.stop(timeout=5)
    assert not worker.running
    assert len(outbox.delivered()) == 2
    journal.close()


def test_outbox_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path, clock=clock, durable=False)
    ids = queue(journal, 3)
    first = Outbox(journal)
    first.mark_delivered(first.get(ids[0]).id, "ack")
    first.mark_attempt_failed(first.get(ids[1]).id, "down", clock.now + 30)
    journal.close()
    outbox = Outbox(path, clock=clock)
    assert [e.issuance_id for e in outbox.pending()] == ids[1:]
    assert [e.issuance_id for e in outbox.delivered()] == ids[:1]
    assert [e.issuance_id for e in outbox.due()] == ids[2:]
    assert [e.issuance_id for e in outbox.due(clock.now + 30)] == [ids[2], ids[1]]  # by schedule
    assert outbox.all()[1].last_error == "down"
    outbox.close()


def test_worker_rejects_bad_settings(outbox: Outbox) -> None:
    for kwargs in ({"jitter": 1.5}, {"base_delay": -1}, {"max_attempts": 0}, {"lease": 0}):
        with pytest.raises(ValueError):
            ReturnWorker(outbox, Cms(), **kwargs)
