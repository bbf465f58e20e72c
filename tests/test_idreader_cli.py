"""`cardstation read-id` and `cardstation sim idreader` (run as a subprocess on a real pty)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardstation.commands import read_id
from cardstation.drivers.idreader import Ga467Reader
from cardstation.simulators.idreader import SAMPLE_ID_NUMBER, IdReaderSimulator
from cardstation.simulators.idreader.model import id_check_char

ROOT = Path(__file__).resolve().parent.parent
OTHER_ID = "11010819900515002"
OTHER_ID += id_check_char(OTHER_ID)  # generated, female


def run_read_id(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    parser = argparse.ArgumentParser(prog="cardstation")
    read_id.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["read-id", *argv])
    code = args.func(args)
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.fixture
def sim() -> Iterator[IdReaderSimulator]:
    s = IdReaderSimulator()
    s.start()
    yield s
    s.stop()


def test_read_id_masks_by_default(sim: IdReaderSimulator,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_read_id(["--port", sim.path or ""], capsys)
    assert code == 0
    assert out["id_number"] == "110105********002X"
    assert out["name"] == "李秀英" and out["sex_label"] == "女" and out["nation_label"] == "汉族"
    assert out["photo_wlt_bytes"] == 1024
    assert SAMPLE_ID_NUMBER not in json.dumps(out)


def test_read_id_show_id(sim: IdReaderSimulator, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_read_id(["--port", sim.path or "", "--show-id", "--fingerprint"], capsys)
    assert code == 0 and out["id_number"] == SAMPLE_ID_NUMBER and out["fingerprint_bytes"] == 1024


def test_read_id_errors(sim: IdReaderSimulator, capsys: pytest.CaptureFixture[str]) -> None:
    sim.remove()
    code, out = run_read_id(["--port", sim.path or ""], capsys)
    assert code == 1 and out["error"] == "NoCard"
    assert "put the ID card on the reader" in out["message"]
    code, out = run_read_id(["--port", "/dev/nonexistent-idreader"], capsys)
    assert code == 1 and out["error"] == "PortUnavailable"


def _sim_command() -> list[str]:
    """`cardstation sim idreader` once the lead wires it in; the module entry point until then."""
    sim_source = (ROOT / "cardstation" / "commands" / "sim.py").read_text(encoding="utf-8")
    if "idreader" in sim_source:
        return [sys.executable, "-m", "cardstation", "sim", "idreader"]
    return [sys.executable, "-m", "cardstation.simulators.idreader"]


def test_sim_idreader_subprocess_prints_path_first_and_serves() -> None:
    proc = subprocess.Popen(
        [*_sim_command(), "--card", OTHER_ID], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/"), path
        second = proc.stdout.readline()
        assert OTHER_ID not in second
        with Ga467Reader(path, timeout=2.0) as reader:
            card = reader.read_id_card()
        assert card.id_number == OTHER_ID and card.birth_date == "19900515"
        assert card.sex == "2"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert OTHER_ID not in err


def test_sim_idreader_rejects_bad_id_number() -> None:
    bad = OTHER_ID[:17] + ("0" if OTHER_ID[17] != "0" else "1")
    proc = subprocess.run([*_sim_command(), "--card", bad], capture_output=True, text=True,
                          cwd=ROOT, timeout=30)
    assert proc.returncode == 2 and "check character" in proc.stderr
    assert bad not in proc.stderr


def test_sim_idreader_serves_a_permit() -> None:
    """`--permit Y`: a generated 2023 foreigner permanent residence card, read through the pty
    in its own layout (Johann356/readinfo PCSCGetData.h, t_idforeigner2023)."""
    proc = subprocess.Popen(
        [*_sim_command(), "--permit", "Y"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        with Ga467Reader(path, timeout=2.0) as reader:
            card = reader.read_id_card()
        assert card.card_type == "Y" and card.id_number.startswith("9")
        assert card.nationality == "USA" and card.english_name.startswith("SMITH")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
