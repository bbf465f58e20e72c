"""Personal data at rest (issue 17 item 5): sealed rows, the data key, migration v4, rotation."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cardstation.personalization.datakey import KeyFile
from cardstation.personalization.journal import Journal, JournalKeyRefused
from cardstation.personalization.journal_store import _SCHEMA_V3, _split_sql
from cardstation.personalization.outbox import Outbox
from tests.support.data_at_rest import (
    BANK,
    ID_NUMBER,
    NAME,
    PHOTO,
    application,
    assert_sealed_at_rest,
    file_bytes,
    make_done,
    needles,
    record,
)

# -- sealed at rest -----------------------------------------------------------------------------

def test_personal_fields_are_sealed_on_disk_and_open_through_the_api(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, durable=False) as journal:
        done = make_done(journal)
        # the open journal's WAL, checkpointed: still nothing in clear
        journal.database.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert_sealed_at_rest(path)
        iss = journal.get(done)
        assert iss.id_number == ID_NUMBER and iss.application["name"] == NAME
        assert base64.b64decode(iss.application["photo"]) == PHOTO
        assert iss.data["chip"]["bank_account"] == BANK
        assert journal.live_for(ID_NUMBER) is None
        assert [i.id for i in journal.history_for(ID_NUMBER)] == [done]
        assert [i.id for i in journal.issuances(id_number=ID_NUMBER)] == [done]
        chip_event = [e for e in journal.events(done) if "chip" in e.data]
        assert chip_event[0].data["chip"]["bank_account"] == BANK
        assert Outbox(journal).get(done).record["bank_account"] == BANK
    assert_sealed_at_rest(path)
    conn = sqlite3.connect(path)  # the clear facts the report reads without the key
    masked, app = conn.execute("SELECT id_masked, application FROM issuances").fetchone()
    conn.close()
    assert masked == "410702********987X"
    assert json.loads(app)["card_number"] == "A98765432"


def test_one_live_job_per_applicant_holds_with_sealed_numbers(tmp_path: Path) -> None:
    from cardstation.personalization.journal import LiveIssuanceExists, RequestIdConflict

    with Journal(tmp_path / "journal.sqlite", durable=False) as journal:
        first, created = journal.open_issuance(application(), ID_NUMBER, "req-1")
        assert created
        with pytest.raises(LiveIssuanceExists):
            journal.open_issuance(application(), ID_NUMBER)
        other = "110105194912310021"
        with pytest.raises(RequestIdConflict):
            journal.open_issuance(application(other), other, "req-1")
        assert journal.open_issuance(application(), ID_NUMBER, "req-1") == (first, False)
        assert journal.live_for(ID_NUMBER) == first


# -- tampering and keys ------------------------------------------------------------------------

def test_a_sealed_value_moved_to_another_row_does_not_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, durable=False) as journal:
        a = journal.create(application(), ID_NUMBER)
        b = journal.create(application("110105194912310021", "李四"), "110105194912310021")
        with sqlite3.connect(path) as conn:  # a's sealed application copied over b's
            conn.execute("UPDATE issuances SET application = (SELECT application FROM "
                         "issuances WHERE id = ?) WHERE id = ?", (a.id, b.id))
        assert journal.get(a.id).application["name"] == NAME
        with pytest.raises(JournalKeyRefused) as refused:
            journal.get(b.id)
    message = str(refused.value)
    assert f"issuances/application/{b.id}" in message and "moved from another row" in message
    assert NAME not in message and ID_NUMBER not in message


def test_a_missing_key_is_refused_at_start_never_made_again(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, durable=False) as journal:
        journal.create(application(), ID_NUMBER)
    (tmp_path / "data.key").unlink()
    with pytest.raises(JournalKeyRefused, match=r"data\.key.*does not exist.*backup"):
        Journal(path)
    assert not (tmp_path / "data.key").exists()  # no new key over sealed rows


def test_a_key_open_to_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path, durable=False).close()
    os.chmod(tmp_path / "data.key", 0o644)
    with pytest.raises(JournalKeyRefused, match=r"readable by other users.*chmod 600"):
        Journal(path)


def test_another_journals_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, durable=False) as journal:
        journal.create(application(), ID_NUMBER)
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    Journal(elsewhere / "journal.sqlite", durable=False).close()
    os.replace(elsewhere / "data.key", tmp_path / "data.key")
    with pytest.raises(JournalKeyRefused, match=r"does not hold|not this journal.s"):
        Journal(path)


def test_serve_refuses_a_missing_key_with_a_message(tmp_path: Path) -> None:
    data = tmp_path / "station"
    data.mkdir(mode=0o700)
    with Journal(data / "journal.sqlite", durable=False) as journal:
        journal.create(application(), ID_NUMBER)
    (data / "data.key").unlink()
    config = tmp_path / "cardstation.toml"
    config.write_text(f'[station]\ndata_dir = "{data}"\n')
    done = subprocess.run([sys.executable, "-m", "cardstation", "serve", "--config",
                           str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "data.key" in done.stderr and "backup" in done.stderr
    assert "Traceback" not in done.stderr


# -- migration v4 ------------------------------------------------------------------------------

def v3_journal(path: Path, jobs: int) -> list[str]:
    """A journal as schema 3 made it (clear rows), built from that schema's own text."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in _split_sql(_SCHEMA_V3):
        conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('application', 'cardstation-journal'), "
                 "('schema_version', '3')")
    ids = []
    for n in range(jobs):
        iid = f"job{n:04d}"
        ids.append(iid)
        state = "DONE" if n % 2 else "FETCHED"
        conn.execute("INSERT INTO issuances (id, client_request_id, id_number, state, "
                     "application, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (iid, f"auto-{iid}", ID_NUMBER if n == 0 else f"41070219800101{n:04d}",
                      state, json.dumps(application(), ensure_ascii=False),
                      json.dumps({"chip": {"bank_account": BANK}, "spoiled": False}),
                      1000.0 + n, 1000.0 + n))
        conn.execute("INSERT INTO events (issuance_id, seq, at, to_state, data) "
                     "VALUES (?, 1, ?, 'FETCHED', ?)",
                     (iid, 1000.0 + n, json.dumps({"chip": {"bank_account": BANK}})))
        if n % 2:
            conn.execute("INSERT INTO outbox (issuance_id, idempotency_key, record, status, "
                         "next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, "
                         "'delivered', 0, 0, 0)",
                         (iid, f"{iid}:return", json.dumps(record(), ensure_ascii=False)))
    conn.close()
    return ids


