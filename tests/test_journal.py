"""The issuance journal on real SQLite files: transitions, idempotency, atomicity, paging."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from cardstation.personalization.journal import (
    ALLOWED,
    FORWARD,
    RESUMABLE,
    TERMINAL,
    IllegalTransition,
    Issuance,
    IssuanceNotFound,
    Journal,
    JournalCorrupt,
    JournalError,
    RequestIdConflict,
    ReturnAlreadyQueued,
    State,
)
from cardstation.personalization.model import Application
from cardstation.personalization.outbox import Outbox
from tests.support.applicants import ID_NUMBER, OTHER_ID, application, return_record
from tests.support.clock import FakeClock
from tests.support.journal import advance_to, put_in


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal(tmp_path: Path, clock: FakeClock) -> Journal:
    j = Journal(tmp_path / "journal.db", clock=clock, durable=False)
    yield j
    j.close()


def outbox_rows(path: Path, issuance_id: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE issuance_id = ?", (issuance_id,)
        ).fetchone()[0]


def test_create_is_fetched_with_a_first_event(journal: Journal, clock: FakeClock) -> None:
    iss = journal.create(application(), ID_NUMBER, client_request_id="req-1")
    assert iss.state is State.FETCHED
    assert len(iss.id) == 32 and iss.created_at == iss.updated_at == clock.now
    assert iss.application["name"] == "张三" and iss.data == {} and iss.reason == ""
    assert Application.from_dict(journal.get(iss.id).application).photo == b"\xff\xd8photo"
    [event] = journal.events(iss.id)
    assert (event.seq, event.from_state, event.to_state, event.at) == (
        1,
        None,
        State.FETCHED,
        clock.now,
    )


def test_create_is_idempotent_by_client_request_id(journal: Journal, tmp_path: Path) -> None:
    first = journal.create(application(), ID_NUMBER, client_request_id="req-1")
    again = journal.create(application(), ID_NUMBER, client_request_id="req-1")
    assert again.id == first.id
    assert journal.find_by_request_id("req-1").id == first.id
    assert journal.find_by_request_id("nope") is None
    assert len(journal.issuances()) == 1 and len(journal.events(first.id)) == 1
    with pytest.raises(RequestIdConflict):
        journal.create(application(OTHER_ID), OTHER_ID, client_request_id="req-1")
    # without a request id every create is a new issuance
    journal.create(application(), ID_NUMBER)
    journal.create(application(), ID_NUMBER)
    assert len(journal.issuances()) == 3


def test_concurrent_creates_with_one_request_id_make_one_row(tmp_path: Path) -> None:
    journals = [Journal(tmp_path / "j.db", durable=False) for _ in range(4)]  # 4 connections
    ids: list[str] = []
    barrier = threading.Barrier(8)

    def create(j: Journal) -> None:
        barrier.wait()
        ids.append(j.create(application(), ID_NUMBER, client_request_id="same").id)

    threads = [threading.Thread(target=create, args=(journals[i % 4],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(journals[0].issuances()) == 1
    for j in journals:
        j.close()


def test_forward_path_records_every_transition(journal: Journal, clock: FakeClock) -> None:
    iss = journal.create(application(), ID_NUMBER)
    for i, state in enumerate(FORWARD[1:], start=2):
        clock.advance(1)
        record = return_record() if state is State.RETURN_QUEUED else None
        iss = journal.transition(iss.id, state, data={"step": i}, return_record=record)
        assert iss.state is state and iss.updated_at == clock.now and iss.data["step"] == i
    events = journal.events(iss.id)
    assert [e.to_state for e in events] == list(FORWARD)
    assert [e.from_state for e in events] == [None, *FORWARD[:-1]]
    assert [e.seq for e in events] == list(range(1, len(FORWARD) + 1))
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert len({e.at for e in events}) == len(FORWARD)
    assert events[3].data == {"step": 4}


def _expected_legal(frm: State, to: State) -> bool:
    if frm in TERMINAL:
        return False
    if to is State.REJECTED:
        return True
    if to is State.FAILED:
        return frm is not State.FAILED
    return frm is not State.FAILED and FORWARD.index(to) == FORWARD.index(frm) + 1


@pytest.mark.parametrize("frm", [s for s in State if s is not State.FAILED])
def test_every_transition_from_a_non_failed_state(journal: Journal, frm: State) -> None:
    for to in State:
        iss = put_in(journal, frm)
        events_before = len(journal.events(iss.id))
        reason = "because" if to in (State.REJECTED, State.FAILED) else ""
        record = return_record() if to is State.RETURN_QUEUED else None
        if _expected_legal(frm, to):
            assert to in ALLOWED[frm]
            after = journal.transition(iss.id, to, reason=reason, return_record=record)
            assert after.state is to
            assert journal.events(iss.id)[-1].to_state is to
        else:
            with pytest.raises(IllegalTransition) as info:
                journal.transition(iss.id, to, reason=reason, return_record=record)
            assert info.value.from_state is frm and info.value.to_state is to
            assert f"{frm} -> {to}" in str(info.value)
            assert journal.get(iss.id).state is frm
            assert len(journal.events(iss.id)) == events_before


@pytest.mark.parametrize("failed_from", [s for s in FORWARD if s is not State.DONE])
def test_resume_from_failed(journal: Journal, failed_from: State) -> None:
    queued = FORWARD.index(failed_from) >= FORWARD.index(State.RETURN_QUEUED)
    for to in State:
        iss = put_in(journal, State.FAILED, failed_from=failed_from)
        assert iss.failed_from is failed_from and iss.reason == "test"
        rank = FORWARD.index(to) if to in FORWARD else None
        legal = to is State.REJECTED or (
            to in RESUMABLE
            and rank is not None
            and rank <= FORWARD.index(failed_from)
            and (rank >= FORWARD.index(State.RETURN_QUEUED)) == queued
        )
        reason = "operator" if to in (State.REJECTED, State.FAILED) else ""
        if legal:
            after = journal.transition(iss.id, to, reason=reason)
            assert after.state is to and after.failed_from is None
            assert after.reason == ("operator" if to is State.REJECTED else "")  # cleared
        else:
            with pytest.raises(IllegalTransition):
                journal.transition(iss.id, to, reason=reason)
            assert journal.get(iss.id).state is State.FAILED
        assert outbox_rows(journal.path, iss.id) == (1 if queued else 0)


def test_resumed_issuance_can_go_on_to_done(journal: Journal) -> None:
    iss = put_in(journal, State.FAILED, failed_from=State.PRINTED)
    iss = journal.transition(iss.id, State.RETURN_QUEUED)
    iss = advance_to(journal, iss, State.DONE)
    assert outbox_rows(journal.path, iss.id) == 1
    early = put_in(journal, State.FAILED, failed_from=State.CHIP_WRITTEN)
    early = journal.transition(early.id, State.FED)
    assert advance_to(journal, early, State.DONE).state is State.DONE


@pytest.mark.parametrize("to", [State.REJECTED, State.FAILED])
def test_reject_and_fail_need_a_reason(journal: Journal, to: State) -> None:
    iss = put_in(journal, State.FED)
    for reason in ("", "   "):
        with pytest.raises(ValueError, match="reason"):
            journal.transition(iss.id, to, reason=reason)
    after = journal.transition(iss.id, to, reason="no ATR: card inserted the wrong way")
    assert after.reason == "no ATR: card inserted the wrong way"
    assert journal.events(iss.id)[-1].reason == after.reason


def test_expect_detects_another_writer(journal: Journal) -> None:
    iss = put_in(journal, State.FED)
    other = Journal(journal.path)
    other.transition(iss.id, State.FAILED, reason="other writer")
    other.close()
    with pytest.raises(IllegalTransition, match="another writer"):
        journal.transition(iss.id, State.CHIP_WRITTEN, expect=State.FED)
    assert journal.get(iss.id).state is State.FAILED


def test_return_record_only_with_verified_to_return_queued(journal: Journal) -> None:
    iss = put_in(journal, State.VERIFIED)
    with pytest.raises(IllegalTransition, match="needs a return_record"):
        journal.transition(iss.id, State.RETURN_QUEUED)
    fed = put_in(journal, State.CHIP_WRITTEN)
    with pytest.raises(IllegalTransition, match="only accepted"):
        journal.transition(fed.id, State.VERIFIED, return_record=return_record())
    with pytest.raises(ValueError, match="another ID number"):
        journal.transition(iss.id, State.RETURN_QUEUED, return_record=return_record(OTHER_ID))
    with pytest.raises(ValueError, match="not a valid return record"):
        journal.transition(iss.id, State.RETURN_QUEUED, return_record={"id_number": ID_NUMBER})
    assert journal.get(iss.id).state is State.VERIFIED
    done = journal.transition(iss.id, State.RETURN_QUEUED, return_record=return_record())
    entry = Outbox(journal).get(done.id)
    assert entry is not None and entry.idempotency_key == f"{iss.id}:return"
    assert entry.record == return_record() and entry.status == "pending"


def test_a_second_return_record_is_refused(journal: Journal) -> None:
    first = put_in(journal, State.VERIFIED)
    journal.transition(
        first.id, State.RETURN_QUEUED, return_record=return_record(), idempotency_key="k-1"
    )
    second = put_in(journal, State.VERIFIED)
    with pytest.raises(ReturnAlreadyQueued, match="k-1"):
        journal.transition(
            second.id, State.RETURN_QUEUED, return_record=return_record(), idempotency_key="k-1"
        )
    assert journal.get(second.id).state is State.VERIFIED
    assert outbox_rows(journal.path, second.id) == 0
    # a row that is already there for the issuance (whatever put it there) refuses another one
    with sqlite3.connect(journal.path) as conn:
        conn.execute(
            "INSERT INTO outbox (issuance_id, idempotency_key, record, status, next_attempt_at, "
            "created_at, updated_at) VALUES (?, 'stray', '{}', 'pending', 0, 0, 0)",
            (second.id,),
        )
    with pytest.raises(ReturnAlreadyQueued):
        journal.transition(second.id, State.RETURN_QUEUED, return_record=return_record())
    assert journal.get(second.id).state is State.VERIFIED


def test_return_row_and_state_change_are_one_transaction(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    iss = put_in(journal, State.VERIFIED)
    events_before = journal.events(iss.id)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")  # after the UPDATE and the event, before the row

    monkeypatch.setattr(Journal, "_insert_return", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        journal.transition(
            iss.id, State.RETURN_QUEUED, data={"pan": "x"}, return_record=return_record()
        )
    monkeypatch.undo()
    fresh = Journal(journal.path)
    for j in (journal, fresh):  # this connection and a fresh one agree
        after = j.get(iss.id)
        assert after.state is State.VERIFIED and "pan" not in after.data
        assert j.events(iss.id) == events_before
    fresh.close()
    assert outbox_rows(journal.path, iss.id) == 0
    journal.transition(iss.id, State.RETURN_QUEUED, return_record=return_record())
    assert outbox_rows(journal.path, iss.id) == 1


def test_data_is_merged_and_validated(journal: Journal) -> None:
    iss = journal.create(application(), ID_NUMBER)
    iss = journal.transition(iss.id, State.PREVIEWED, data={"a": 1, "b": {"x": 1}})
    iss = journal.update_data(iss.id, {"b": {"y": 2}, "written": ["0001", "0002"]})
    assert iss.state is State.PREVIEWED
    assert iss.data == {"a": 1, "b": {"y": 2}, "written": ["0001", "0002"]}
    last = journal.events(iss.id)[-1]
    assert last.from_state is last.to_state is State.PREVIEWED
    assert last.data == {"b": {"y": 2}, "written": ["0001", "0002"]}
    for bad in ({"x": object()}, {"x": float("nan")}, ["not", "a", "dict"]):
        with pytest.raises(ValueError):
            journal.update_data(iss.id, bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            journal.transition(iss.id, State.FED, data=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        journal.create({"photo": b"bytes"}, ID_NUMBER)
    assert journal.get(iss.id).state is State.PREVIEWED
    done = put_in(journal, State.DONE)
    # facts after the end (a reprint) join the history without changing the state
    later = journal.update_data(done.id, {"reprints": 1}, reason="face reprinted")
    assert later.state is State.DONE and later.data["reprints"] == 1
    assert journal.events(done.id)[-1].reason == "face reprinted"


def test_unknown_issuance(journal: Journal) -> None:
    with pytest.raises(IssuanceNotFound) as info:
        journal.get("nope")
    assert isinstance(info.value, KeyError) and str(info.value) == "issuance nope not found"
    with pytest.raises(IssuanceNotFound):
        journal.transition("nope", State.PREVIEWED)
    with pytest.raises(IssuanceNotFound):
        journal.events("nope")
    with pytest.raises(IssuanceNotFound):
        journal.issuances(after="nope")


def test_list_pages_in_a_stable_order(journal: Journal, clock: FakeClock) -> None:
    made = []
    for i in range(11):
        if i % 3 == 0:
            clock.advance(1)  # several issuances share a created_at: id breaks the tie
        made.append(journal.create(application(), ID_NUMBER))
    expected = sorted(made, key=lambda x: (x.created_at, x.id))
    pages, after = [], None
    while page := journal.issuances(limit=4, after=after):
        pages.append(page)
        after = page[-1].id
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [x.id for p in pages for x in p] == [x.id for x in expected]
    assert journal.issuances(limit=0) == []
    for x in expected[:5]:
        journal.transition(x.id, State.PREVIEWED)
    previewed = journal.issuances(state=State.PREVIEWED, limit=2)
    assert [x.id for x in previewed] == [x.id for x in expected[:2]]
    rest = journal.issuances(state=State.PREVIEWED, after=previewed[-1].id)
    assert [x.id for x in rest] == [x.id for x in expected[2:5]]


def test_unfinished_includes_failed_not_done_or_rejected(journal: Journal) -> None:
    by_state = {s: put_in(journal, s) for s in State}
    unfinished = {x.id for x in journal.unfinished()}
    assert unfinished == {iss.id for s, iss in by_state.items() if s not in TERMINAL}
    assert by_state[State.FAILED].id in unfinished


def test_reopen_after_close_sees_everything(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "journal.db"
    j = Journal(path, clock=clock)
    queued = put_in(j, State.RETURN_QUEUED)
    failed = put_in(j, State.FAILED, failed_from=State.FED)
    j.create(application(), ID_NUMBER, client_request_id="req-9")
    events = j.events(queued.id)
    j.close()
    j.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        j.get(queued.id)
    with Journal(path) as again:
        assert again.get(queued.id) == queued
        assert again.events(queued.id) == events
        assert again.get(failed.id).failed_from is State.FED
        assert {x.id for x in again.unfinished()} >= {queued.id, failed.id}
        assert again.find_by_request_id("req-9") is not None
        assert [e.issuance_id for e in Outbox(again).pending()] == [queued.id]
    outbox = Outbox(path)
    assert [e.issuance_id for e in outbox.pending()] == [queued.id]
    outbox.close()


def test_file_is_wal_with_foreign_keys_and_a_schema_version(journal: Journal) -> None:
    with Journal(journal.path) as default:  # a station's journal syncs every commit (FULL = 2)
        assert default.database.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    with sqlite3.connect(journal.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta.pop("data_key_check").startswith('{"sealed": ')  # schema 4: the key's check
        assert meta == {"application": "cardstation-journal", "schema_version": "4"}
    with pytest.raises(sqlite3.IntegrityError):  # foreign keys on this journal's connection
        journal.database.conn.execute(
            "INSERT INTO events (issuance_id, seq, at, to_state, data) "
            "VALUES ('ghost', 1, 0, 'FETCHED', '{}')"
        )


def test_unusable_files_are_clear_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an sqlite database at all" * 200)
    with pytest.raises(JournalCorrupt, match="not a usable journal"):
        Journal(garbage)

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE songs (title TEXT)")
    with pytest.raises(JournalCorrupt, match="without a journal schema"):
        Journal(foreign)

    newer = tmp_path / "newer.db"
    Journal(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(JournalCorrupt, match="version 99"):
        Journal(newer)

    other_app = tmp_path / "other.db"
    with sqlite3.connect(other_app) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('application', 'something-else')")
    with pytest.raises(JournalCorrupt, match="something-else"):
        Journal(other_app)

    missing = tmp_path / "missing.db"
    Journal(missing).close()
    with sqlite3.connect(missing) as conn:
        conn.execute("DROP TABLE outbox")
    with pytest.raises(JournalCorrupt, match="outbox"):
        Journal(missing)


def test_damaged_json_column_is_reported(journal: Journal) -> None:
    iss = journal.create(application(), ID_NUMBER)
    with sqlite3.connect(journal.path) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute("UPDATE issuances SET data = '{broken' WHERE id = ?", (iss.id,))
    with pytest.raises(JournalCorrupt, match="invalid JSON"):
        journal.get(iss.id)


def test_repr_masks_the_id_number(journal: Journal) -> None:
    iss = journal.create(application(), ID_NUMBER)
    text = repr(iss)
    assert ID_NUMBER not in text and "110105********002X" in text and "photo" not in text


def test_threads_share_one_journal(journal: Journal) -> None:
    issuances = [journal.create(application(), ID_NUMBER) for _ in range(8)]
    errors: list[BaseException] = []

    def work(iss: Issuance) -> None:
        try:
            for i in range(5):
                journal.update_data(iss.id, {f"k{i}": i})
                journal.issuances(limit=3)
            advance_to(journal, iss, State.DONE)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(iss,)) for iss in issuances]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for iss in issuances:
        after = journal.get(iss.id)
        assert after.state is State.DONE and after.data["k4"] == 4
        assert [e.seq for e in journal.events(iss.id)] == list(range(1, 15))
