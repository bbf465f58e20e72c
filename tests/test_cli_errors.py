"""Bad input on the command line gets a clear message with a remedy, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "cardstation.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


def test_unknown_state_names_the_valid_ones() -> None:
    result = run("issuances", "--state", "BOGUS", "--server", "127.0.0.1:1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "'BOGUS' is not a state" in result.stderr and "FAILED" in result.stderr


def test_an_unreachable_server_is_named_with_a_remedy() -> None:
    result = run("issue", "11010519491231002X", "--server", "127.0.0.1:1", "--timeout", "2")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    reply = json.loads(result.stderr)
    assert reply["code"] == "UNAVAILABLE" and "cardstation serve" in reply["message"]


def test_run_with_nothing_reachable_reports_each_card_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "cardstation.toml"
    config.write_text('[printer]\ndevice = "socket://127.0.0.1:1"\n'
                      f'[station]\ndata_dir = "{tmp_path / "data"}"\n'
                      '[cms]\nurl = "http://127.0.0.1:1"\n', encoding="utf-8")
    result = run("run", "11010519491231002X", "--config", str(config))
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "CMS unreachable" in result.stderr and "check the network" in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["cards"] == {
        "110105********002X": "NOT_STARTED"}


def test_run_refuses_what_is_not_an_id_number_before_asking_the_cms(tmp_path: Path) -> None:
    config = tmp_path / "cardstation.toml"
    config.write_text('[cms]\nurl = "http://127.0.0.1:9"\n'
                      f'[station]\ndata_dir = "{tmp_path / "data"}"\n')
    result = run("run", "123", "11010519491231002Y", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert "'123' is not an ID number" in result.stderr and "type it again" in result.stderr
    assert "11010519491231002Y" not in result.stderr  # masked even when wrong
    assert "Traceback" not in result.stderr and not (tmp_path / "data").exists()
