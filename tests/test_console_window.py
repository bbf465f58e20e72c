"""The console's 窗口业务, 读身份证 and 补打卡面 screens in a real browser (Debian's chromium via
Playwright, headless) against `serve --simulate`: the holder types on the simulated PIN pad (a
pty), cards go onto the simulated desk reader (pcscd + vpcd). Screenshots to var/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cardstation.simulators.card import make_card
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from tests.support.console import console_station, login, shot
from tests.support.pcsc import DESK_READER, ENCODER_READER, PSAM_READER
from tests.support.window import holder_types, put_on_desk

pytestmark = [pytest.mark.pcscd, pytest.mark.browser]
READERS = (ENCODER_READER, PSAM_READER, DESK_READER)
OTHER_HOLDER = "110105198001010016"


@pytest.fixture
def station(tmp_path) -> Iterator[tuple[object, str]]:
    """`serve --simulate` (PIN entries time out after 5 s) and the console in front of it."""
    with console_station(tmp_path, READERS, blank_cards=2,
                         window={"pin_timeout": 5}) as running:
        yield running, running.token


def outcome(page, op: str) -> tuple[str, str]:
    page.wait_for_selector(f".window-outcome[data-op={op}]", timeout=30_000)
    node = page.locator(f".window-outcome[data-op={op}]")
    return node.get_attribute("data-ok") or "", node.inner_text()


def open_window(page, running) -> None:
    login(page, running)
    page.click("nav >> text=窗口业务")
    page.wait_for_selector("#op-read:focus")  # the keyboard starts on 读卡


def test_read_card_and_pin_change_on_the_pin_pad(station, page) -> None:
    running, _ = station
    put_on_desk(running, make_card("personalised"))
    open_window(page, running)
    shot(page, "window")
    page.keyboard.press("Enter")  # 读卡
    ok, text = outcome(page, "READ")
    assert ok == "yes" and "正式社保卡" in text
    page.wait_for_selector("#op-read:focus")  # the keyboard is back where it was
    masked = page.inner_text("dd[data-field=id_number_masked]")
    assert masked == "110105********002X" and EXAMPLE_ID_NUMBER not in page.content()
    for label in ("发卡地区", "社会保障卡卡号", "卡识别码", "姓名", "规范版本", "发卡日期",
                  "卡有效期", "终端机编号", "终端设备号", "复位信息"):
        assert label in text
    account = page.inner_text("dd[data-field=bank_account_masked]")
    assert "*" in account and len(account) >= 16
    shot(page, "window-read-card")

    # 显示完整号码: shown in full, and the reveal is in the audit log (who, which call)
    page.click("#op-reveal")
    page.wait_for_selector(".window-outcome[data-op=READ] dd.revealed", timeout=30_000)
    assert page.inner_text("dd[data-field=id_number_masked]") == EXAMPLE_ID_NUMBER
    full_account = page.inner_text("dd[data-field=bank_account_masked]")
    assert full_account.isdigit() and full_account[:6] == account[:6]
    assert "审计日志" in page.inner_text(".window-outcome")
    (audit_file,) = running.folder.rglob("audit.jsonl")
    reveals = [line for line in audit_file.read_text().splitlines()
               if "RevealCardNumbers" in line]
    assert len(reveals) == 1 and '"who":"window-1"' in reveals[0].replace(" ", "")
    assert EXAMPLE_ID_NUMBER not in audit_file.read_text()
    page.click("#op-read")  # the next operation hides them again
    page.wait_for_selector(".window-outcome[data-op=READ]:not(:has(dd.revealed))")
    assert EXAMPLE_ID_NUMBER not in page.content()

    # 修改密码: the screen waits for the holder; the holder types on the pad, not here
    page.click("#op-pin-change")
    page.wait_for_selector("#wait-PIN_CHANGE.htmx-request", timeout=10_000)
    waiting = page.inner_text("#wait-PIN_CHANGE")
    assert "请持卡人在密码键盘上输入" in waiting and "输入原密码" in waiting
    assert page.is_disabled("#op-read")  # one window operation at a time
    # one dot per digit the holder types, and never the digits
    assert running.simulated.pinpad.wait_for_prompt(10)
    page.wait_for_selector(".pin-progress[data-prompt=ENTER_PIN][data-digits='0']")
    running.simulated.pinpad.type_digits("12")
    page.wait_for_selector(".pin-progress[data-digits='2']", timeout=10_000)
    assert page.locator(".pin-dots .dot.typed").count() == 2
    assert page.locator(".pin-dots .dot").count() == 6
    assert "输入原密码" in page.inner_text(".pin-progress")
    shot(page, "window-pin-waiting")
    running.simulated.pinpad.type_digits("3456")
    page.wait_for_selector(".pin-progress[data-digits='6']", timeout=10_000)
    running.simulated.pinpad.press_enter()
    page.wait_for_selector(".pin-progress[data-prompt=ENTER_NEW_PIN]", timeout=10_000)
    holder_types(running, "802514", "802514")
    ok, text = outcome(page, "PIN_CHANGE")
    assert ok == "yes" and "密码已修改" in text
    page.wait_for_selector("#pin-progress:not(:has(.pin-progress))", state="attached")
    shot(page, "window-pin-changed")

    # the new PIN verifies; a wrong one is explained in Chinese
    page.click("#op-pin-verify")
    page.wait_for_selector("#wait-PIN_VERIFY.htmx-request", timeout=10_000)
    holder_types(running, "802514")
    assert outcome(page, "PIN_VERIFY")[0] == "yes"
    page.click("#op-pin-verify")
    holder_types(running, "000000")
    ok, text = outcome(page, "PIN_VERIFY")
    assert ok == "no" and "密码不对" in text and "请持卡人再输一次" in text
    shot(page, "window-wrong-pin")
    # the holder cancels on the pad
    page.click("#op-pin-verify")
    running.simulated.pinpad.script(["CANCEL"])
    ok, text = outcome(page, "PIN_VERIFY")
    assert ok == "no" and "按了取消" in text
    # 密码重置: the holder sets a new PIN without the old one; it verifies afterwards
    page.click("#op-pin-reset")
    page.wait_for_selector("#wait-PIN_RESET.htmx-request", timeout=10_000)
    assert "输入原密码" not in page.inner_text("#wait-PIN_RESET")
    holder_types(running, "246810", "246810")
    assert outcome(page, "PIN_RESET")[0] == "yes"
    page.click("#op-pin-verify")
    holder_types(running, "246810")
    assert outcome(page, "PIN_VERIFY")[0] == "yes"
    # returned-card check with another person's ID number
    page.fill("#returned_holder_id", OTHER_HOLDER)
    page.keyboard.press("Enter")
    ok, text = outcome(page, "VERIFY_RETURNED")
    assert ok == "no" and "这张卡不是该持卡人的" in text

    assert "802514" not in page.content() and "246810" not in page.content()  # no PIN here
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_temporary_card_issue_and_recall(station, page) -> None:
    running, _ = station
    temporary = make_card("temporary", serial=0x30000095)
    put_on_desk(running, temporary)
    open_window(page, running)
    page.fill("#holder_id", OTHER_HOLDER)
    page.fill("#holder_name", "王二")
    page.keyboard.press("Enter")  # 发放临时卡
    page.wait_for_selector("#wait-TEMP_ISSUE.htmx-request", timeout=10_000)
    assert "输入新密码" in page.inner_text("#wait-TEMP_ISSUE")
    holder_types(running, "975310", "975310")
    ok, text = outcome(page, "TEMP_ISSUE")
    assert ok == "yes" and "临时卡已发放" in text
    assert page.inner_text(".temporary-card dd[data-field=holder_id_masked]") == \
        "110105********0016"
    code = page.inner_text(".temporary-card dd[data-field=card_id_code]")
    cards = running.simulated.cms.ledger(photos=False)["temporary_cards"]
    assert cards[code]["status"] == "issued"
    shot(page, "window-temporary-issued")

    # a second one for the same holder is refused, in Chinese, before the pad prompts
    put_on_desk(running, make_card("temporary", serial=0x30000094))
    page.click("#op-temp-issue")
    ok, text = outcome(page, "TEMP_ISSUE")
    assert ok == "no" and "没回收的临时卡" in text and "先回收" in text
    shot(page, "window-temporary-refused")

    put_on_desk(running, temporary)  # the issued one back
    page.click("#op-temp-rewrite")  # 改写: the holder sets a new PIN on the pad
    page.wait_for_selector("#wait-TEMP_REWRITE.htmx-request", timeout=10_000)
    holder_types(running, "864200", "864200")
    ok, text = outcome(page, "TEMP_REWRITE")
    assert ok == "yes" and "临时卡已改写" in text, text
    page.click("#op-read")
    ok, text = outcome(page, "READ")
    assert ok == "yes" and "临时卡" in page.inner_text(".card-kind")
    page.click("#op-temp-recall")
    ok, text = outcome(page, "TEMP_RECALL")
    assert ok == "yes" and "临时卡已回收" in text
    assert running.simulated.cms.ledger(photos=False)["temporary_cards"][code]["status"] != \
        "issued"
    shot(page, "window-temporary-recalled")


def test_read_id_card_then_make_and_reprint_the_face(station, page) -> None:
    running, _ = station
    from cardstation.simulators.printer.cards import SimPosition

    login(page, running)
    page.keyboard.press("F2")  # 读身份证, the ID field is filled and focused
    page.wait_for_selector(".id-card[data-read=ok]", timeout=20_000)
    assert page.input_value("#id_number") == EXAMPLE_ID_NUMBER
    assert "李秀英" in page.inner_text(".id-card")
    page.wait_for_selector("body[data-ready] #id_number:focus")
    # htmx has taken the form (else Enter submits it as a plain form)
    page.wait_for_function("() => !!document.querySelector('#lookup')['htmx-internal-data']")
    shot(page, "make-read-id-card")
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm:focus")
    page.keyboard.press("Enter")
    page.wait_for_selector(".outcome[data-state=DONE]", timeout=60_000)
    page.click(".outcome button[data-action=REPRINT]")  # the job's own 补打卡面 asks first
    page.wait_for_selector(".reprint-ready #confirm")
    assert "放回打印机后部的进卡口" in page.inner_text("#work")

    page.click("nav >> text=补打卡面")
    page.wait_for_selector("table.reprint tr[data-state=DONE]")
    # found by the holder's ID number; another holder has none
    page.fill("#id_number", OTHER_HOLDER)
    page.press("#id_number", "Enter")
    page.wait_for_selector("text=没有已制好的卡")
    page.fill("#id_number", EXAMPLE_ID_NUMBER)
    page.press("#id_number", "Enter")
    page.wait_for_selector("table.reprint tr[data-state=DONE]")
    assert page.locator("table.reprint tbody tr").count() == 1
    shot(page, "reprint-list")
    page.click("table.reprint button[data-action=REPRINT]")
    page.wait_for_selector(".reprint-ready #confirm:focus")
    text = page.inner_text(".reprint-ready")
    assert "先把这张卡放回打印机后部的进卡口" in text
    shot(page, "reprint-put-card-back")
    model = running.simulated.model
    prints = len(model.print_log)
    with model._locked():  # the operator puts the finished card back into the rear feed slot
        card = model.output_hopper.pop()
        card.position = SimPosition.INPUT
        model.input_cards.appendleft(card)
    page.keyboard.press("Enter")
    page.wait_for_selector(".reprint-done[data-reprints='1']", timeout=60_000)
    assert len(model.print_log) == prints + 1
    shot(page, "reprint-done")


def test_read_id_card_without_a_card_explains_in_chinese(station, page) -> None:
    running, _ = station
    login(page, running)
    page.keyboard.type("1101")
    running.simulated.idreader.inject("no_card")
    page.click("#read-id")
    page.wait_for_selector("#id-field .fault", timeout=20_000)
    assert "阅读器上没有身份证" in page.inner_text("#id-field .fault")
    assert page.input_value("#id_number") == "1101"  # what was typed stays
    running.simulated.idreader.clear_faults()


def test_a_search_by_a_wrong_id_number_explains_it_on_a_whole_page(station, page) -> None:
    running, _ = station
    login(page, running)
    page.goto(running.console_url + "/records?id_number=12345")
    page.wait_for_selector(".fault[data-code=ID_NUMBER_INVALID]")
    assert "身份证号不正确" in page.inner_text(".fault")
    assert page.is_visible("nav >> text=记录")  # the screen around it, not a bare fragment
    page.click("text=返回")
    page.wait_for_selector("table.records")
