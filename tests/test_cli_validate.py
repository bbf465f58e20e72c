"""`cardstation validate` through the real console entry (python -m cardstation)."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

GB_EXAMPLE = "11010519491231002X"


def run_cli(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "cardstation", "validate", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    payload = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, payload, proc.stderr


def pairs(payload: dict[str, Any] | None) -> list[tuple[str, str]]:
    assert payload is not None
    return [(f["field"], f["code"]) for f in payload["findings"]]


def write_photo(path: Path, background: int = 240) -> Path:
    rnd = random.Random(2)
    size = (358, 441)
    pixels = bytes(
        min(255, background - 16 + b * 33 // 256) for b in rnd.randbytes(size[0] * size[1])
    )
    out = io.BytesIO()
    Image.frombytes("L", size, pixels).convert("RGB").save(out, "JPEG", quality=85)
    path.write_bytes(out.getvalue())
    return path


def test_valid_id_number_exits_0() -> None:
    code, payload, _ = run_cli("--id-number", GB_EXAMPLE)
    assert code == 0
    assert payload == {"findings": []}


@pytest.mark.parametrize(
    ("id_number", "reason"),
    [
        ("11010519491231002Y", "characters"),
        ("110105194912310021", "check_char_mismatch"),
        ("11010519491231002", "length"),
    ],
)
def test_bad_id_number_exits_1(id_number: str, reason: str) -> None:
    code, payload, _ = run_cli("--id-number", id_number)
    assert code == 1
    assert pairs(payload) == [("id_number", reason)]
    assert payload is not None
    assert id_number not in json.dumps(payload)  # masked


def test_usage_error_exits_2() -> None:
    code, payload, stderr = run_cli("--name", "张三")  # --id-number is required
    assert code == 2
    assert payload is None
    assert "--id-number" in stderr


def test_full_application(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "photo.jpg")
    code, payload, _ = run_cli(
        "--id-number", GB_EXAMPLE,
        "--name", "张三",
        "--card-number", "BA0010547",
        "--photo", str(photo),
        "--birth-date", "19491231",
        "--sex", "2",
        "--nation", "01",
        "--region", "110105",
    )  # fmt: skip
    assert (code, payload) == (0, {"findings": []})


def test_findings_from_several_fields(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "dark.jpg", background=80)
    code, payload, _ = run_cli(
        "--id-number", GB_EXAMPLE,
        "--name", "王𠮷",
        "--card-number", "D21435690",
        "--photo", str(photo),
        "--birth-date", "19491231",
        "--sex", "1",
    )  # fmt: skip
    assert code == 1
    assert pairs(payload) == [
        ("name", "unencodable"),
        ("card_number", "check_char_mismatch"),
        ("photo", "dark_background"),
        ("sex", "id_number_mismatch"),
    ]


def test_unreadable_photo_is_a_usage_error(tmp_path: Path) -> None:
    code, payload, stderr = run_cli("--id-number", GB_EXAMPLE, "--photo", str(tmp_path / "nope"))
    assert code == 2
    assert payload is None
    assert "--photo" in stderr


def test_photo_that_is_not_jpeg_is_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_text("hello")
    code, payload, _ = run_cli("--id-number", GB_EXAMPLE, "--photo", str(path))
    assert code == 1
    assert ("photo", "not_jpeg") in pairs(payload)
