"""kill -9 at random points: the journal always opens and is consistent.

A child process runs a station-like loop (resume unfinished issuances, create new ones, walk them
through the states with the return record at VERIFIED -> RETURN_QUEUED, fail and resume some,
deliver returns) and is killed with SIGKILL at a random moment, 20 times over the same file.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cardstation.personalization.journal import FORWARD, Journal, State
from cardstation.personalization.outbox import Outbox, ReturnWorker

CHILD = r"""
import random, sys
from cardstation.personalization.journal import FORWARD, Journal, State
from cardstation.personalization.outbox import Outbox, ReturnWorker

ID = "11010519491231002X"
RECORD = {"card_number": "A12345678", "id_number": ID, "name": "N", "issue_date": "20240101",
          "expiry_date": "20340101", "card_id_code": "0" * 32, "atr": "3B", "bank_account": "1",
          "batch": "P"}
print("loaded", flush=True)
sys.stdin.readline()  # imports done ahead of time; open the journal when told to
rng = random.Random(int(sys.argv[2]))
journal = Journal(sys.argv[1])
worker = ReturnWorker(Outbox(journal), lambda record, key: "ack-" + key)

def step(iss):
    if iss.state is State.FAILED:
        journal.transition(iss.id, iss.failed_from)  # resume where it failed
        return
    roll = rng.random()
    if roll < 0.05:
        journal.transition(iss.id, State.FAILED, reason="printer jam")
    elif roll < 0.08:
        journal.transition(iss.id, State.REJECTED, reason="no ATR")
    elif roll < 0.2:
        journal.update_data(iss.id, {"progress": rng.random()})
    else:
        nxt = FORWARD[FORWARD.index(iss.state) + 1]
        record = RECORD if nxt is State.RETURN_QUEUED else None
        journal.transition(iss.id, nxt, data={nxt.value: True}, return_record=record)

print("ready", flush=True)
while True:
    for iss in journal.unfinished():
        step(iss)
    journal.create({"id_number": ID}, ID, client_request_id=f"r{rng.random()}")
    if rng.random() < 0.3:
        worker.run_once()
"""

QUEUED_OR_LATER = set(FORWARD[FORWARD.index(State.RETURN_QUEUED) :])


def check(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = dict(
            conn.execute("SELECT issuance_id, COUNT(*) FROM outbox GROUP BY issuance_id").fetchall()
        )
    journal = Journal(path)
    try:
        outbox = Outbox(journal)
        issuances = journal.issuances(limit=1_000_000)
        for iss in issuances:
            events = journal.events(iss.id)
            assert events[0].from_state is None and events[0].to_state is State.FETCHED
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert events[-1].to_state is iss.state, iss
            assert all(b.from_state == a.to_state for a, b in itertools.pairwise(events))
            effective = iss.failed_from if iss.state is State.FAILED else iss.state
            if effective in QUEUED_OR_LATER:
                assert rows.get(iss.id) == 1, iss
                assert outbox.get(iss.id) is not None
            elif iss.state is not State.REJECTED:
                assert iss.id not in rows, iss
            assert rows.get(iss.id, 0) <= 1
        return len(issuances), len(rows)
    finally:
        journal.close()


def test_sigkill_at_random_points_leaves_a_consistent_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def spawn(i: int) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(i)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None
        return child

    upcoming = spawn(0)
    for i in range(20):
        child = upcoming
        assert child.stdin is not None and child.stdout is not None
        assert child.stdout.readline().strip() == b"loaded"
        child.stdin.write(b"go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == b"ready"
        if i < 19:
            upcoming = spawn(i + 1)  # the next one imports while this one works
        time.sleep(rng.uniform(0.0, 0.1))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdin.close()
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        issuances, returns = check(path)
    assert issuances > 20 and returns > 0
    # the restarted station delivers every queued return at once: claims of killed workers are
    # released without waiting for their lease
    journal = Journal(path)
    outbox = Outbox(journal)
    ReturnWorker(outbox, lambda record, key: "ack").run_once()
    assert outbox.pending() == [] and len(outbox.delivered()) == returns
    journal.close()
