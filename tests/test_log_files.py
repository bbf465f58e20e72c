"""The station's log as county IT keeps it: stderr and a rotating file (0600), text or JSON
lines, masked the same way everywhere."""

from __future__ import annotations

import json
import logging
import stat

import pytest

from cardstation import logs

ID_NUMBER = "11010519491231002X"
ACCOUNT = "6219991008053063719"


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in root.handlers:
        if getattr(handler, "_cardstation", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    root.handlers[:] = handlers


def test_json_lines_in_a_private_rotating_file(tmp_path, capsys, monkeypatch,
                                               restore_root) -> None:
    monkeypatch.setattr(logs, "ROTATE_BYTES", 2000)
    path = tmp_path / "log" / "cardstation.log"
    logs.setup_logging("INFO", file=str(path), json_lines=True)
    log = logging.getLogger("cardstation.test")
    log.info("holder %s account %s", ID_NUMBER, ACCOUNT)
    try:
        raise ValueError(f"bad {ID_NUMBER}")
    except ValueError:
        log.exception("failed for %s", ID_NUMBER)
    for n in range(40):  # enough to rotate
        log.info("line %d", n)
    files = sorted(path.parent.iterdir())
    assert len(files) >= 2 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    text = "".join(f.read_text() for f in files) + capsys.readouterr().err
    assert ID_NUMBER not in text and ACCOUNT not in text
    entries = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    first = next(e for e in entries if e["message"].startswith("holder"))
    assert first["level"] == "INFO" and first["logger"] == "cardstation.test"
    assert first["message"] == "holder 110105********002X account 621999*********3719"
    assert first["at"].endswith("+00:00")
    failure = next(e for e in entries if "exc" in e)
    assert "ValueError" in failure["exc"] and ID_NUMBER not in failure["exc"]


def test_configured_twice_logs_each_line_once(tmp_path, restore_root) -> None:
    path = tmp_path / "cardstation.log"
    logs.setup_logging("INFO", file=str(path))
    logs.setup_logging("INFO", file=str(path))
    logging.getLogger("cardstation.test").warning("once")
    assert path.read_text().count("once") == 1
