"""The counts of schema 3: rows per issuance state and per outbox status, kept by triggers, so
`state_counts` and `Outbox.summary` stay flat as the journal grows. They must always equal a
full count, after every kind of change and after migrating a version-2 journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cardstation.personalization.journal import SCHEMA_VERSION, Journal, State
from cardstation.personalization.journal_store import _split_sql
from cardstation.personalization.outbox import Outbox
from tests.support.applicants import OTHER_ID, application
from tests.support.clock import FakeClock
from tests.support.journal import put_in


def full_state_counts(path: Path) -> dict[State, int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT state, COUNT(*) FROM issuances GROUP BY state")
        return {State(s): n for s, n in rows}


def full_summary(path: Path) -> dict[str, tuple[int, float | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT status, COUNT(*), MIN(created_at) FROM outbox "
                            "GROUP BY status")
        return {s: (n, oldest) for s, n, oldest in rows}


def busy_journal(path: Path, clock: FakeClock) -> Journal:
    """A journal with issuances in many states and outbox entries in every status."""
    journal = Journal(path, clock=clock, durable=False)
    for state in (State.FETCHED, State.VERIFIED, State.FAILED, State.REJECTED, State.DONE,
                  State.DONE, State.RETURN_QUEUED, State.RETURN_QUEUED, State.PRINTED):
        put_in(journal, state)
        clock.now += 1
    outbox = Outbox(journal)
    entries = outbox.pending()
    assert len(entries) >= 4
    outbox.mark_delivered(entries[0].id, "ACK-1")
    outbox.mark_attempt_failed(entries[1].id, "CMS down", clock.now + 60, give_up=True)
    assert outbox.claim(entries[2].id, "worker", clock.now + 30) is not None
    return journal


def test_counts_equal_a_full_count_after_every_kind_of_change(tmp_path: Path) -> None:
    clock = FakeClock()
    with busy_journal(tmp_path / "journal.db", clock) as journal:
        counts = journal.state_counts()
        assert counts == full_state_counts(journal.path)
        assert counts[State.DONE] == 2 and State.EJECTED not in counts  # none: left out
        summary = Outbox(journal).summary()
        assert summary == full_summary(journal.path)
        assert set(summary) == {"pending", "delivering", "delivered", "failed"}


def test_a_rolled_back_change_leaves_the_counts(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.db", durable=False) as journal:
        journal.create(application(), OTHER_ID)
        try:
            with journal.database.write() as conn:
                conn.execute("UPDATE issuances SET state = 'DONE'")
                raise RuntimeError("abandon")
        except RuntimeError:
            pass
        assert journal.state_counts() == {State.FETCHED: 1}


def test_a_version_2_journal_is_counted_when_migrated(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    clock = FakeClock()
    busy_journal(path, clock).close()
    expected_counts, expected_summary = full_state_counts(path), full_summary(path)
    with sqlite3.connect(path) as conn:  # back to version 2: no counts, triggers or index
        triggers = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")]
        assert len(triggers) == 6
        for name in triggers:
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP INDEX outbox_oldest")
        conn.execute("DROP TABLE counts")
        conn.execute("DROP INDEX issuances_lookup")  # and none of schema 4's columns
        for column in ("id_lookup", "id_masked", "purged_at"):
            conn.execute(f"ALTER TABLE issuances DROP COLUMN {column}")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with Journal(path, clock=clock, durable=False) as journal:
        assert journal.meta("schema_version") == str(SCHEMA_VERSION)
        assert journal.state_counts() == expected_counts
        assert Outbox(journal).summary() == expected_summary
        journal.create(application(), OTHER_ID)  # and the triggers count from here on
        assert journal.state_counts()[State.FETCHED] == expected_counts[State.FETCHED] + 1


def test_split_sql_keeps_a_trigger_body_whole() -> None:
    script = ("CREATE TABLE a (x);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n"
              "  UPDATE a SET x = 1;\n  UPDATE a SET x = 2;\nEND;\nCREATE INDEX i ON a (x)\n")
    statements = _split_sql(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END")
