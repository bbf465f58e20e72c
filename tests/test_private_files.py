"""The data folder 0700 and the journal's files 0600 at start; private keys refused if open."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from cardstation.config import Config
from cardstation.personalization.private_files import (
    PrivateFileError,
    check_private_file,
    make_private_dir,
    make_private_files,
)
from cardstation.station import build_station


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> object:
    old = os.umask(0o022)  # what the fault was seen under: journal 0644 in a 0755 folder
    yield
    os.umask(old)


def test_station_start_makes_the_data_folder_and_journal_private(
        tmp_path: Path, loose_umask: object) -> None:
    data = tmp_path / "station"
    station = build_station(Config().with_values(station={"data_dir": str(data)}))
    try:
        assert mode(data) == 0o700
        for name in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"):
            if (data / name).exists():
                assert mode(data / name) == 0o600, name
        assert (data / "journal.sqlite").exists()
    finally:
        station.close()


def test_start_tightens_an_open_folder_and_says_so(
        tmp_path: Path, loose_umask: object, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "station"
    build_station(Config().with_values(station={"data_dir": str(data)})).close()
    data.chmod(0o755)
    (data / "journal.sqlite").chmod(0o644)
    with caplog.at_level(logging.WARNING):
        build_station(Config().with_values(station={"data_dir": str(data)})).close()
    assert mode(data) == 0o700 and mode(data / "journal.sqlite") == 0o600
    assert "was mode 0755; made 0700" in caplog.text
    assert "journal.sqlite was mode 0644; made 0600" in caplog.text


def test_folder_that_cannot_be_tightened_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o755)

    def denied(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", denied)
    with pytest.raises(PrivateFileError, match=r"chmod 700 .*shared"):
        make_private_dir(folder)


def test_new_folder_is_private_whatever_the_umask(tmp_path: Path, loose_umask: object) -> None:
    assert make_private_dir(tmp_path / "a" / "b") == []
    assert mode(tmp_path / "a" / "b") == 0o700
    assert make_private_files([tmp_path / "missing"]) == []


def test_check_private_file(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_text("x")
    key.chmod(0o600)
    check_private_file(key, "key")
    check_private_file(tmp_path / "absent", "key")  # reading it reports a missing file
    key.chmod(0o604)
    with pytest.raises(PrivateFileError, match=rf"mode 0604.*chmod 600 {key}"):
        check_private_file(key, "key")