def test_a_version_3_journal_is_sealed_in_place(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    ids = v3_journal(path, 450)  # more than two batches
    assert needles()["bank account"] in file_bytes(path)  # the fault: all in clear
    with Journal(path, durable=False) as journal:
        assert journal.meta("schema_version") == "4"
        first = journal.get(ids[0])
        assert first.id_number == ID_NUMBER and first.application["name"] == NAME
        assert first.data == {"chip": {"bank_account": BANK}, "spoiled": False}
        assert journal.live_for(ID_NUMBER).id == ids[0]
        assert journal.events(ids[1])[0].data["chip"]["bank_account"] == BANK
        assert Outbox(journal).get(ids[1]).record["name"] == NAME
        assert len(journal.issuances(limit=1000)) == 450
    assert_sealed_at_rest(path)


def run_until_killed(script: str) -> None:
    """Run `script` in a new interpreter that kills itself (kill -9) where it says."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_a_migration_killed_halfway_resumes(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    ids = v3_journal(path, 450)
    script = (
        "import os, sys\n"
        "from cardstation.personalization import sealed_rows\n"
        "real = sealed_rows._issuance\n"
        "seen = [0]\n"
        "def killing(conn, keys, row):\n"
        "    seen[0] += 1\n"
        "    if seen[0] == 250: os.kill(os.getpid(), 9)\n"
        "    real(conn, keys, row)\n"
        "sealed_rows._issuance = killing\n"
        "sealed_rows._ROW['issuances'] = killing\n"
        "from cardstation.personalization.journal import Journal\n"
        f"Journal({str(path)!r}, durable=False)\n"
    )
    run_until_killed(script)
    conn = sqlite3.connect(path)
    sealed = conn.execute("SELECT COUNT(*) FROM issuances WHERE id_lookup IS NOT NULL").fetchone()
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    conn.close()
    assert sealed[0] == 200 and version[0] == "4"  # one batch committed, the next lost whole
    with Journal(path, durable=False) as journal:
        assert all(journal.get(i).application["name"] == NAME for i in ids)
        assert journal.meta("reseal") is None
    assert_sealed_at_rest(path)


# -- rotation ----------------------------------------------------------------------------------

def test_rotation_killed_in_the_middle_resumes_and_drops_the_old_key(tmp_path: Path) -> None:
    from cardstation.datakeys import rotate, status

    path = tmp_path / "journal.sqlite"
    with Journal(path, durable=False) as journal:
        ids = [make_done(journal, f"41070219800101{n:04d}") for n in range(30)]
    old = KeyFile.beside(path).load().current
    script = (
        "import os\n"
        "from pathlib import Path\n"
        "from cardstation.datakeys import rotate\n"
        "def progress(table, done, total):\n"
        "    if table == 'events': os.kill(os.getpid(), 9)\n"
        f"rotate(Path({str(path)!r}), progress=progress, batch=10)\n"
    )
    run_until_killed(script)
    halfway = KeyFile.beside(path).load()
    assert halfway.current != old and halfway.old == [old]  # both kept while rows need both
    assert status(path)["keys_in_use"] == sorted({old, halfway.current})
    with Journal(path, durable=False) as journal:  # every row opens meanwhile
        assert all(journal.get(i).data["chip"]["bank_account"] == BANK for i in ids)
        assert all(journal.events(i) for i in ids)
    result = rotate(path, batch=10)
    assert result.resumed and result.current == halfway.current and result.dropped == [old]
    keys = KeyFile.beside(path).load()
    assert keys.old == [] and list(keys.keys) == [halfway.current]
    assert status(path)["keys_in_use"] == [halfway.current]
    with Journal(path, durable=False) as journal:
        assert all(journal.get(i).data["chip"]["bank_account"] == BANK for i in ids)
        assert journal.history_for("41070219800101" + "0003")[0].id == ids[3]
        assert Outbox(journal).get(ids[0]).record["bank_account"] == BANK
        assert all(len(journal.events(i)) == 9 for i in ids)


# -- doctor and the status command -------------------------------------------------------------

def test_doctor_reports_the_data_key(tmp_path: Path) -> None:
    from cardstation.config import Config
    from cardstation.doctor import FAIL, OK, Row, _data_key

    config = Config().with_values(station={"data_dir": str(tmp_path)})

    def row() -> Row:
        rows: list[Row] = []
        _data_key(config, rows)
        return rows[0]

    assert row().status == OK and "first start" in row().detail  # a new station
    Journal(tmp_path / "journal.sqlite", durable=False).close()
    assert row().status == OK and "0600" in row().detail
    os.chmod(tmp_path / "data.key", 0o640)
    assert row().status == FAIL and "chmod 600" in row().detail
    (tmp_path / "data.key").unlink()
    missing = row()
    assert missing.status == FAIL and "missing" in missing.detail
    assert "backup" in missing.remedy["en"]


def test_datakey_status_and_rotate_commands(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    from cardstation.cli import main

    data = tmp_path / "station"
    data.mkdir(mode=0o700)
    with Journal(data / "journal.sqlite", durable=False) as journal:
        make_done(journal)
    config = tmp_path / "cardstation.toml"
    config.write_text(f'[station]\ndata_dir = "{data}"\n')
    assert main(["datakey", "status", "--config", str(config)]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["mode"] == "0600" and before["keys_in_use"] == [before["current"]]
    assert main(["datakey", "rotate", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    rotated = json.loads(captured.out)
    assert rotated["ok"] and rotated["dropped"] == [before["current"]]
    assert "datakey rotate: issuances 1/1" in captured.err
    assert main(["datakey", "status", "--config", str(config)]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["keys_in_use"] == [rotated["current"]] and after["old"] == []
    assert ID_NUMBER not in captured.err


def test_rotation_is_refused_while_another_program_has_the_journal_open(tmp_path: Path) -> None:
    from cardstation.datakeys import rotate
    from cardstation.personalization.journal import JournalInUse

    path = tmp_path / "journal.sqlite"
    Journal(path, durable=False).close()
    before = (tmp_path / "data.key").read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from cardstation.personalization.journal import Journal\n"
         f"j = Journal({str(path)!r})\nprint('open', flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(JournalInUse, match="stop it"):
            rotate(path)
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / "data.key").read_bytes() == before  # no key added
