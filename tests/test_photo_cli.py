"""`cardstation photo normalize IN OUT [--whiten]` through the real entry, and its output
through `cardstation validate --photo` (alone, and with an ID number)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cardstation.benchmarks import photo_set


def _cli(*args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "cardstation", *args], capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


def _picture(path: Path, colour=(246, 246, 246)) -> Path:
    canvas = photo_set.backdrop((640, 480), colour, random.Random(3))
    picture, _, _ = photo_set.place(canvas, 1.4, 3, (320, 200))
    Image.fromarray(picture).save(path, "JPEG", quality=92)
    return path


def test_normalize_writes_a_photo_that_validate_accepts(tmp_path: Path) -> None:
    out = tmp_path / "photo.jpg"
    code, result = _cli("photo", "normalize", str(_picture(tmp_path / "in.jpg")), str(out))
    assert code == 0 and result["ok"] and not result["whitened"]
    assert 14 * 1024 <= result["bytes"] == out.stat().st_size <= 70 * 1024
    assert Image.open(out).size == (358, 441)
    assert _cli("validate", "--photo", str(out)) == (0, {"findings": []})
    code, result = _cli("validate", "--id-number", "11010519491231002X", "--photo", str(out))
    assert (code, result) == (0, {"findings": []})


def test_a_refusal_names_its_reason_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "photo.jpg"
    source = _picture(tmp_path / "blue.png", colour=(110, 150, 215))
    code, result = _cli("photo", "normalize", str(source), str(out))
    assert code == 1 and result["code"] == "PHOTO_BACKGROUND_NOT_WHITE"
    assert result["cause"] and "whitening" in result["remedy"] and not out.exists()
    code, result = _cli("photo", "normalize", str(source), str(out), "--whiten")
    assert code == 0 and result["whitened"] and result["background"]["luma"] > 245
    assert _cli("validate", "--photo", str(out)) == (0, {"findings": []})


def test_the_configured_window_is_used(tmp_path: Path) -> None:
    config = tmp_path / "cardstation.toml"
    config.write_text("[photo]\nmin_kb = 15\nmax_kb = 20\n")
    out = tmp_path / "photo.jpg"
    code, result = _cli("photo", "normalize", str(_picture(tmp_path / "in.jpg")), str(out),
                        "--config", str(config))
    assert code == 0 and 15 * 1024 <= result["bytes"] <= 20 * 1024


def test_a_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    code, result = _cli("photo", "normalize", str(tmp_path / "none.jpg"), str(tmp_path / "o"))
    assert code == 2 and "cannot read" in result["message"]


def test_validate_photo_alone_reports_findings(tmp_path: Path) -> None:
    bad = tmp_path / "small.jpg"
    Image.fromarray(np.full((100, 80, 3), 250, np.uint8)).save(bad, "JPEG")
    code, result = _cli("validate", "--photo", str(bad))
    assert code == 1 and {f["code"] for f in result["findings"]} >= {"too_small", "dimensions"}
