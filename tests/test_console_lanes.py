"""The console at a station with three printers, in Chromium: the devices page shows each
printer (ready or not, and why, in Chinese) and its maintenance buttons name their printer."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from cardstation.simulators.station import ENCODER_READERS
from tests.support.console import CHROMIUM, CHROMIUM_ARGS, console_station, login, shot
from tests.support.pcsc import PSAM_READER

pytestmark = [pytest.mark.pcscd, pytest.mark.browser]


@pytest.fixture
def running(tmp_path) -> Iterator[object]:
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed: run `make setup`")
    with console_station(tmp_path, (*ENCODER_READERS, PSAM_READER), printers=3) as served:
        yield served


@pytest.fixture
def page(running) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.errors = errors  # type: ignore[attr-defined]
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                if r.status >= 400 else None)
        page.failed = failed  # type: ignore[attr-defined]
        yield page
        browser.close()


def test_the_devices_page_shows_each_printer_and_maintains_the_one_named(running,
                                                                         page) -> None:
    login(page, running)
    page.goto(running.console_url + "/devices")
    page.wait_for_selector("table.lanes tr[data-lane='3'][data-ready='yes']")
    assert page.locator("table.lanes tr[data-lane]").count() == 3
    # printer 2's cover opens: that printer cannot make cards, the station still can
    running.simulated.printers[1].model.inject("cover_open")
    page.wait_for_selector("table.lanes tr[data-lane='2'][data-ready='no']", timeout=15_000)
    assert page.locator("table.lanes tr[data-lane='1'][data-ready='yes']").count() == 1
    assert page.locator(".verdict.ready").count() == 1
    problems = page.locator("#station .fault").all_inner_texts()
    assert any("盖" in text for text in problems), problems  # the cover, in Chinese
    shot(page, "devices-three-printers")
    # each printer's buttons carry its name: the server refuses a call naming none
    page.click(".actions[data-lane='1'] button[data-action='CLEAN_CARD_PATH']")
    page.wait_for_selector("table.lanes tr[data-lane='1']")
    assert not any("打印机" in t and "指明" in t
                   for t in page.locator("#station .fault").all_inner_texts())
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors
    assert page.failed == []  # type: ignore[attr-defined]
