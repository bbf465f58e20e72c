"""`cardstation doctor` on the simulated station (real pcscd + vpcd, the printer simulator over
TCP, the CMS over HTTP): all rows pass, then each injected fault of the fault table turns into
its own row with the remedy, and the exit code says the station cannot make cards."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cardstation.doctor import FAIL, OK, can_issue, render, run_checks
from tests.support.pcsc import PSAM_READER

pytestmark = pytest.mark.pcscd


def rows_of(config) -> dict[str, object]:
    return {r.key: r for r in run_checks(config)}


def failed(config, key: str):
    rows = run_checks(config)
    row = next(r for r in rows if r.key == key)
    assert row.status == FAIL, render(rows, "en")
    assert not can_issue(rows)
    return row


def test_a_healthy_simulated_station_can_make_cards(world) -> None:
    rows = run_checks(world.config())
    by_key = {r.key: r for r in rows}
    for key in ("pcscd", "printer", "encoder", "ribbon", "psam", "cms", "clock", "disk"):
        assert by_key[key].status == OK, render(rows, "en")
    assert can_issue(rows)
    text = render(rows)
    assert "可以制卡" in text and "打印机" in text and "PSAM" in text


def test_printer_unplugged(world) -> None:
    world.model.unplug_printer()
    row = failed(world.config(), "printer")
    assert "两根USB线" in row.remedy["zh_CN"]


def test_encoder_unplugged(world) -> None:
    # a real encoder that is unplugged leaves pcscd's reader list
    row = failed(world.config(readers={"encoder": "HiTi Encoder 00 00"}), "encoder")
    assert "the printer answers on USB" in row.detail
    assert "两根USB线" in row.remedy["zh_CN"] and "驱动" in row.remedy["zh_CN"]


def test_ribbon_chip_missing(world) -> None:
    world.model.set_ribbon(tag="absent")
    rows = run_checks(world.config())
    bad = {r.key: r for r in rows if r.status == FAIL}
    assert bad, render(rows, "en")
    remedy = " ".join(r.remedy["zh_CN"] for r in bad.values())
    assert "色带" in remedy and not can_issue(rows)


def test_psam_absent(world, pcsc_context) -> None:
    world.psam.remove()
    pcsc_context.wait_for_removal(PSAM_READER, timeout=5)
    row = failed(world.config(), "psam")
    assert "PSAM" in row.remedy["zh_CN"]


def test_cms_down(world) -> None:
    config = world.config()
    world.cms.stop()
    row = failed(config, "cms")
    assert "网络" in row.remedy["zh_CN"] and "unreachable" in row.detail.lower()


def test_pcscd_down_in_its_own_process(world, tmp_path) -> None:
    """pcscd out of reach (its socket elsewhere): the first row, and the exit code 1."""
    config = tmp_path / "cardstation.toml"
    config.write_text(world.toml())
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd")}
    done = subprocess.run([sys.executable, "-m", "cardstation.cli", "doctor", "--config",
                           str(config)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "✗ 智能卡服务（pcscd）" in done.stdout
    assert "systemctl start pcscd.socket" in done.stdout
    assert "现在不能制卡" in done.stdout and "Traceback" not in done.stderr
