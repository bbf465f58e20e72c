"""The operator console in a real browser: Debian's chromium driven by Playwright, headless,
against `serve --simulate` and the console over real ports. Screenshots of each screen go to
var/screenshots/ (a test artefact)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from tests.support.console import console_station, login, shot
from tests.support.pcsc import ENCODER_READER, PSAM_READER

pytestmark = [pytest.mark.pcscd, pytest.mark.browser]

@pytest.fixture
def station(tmp_path) -> Iterator[tuple[object, str]]:
    """`serve --simulate` with an operator token, and the console in front of it."""
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed: run `make setup`")
    with console_station(tmp_path, (ENCODER_READER, PSAM_READER)) as running:
        yield running, running.token


def make_from_the_keyboard(page) -> None:
    page.wait_for_selector("body[data-ready] #id_number:focus")
    # htmx has taken the form (else Enter submits it as a plain form)
    page.wait_for_function("() => !!document.querySelector('#lookup')['htmx-internal-data']")
    page.keyboard.type(EXAMPLE_ID_NUMBER)  # the ID field has the focus; a scanner types too
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm:focus")  # the confirm button has the focus
    page.keyboard.press("Enter")


def ledger_returns(running) -> list[dict]:
    return [r for r in running.simulated.cms.ledger(photos=False)["returns"]
            if r["record"]["id_number"] == EXAMPLE_ID_NUMBER]


def test_an_operator_makes_a_card_from_the_keyboard(station, page) -> None:
    running, _ = station
    login(page, running)
    shot(page, "make-card")
    make_from_the_keyboard(page)
    page.wait_for_selector(".outcome[data-state=DONE]", timeout=60_000)
    text = page.inner_text("#work")
    for step in ("已获取数据", "已进卡", "已写卡", "已打印卡面", "已出卡", "完成"):
        assert step in text
    assert "可以把卡交给持卡人" in text
    shot(page, "card-done")
    assert len(ledger_returns(running)) == 1
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_ribbon_out_mid_print_shows_cause_and_remedy_and_resumes(station, page) -> None:
    running, _ = station
    from cardstation.personalization.journal import State

    def ribbon_runs_out(state: State) -> None:
        if state is State.RETURN_QUEUED:
            running.simulated.model.inject("ribbon_out")
            running.runtime.pipeline.after_commit = None

    running.runtime.pipeline.after_commit = ribbon_runs_out
    login(page, running)
    make_from_the_keyboard(page)
    page.wait_for_selector(".outcome[data-state=FAILED]", timeout=60_000)
    text = page.inner_text(".outcome")
    assert "色带用完了" in text and "更换色带" in text  # cause and remedy, in Chinese
    shot(page, "fault-ribbon-out")
    running.simulated.model.clear("ribbon_out")  # the operator changes the ribbon
    page.click("button[data-action=RESUME]")  # 继续
    page.wait_for_selector(".outcome[data-state=DONE]", timeout=60_000)
    assert len(ledger_returns(running)) == 1


def test_a_card_whose_return_is_pending_says_do_not_hand_over(station, page) -> None:
    running, _ = station
    running.simulated.cms.inject("fail_returns", count=100000)
    login(page, running)
    make_from_the_keyboard(page)
    page.wait_for_selector("li[data-state=EJECTED].problem", timeout=60_000)
    assert "先不要把卡交给持卡人" in page.inner_text("#work")
    shot(page, "return-pending")
    running.simulated.cms.clear_faults()
    page.wait_for_selector(".outcome[data-state=DONE]", timeout=60_000)
    assert len(ledger_returns(running)) == 1


def test_sessions_and_csrf(station, page) -> None:
    running, _ = station
    page.goto(running.console_url + "/")
    assert page.url.endswith("/login")
    page.fill("#token", "not-a-token")
    page.keyboard.press("Enter")
    assert "登录令牌无效" in page.inner_text(".fault")
    shot(page, "login-refused")
    login(page, running)
    # a forged state-changing request without the CSRF token is refused
    status = page.evaluate("""async () => {
        const r = await fetch('/issue', {method: 'POST', body: new URLSearchParams(
            {id_number: '11010519491231002X'})});
        return r.status; }""")
    assert status == 403
    assert not ledger_returns(running) and running.simulated.model.print_log == []
    headers = page.request.get(running.console_url + "/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]


def test_records_returns_and_devices(station, page) -> None:
    running, _ = station
    page.goto(running.console_url + "/records")
    assert page.url.endswith("/login")  # every screen needs a session
    running.simulated.cms.inject("fail_returns", count=100000)
    login(page, running)
    make_from_the_keyboard(page)
    page.wait_for_selector("li[data-state=EJECTED].problem", timeout=60_000)
    page.click("nav >> text=回盘")
    page.wait_for_selector("table.returns")
    shown = page.inner_text("table.returns")  # pending, or a retry on its way right now
    assert "等待回盘" in shown or "正在回盘" in shown, shown
    shot(page, "returns")
    running.simulated.cms.clear_faults()
    page.click("text=失败数据回盘")
    page.wait_for_selector("text=已安排重新回盘")
    deadline = time.monotonic() + 20
    while not ledger_returns(running) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(ledger_returns(running)) == 1
    page.click("nav >> text=记录")
    page.wait_for_selector("table.records tr[data-state=DONE]", timeout=20_000)
    shot(page, "records")
    page.click("table.records a")  # the job's detail: every event again
    page.wait_for_selector(".outcome[data-state=DONE]", timeout=20_000)
    assert "已写卡" in page.inner_text("#work")
    page.click("nav >> text=设备")
    page.wait_for_selector("tr[data-device=printer][data-status=READY]")
    running.simulated.model.inject("cover_open")
    running.runtime.refresh()  # what the monitor does every second
    page.wait_for_selector("tr[data-device=printer][data-status=FAULT]", timeout=20_000)
    assert "盖" in page.inner_text("#station") or "cover" in page.inner_text("#station")
    shot(page, "devices-fault")
    running.simulated.model.clear("cover_open")
    page.click("button[data-action=RESET_PRINTER]")
    page.wait_for_selector("tr[data-device=printer][data-status=READY]", timeout=30_000)


def test_a_read_only_role_sees_no_buttons_that_change_things(station, page) -> None:
    running, _ = station
    page.goto(running.console_url + "/login")
    page.wait_for_selector("#token:focus")
    page.keyboard.type(running.upstream_token)
    page.keyboard.press("Enter")
    page.wait_for_selector("#read-only")
    assert page.query_selector("#id_number") is None
    assert "只读" in page.inner_text("header")
    page.click("nav >> text=设备")
    page.wait_for_selector("table.devices")
    assert page.query_selector("button[data-action]") is None
    shot(page, "read-only")
    # the server refuses it anyway: a maintenance POST with the right CSRF token is denied
    status = page.evaluate("""async () => {
        const csrf = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
        const r = await fetch('/devices/RESET_PRINTER', {method: 'POST',
            headers: {'X-CSRF-Token': csrf}});
        return [r.status, await r.text()]; }""")
    assert status[0] == 200 and "无权" in status[1]
