"""The command-line clients against `cardstation serve --simulate` in another process, and
graceful shutdown: a stop parks the job between steps and the next start resumes it."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import threading

import pytest

from cardstation.personalization.journal import State
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from tests.support.pcsc import ENCODER_READER, PSAM_READER
from tests.support.world import make_world

pytestmark = pytest.mark.pcscd
CLI = [sys.executable, "-m", "cardstation"]


def test_serve_issue_watch_list_station_returns_and_sigterm(pcsc_context, tmp_path) -> None:
    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=10)
    serve = subprocess.Popen([*CLI, "serve", "--simulate", "--listen", "127.0.0.1:0",
                              "--speed", "0", "--folder", str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = serve.stdout.readline()
        assert first.startswith("listening on 127.0.0.1:"), first + serve.stderr.read()
        server = ["--server", first.split()[-1]]
        issued = subprocess.run([*CLI, "issue", EXAMPLE_ID_NUMBER, "--watch", *server],
                                capture_output=True, text=True, timeout=120)
        assert issued.returncode == 0, issued.stdout + issued.stderr
        lines = issued.stdout.strip().splitlines()
        states = [line.split()[0] for line in lines]
        assert {"FED", "CHIP_WRITTEN", "PRINTED"} <= set(states) and states[-1] == "DONE"
        assert EXAMPLE_ID_NUMBER not in issued.stdout
        listed = subprocess.run([*CLI, "issuances", *server], capture_output=True, text=True,
                                timeout=30)
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [r["state"] for r in rows] == ["ISSUANCE_STATE_DONE"]
        station = json.loads(subprocess.run([*CLI, "station", *server], capture_output=True,
                                            text=True, timeout=30).stdout)
        assert {d["name"] for d in station["devices"]} >= {"printer", "encoder", "psam"}
        returns = subprocess.run([*CLI, "returns", "--retry", *server], capture_output=True,
                                 text=True, timeout=30)
        assert returns.returncode == 0 and '"scheduled"' in returns.stdout
        missing = subprocess.run([*CLI, "issue", "110105194912310038", *server],
                                 capture_output=True, text=True, timeout=30)
        assert missing.returncode == 1
        assert json.loads(missing.stderr)["reason"] == "APPLICATION_NOT_FOUND"
    finally:
        serve.send_signal(signal.SIGTERM)
        out, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0 and "stopping" in out
    audit = subprocess.run([*CLI, "audit", "verify", "--file",
                            str(tmp_path / "station" / "audit.jsonl")],
                           capture_output=True, text=True, timeout=30)
    assert audit.returncode == 0 and json.loads(audit.stdout)["records"] >= 2
    assert json.loads(audit.stdout)["head_seq"] == json.loads(audit.stdout)["records"]
    station_dir = tmp_path / "station"  # personal data and the audit key: owner only
    assert stat.S_IMODE(station_dir.stat().st_mode) == 0o700
    for name in ("journal.sqlite", "audit.jsonl", "audit.key"):
        assert stat.S_IMODE((station_dir / name).stat().st_mode) == 0o600, name
    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=10)


def test_serve_refuses_a_non_loopback_address_without_tls(tmp_path) -> None:
    result = subprocess.run([*CLI, "serve", "--listen", "0.0.0.0:0"], capture_output=True,
                            text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 2
    assert "TLS" in result.stderr


def test_shutdown_parks_between_steps_and_restart_resumes(pcsc_context, tmp_path) -> None:
    from cardstation.server.audit import AuditLog
    from cardstation.server.audit_key import load_or_create_key
    from cardstation.server.runtime import StationRuntime
    from cardstation.station import build_station

    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=10)
    world = make_world(tmp_path)
    try:
        pcsc_context.wait_for_card(PSAM_READER, timeout=10)
        (chip,) = world.load_blank()
        config = world.config()
        first = StationRuntime(lambda **kw: build_station(config, **kw)).start()
        reached = threading.Event()

        def sigterm_at_chip_written(issuance, message) -> None:
            if issuance.state is State.CHIP_WRITTEN:
                first.pipeline.park.set()  # what SIGTERM does, mid-job
                reached.set()

        original = first.pipeline.on_event
        first.pipeline.on_event = lambda i, m, f=None, c=False: (
            original(i, m, f, c), sigterm_at_chip_written(i, m))
        issuance = first.pipeline.create(EXAMPLE_ID_NUMBER)
        first.enqueue(issuance.id).wait(60)
        assert reached.is_set()
        first.stop()
        audit = AuditLog(tmp_path / "audit.jsonl", key=load_or_create_key(tmp_path / "audit.key"))
        second = StationRuntime(lambda **kw: build_station(config, **kw), audit=audit)
        assert second.journal.get(issuance.id).state is State.CHIP_WRITTEN  # parked, not failed
        second.start()  # resumes unfinished jobs: an automatic rule, audited
        (record,) = [json.loads(line) for line in audit.path.read_text().splitlines()]
        assert (record["who"], record["role"], record["method"], record["issuance_id"]) == (
            "station", "system", "rule:restart-recovery", issuance.id)
        for _ in range(300):
            if second.journal.get(issuance.id).state is State.DONE:
                break
            threading.Event().wait(0.1)
        assert second.journal.get(issuance.id).state is State.DONE
        second.stop()
        audit.close()
        assert all(n == 1 for n in chip.writes.values())  # nothing written twice
        returns = [r for r in world.cms.ledger(photos=False)["returns"]
                   if r["record"]["id_number"] == EXAMPLE_ID_NUMBER]
        assert len(returns) == 1
    finally:
        world.stop()
        for reader in (ENCODER_READER, PSAM_READER):
            pcsc_context.wait_for_removal(reader, timeout=10)
