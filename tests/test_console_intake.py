"""The console's 采集, 领卡启用, 挂失解挂注销 and 补换卡 screens in Chromium (Playwright,
headless) with a fake camera that shows the astronaut portrait, against `serve --simulate`:
an application collected (photo from the camera), charged and marked, its card made and handed
over — refused while a temporary card is out, until it is recalled in the same flow — then a
loss report, a lift and a replacement, each with its receipt PDF (rendered to PNG and read
back: the masked ID number, never the full one). Screenshots to var/screenshots/."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cardstation.benchmarks import photo_set
from cardstation.console import intake as screens
from cardstation.personalization import intake as rules
from cardstation.simulators.card import make_card
from cardstation.simulators.cms.applicants import generate_applicants
from tests.support.console import browser_page, console_station, login, shot
from tests.support.pcsc import DESK_READER, ENCODER_READER, PSAM_READER
from tests.support.window import holder_types, put_on_desk

pytestmark = [pytest.mark.pcscd, pytest.mark.browser]
READERS = (ENCODER_READER, PSAM_READER, DESK_READER)


def test_the_console_offers_what_the_rules_accept() -> None:
    assert screens.PERSON_STATUSES == rules.PERSON_STATUSES
    assert screens.HUKOU_TYPES == rules.HUKOU_TYPES
    assert rules.BANK_UNDECIDED not in screens.BANKS


INTAKE_TEMPLATES = ("intake.html", "intake_person.html", "intake_photo.html",
                    "card_result.html", "card_state.html", "card_life.html")
NEW_REASONS = ("PHOTO_UNREADABLE", "PHOTO_NO_FACE", "PHOTO_TWO_FACES", "PHOTO_FACE_TOO_SMALL",
               "PHOTO_HEAD_AT_EDGE", "PHOTO_NOT_COLOUR", "PHOTO_TOO_DARK",
               "PHOTO_BACKGROUND_NOT_UNIFORM",
               "PHOTO_BACKGROUND_NOT_WHITE", "PHOTO_SIZE_WINDOW", "PHOTO_NOT_CONFIRMED",
               "APPLICATION_INVALID", "HOLDER_HAS_CARD", "CARD_STATE_INVALID",
               "FORMAL_LOSS_REQUIRED", "CARD_MISMATCH", "CARD_LIFE_NOT_OFFERED",
               "LOSS_KIND_REQUIRED", "REPLACEMENT_KIND_REQUIRED", "CANCEL_REASON_REQUIRED")


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_intake_string_and_reason_is_in_the_catalogue(locale: str) -> None:
    import re

    from cardstation.console.i18n import Translator
    from cardstation.personalization.ports.cms import CARD_STATES
    from cardstation.personalization.receipts import STATE_NAMES

    folder = Path(screens.__file__).parent / "templates"
    keys = {k for name in INTAKE_TEMPLATES for k in re.findall(
        r"""_\(["']([^"']+)["']\)""", (folder / name).read_text())}
    keys |= {f"life.op:{op}" for op in (*screens.OPERATIONS, "APPLICATION", "TEMP_RECALL")}
    keys |= {f"life.state:{s}" for s in CARD_STATES} | {f"life.hint:{s}" for s in screens.SCREENS}
    keys |= {f"nav.{s}" for s in (*screens.SCREENS, "intake")}
    keys |= {f"intake.field:{f}" for f in (*screens.PERSON_FIELDS, *screens.TEXT_FIELDS,
                                           "person_status", "hukou_type", "bank_name", "photo")}
    keys |= {f"{part}:{code}" for code in NEW_REASONS for part in ("cause", "remedy")}
    tr = Translator(locale)
    assert not sorted(k for k in keys if not tr.has(k))
    assert set(STATE_NAMES) == set(CARD_STATES)
    if locale == "zh_CN":
        assert all(re.search(r"[\u4e00-\u9fff]", tr.gettext(f"cause:{c}")) for c in NEW_REASONS)


def fake_camera(path: Path) -> Path:
    """A Y4M clip (what Chromium's fake camera plays) of the holder before a white wall."""
    canvas = photo_set.backdrop((640, 480), (248, 248, 248), random.Random(4))
    frame, _, _ = photo_set.place(canvas, 1.3, 0, (320, 190))
    ycc = Image.fromarray(frame).convert("YCbCr")
    y, cb, cr = (np.asarray(p) for p in ycc.split())
    chroma = [np.asarray(Image.fromarray(c).resize((320, 240), Image.BILINEAR))
              for c in (cb, cr)]
    with open(path, "wb") as out:
        out.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(5):
            out.write(b"FRAME\n" + y.tobytes() + chroma[0].tobytes() + chroma[1].tobytes())
    return path


@pytest.fixture
def station(tmp_path) -> Iterator[object]:
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed: run `make setup`")
    with console_station(tmp_path, READERS, blank_cards=2,
                         window={"pin_timeout": 5}) as running:
        yield running


@pytest.fixture
def page(station, tmp_path) -> Iterator[object]:
    clip = fake_camera(tmp_path / "camera.y4m")
    with browser_page(("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                       f"--use-file-for-fake-video-capture={clip}"), height=1000) as opened:
        yield opened


def outcome(page, op: str) -> tuple[str, str]:
    node = page.locator(f".card-outcome[data-op={op}]")
    node.wait_for(timeout=60_000)
    return node.get_attribute("data-ok") or "", node.inner_text()


def receipt_text(page, tmp: Path, name: str) -> str:
    """The receipt the page links to, as the operator's browser gets it: rendered to PNG
    (it must draw something) and its text."""
    href = page.get_attribute("#receipt", "href")
    pdf = page.request.get(page.url.split("/", 3)[0] + "//" + page.url.split("/")[2] + href)
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
    path = tmp / f"{name}.pdf"
    path.write_bytes(pdf.body())
    if not (shutil.which("pdftoppm") and shutil.which("pdftotext")):
        pytest.skip("poppler-utils (pdftoppm, pdftotext) is not installed")
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(path),
                    str(tmp / name)], check=True)
    png = Image.open(tmp / f"{name}.png").convert("L")
    assert png.getextrema()[0] < 100
    shutil.copy(tmp / f"{name}.png", _shots() / f"receipt-{name}.png")
    return subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def _shots() -> Path:
    from tests.support.console import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


def test_collect_make_hand_over_lose_lift_and_replace(station, page, tmp_path: Path) -> None:
    running = station
    person = generate_applicants(1, 919)[0]
    masked = person.id_number[:6] + "********" + person.id_number[-4:]
    login(page, running)

    # 采集: the applicant's fields, the photo from the camera, confirmed by the operator
    page.click("nav >> text=采集")
    page.wait_for_selector("#camera[data-live='1']")
    page.wait_for_function("() => document.getElementById('camera').videoWidth > 0")
    for field, value in (("id_number", person.id_number), ("name", person.name),
                         ("nation", person.nation), ("birth_date", person.birth_date),
                         ("id_address", "河南省新乡市红旗区人民路1号"),
                         ("hukou_address", "河南省新乡市红旗区人民路1号"),
                         ("phone", "13800138000"),
                         ("postal_address", "河南省新乡市红旗区人民路1号"),
                         ("employer_name", "新乡市示例有限公司"), ("employer_code", "41070000001")):
        page.fill(f"#{field}", value)
    page.select_option("#sex", person.sex)
    page.select_option("#person_status", "在职")
    page.select_option("#hukou_type", "城镇")
    page.select_option("#bank_name", "中国银行")
    # a file: too large is refused in the page; a portrait file is normalised
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (700, 700, 3), dtype=np.uint8)
                    ).save(big)
    page.set_input_files("#picture-file", str(big))
    assert "太大" in page.inner_text("#photo-result .fault[data-code=PICTURE_TOO_LARGE]")
    portrait = tmp_path / "portrait.jpg"
    frame, _, _ = photo_set.place(photo_set.backdrop((640, 480), (246, 246, 246),
                                                     random.Random(9)), 1.4, -4, (300, 200))
    Image.fromarray(frame).save(portrait, quality=90)
    assert page.inner_text("label.file-button").startswith("读入照片文件")  # not "Choose File"
    page.set_input_files("#picture-file", str(portrait))
    page.wait_for_selector("#photo-preview", timeout=30_000)
    assert page.inner_text("#picture-file-name") == "portrait.jpg"
    assert not [f for f in page.failed if "favicon" in f or "/static/" in f], page.failed
    # the camera's frame: the photo the operator confirms
    page.evaluate("document.getElementById('photo-result').innerHTML = ''")
    page.click("#snap")
    page.wait_for_selector("#photo-preview", timeout=30_000)
    shot(page, "intake-photo")
    size = page.inner_text("dd[data-field=bytes]")
    assert size.endswith("KB") and 14 <= float(size.split()[0]) <= 70
    page.check("#photo-confirmed")
    page.click("#submit-application")
    ok, text = outcome(page, "APPLICATION")
    assert ok == "yes" and "已申请" in text and masked in text, text
    assert person.id_number not in page.content()
    text = receipt_text(page, tmp_path, "application")
    assert "新增申请" in text and masked in text and person.id_number not in text
    page.click("#life-fee")
    assert outcome(page, "FEE")[0] == "yes"
    page.click("#life-mark")
    ok, text = outcome(page, "MARK")
    assert ok == "yes" and "待制卡" in text
    shot(page, "intake-marked")

    # 制卡: the card is made here
    page.click("nav >> text=制卡")
    page.wait_for_selector("body[data-ready] #id_number:focus")
    page.wait_for_function("() => !!document.querySelector('#lookup')['htmx-internal-data']")
    page.keyboard.type(person.id_number)
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm:focus", timeout=30_000)
    page.keyboard.press("Enter")
    page.wait_for_selector(".outcome[data-state=DONE]", timeout=90_000)
    model = running.simulated.model
    with model._locked():
        made = model.output_hopper.pop()

    # a temporary card of the holder is out (issued at the window, the holder sets its PIN)
    temporary = make_card("temporary", serial=0x30000097)
    put_on_desk(running, temporary)
    page.click("nav >> text=窗口业务")
    page.fill("#holder_id", person.id_number)
    page.fill("#holder_name", person.name)
    page.click("#op-temp-issue")
    page.wait_for_selector("#wait-TEMP_ISSUE.htmx-request", timeout=10_000)
    holder_types(running, "975310", "975310")
    page.wait_for_selector(".window-outcome[data-op=TEMP_ISSUE][data-ok=yes]", timeout=60_000)

    # 领卡启用: refused while the temporary card is out; recalled in the same flow; enabled
    put_on_desk(running, made.chip)
    page.click("nav >> text=领卡启用")
    page.fill("#life_id_number", person.id_number)
    page.press("#life_id_number", "Enter")  # a scanner's Enter only looks the card up
    assert outcome(page, "LOOKUP")[0] == "yes"
    page.click("#life-hand_over")
    ok, text = outcome(page, "HAND_OVER")
    assert ok == "no" and "临时卡" in text, text
    shot(page, "handover-temporary-out")
    put_on_desk(running, temporary)
    page.click("#recall-temporary")
    assert outcome(page, "TEMP_RECALL")[0] == "yes"
    page.wait_for_selector("#recalled")
    put_on_desk(running, made.chip)
    page.click("#hand-over-again")
    ok, text = outcome(page, "HAND_OVER")
    assert ok == "yes" and "正常" in text, text
    shot(page, "handover-enabled")
    text = receipt_text(page, tmp_path, "handover")
    assert "领卡启用" in text and masked in text and person.id_number not in text

    # 挂失解挂注销: a temporary loss report, its lift
    page.click("nav >> text=挂失解挂注销")
    page.fill("#life_id_number", person.id_number)
    page.click("#life-lookup")
    assert "正常" in outcome(page, "LOOKUP")[1]
    page.click("#life-loss_temporary")
    ok, text = outcome(page, "LOSS_TEMPORARY")
    assert ok == "yes" and "临时挂失" in text
    assert masked in receipt_text(page, tmp_path, "loss")
    page.click("#life-lift")
    ok, text = outcome(page, "LIFT")
    assert ok == "yes" and "正常" in text
    text = receipt_text(page, tmp_path, "lift")
    assert "解除挂失" in text and masked in text and person.id_number not in text

    # 补换卡: refused before the formal loss report, then applied for
    page.click("nav >> text=补换卡")
    page.fill("#life_id_number", person.id_number)
    page.click("#life-replace")
    ok, text = outcome(page, "REPLACE")
    assert ok == "no" and "正式挂失" in text
    page.click("nav >> text=挂失解挂注销")
    page.fill("#life_id_number", person.id_number)
    page.click("#life-loss_formal")
    assert outcome(page, "LOSS_FORMAL")[0] == "yes"
    page.click("nav >> text=补换卡")
    page.fill("#life_id_number", person.id_number)
    page.select_option("#bank_name", "中国建设银行")
    page.click("#life-replace")
    ok, text = outcome(page, "REPLACE")
    assert ok == "yes" and "已申请" in text and "中国建设银行" in text, text
    shot(page, "replacement")
    text = receipt_text(page, tmp_path, "replacement")
    assert "补换卡" in text and "金融账户" in text and masked in text
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors
