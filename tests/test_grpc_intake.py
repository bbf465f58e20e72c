"""IntakeService over a real port with the simulated station: a photo normalised, a new
application submitted, charged and marked, the card made, handed over (refused with a
temporary card out until it is recalled, and for another holder's card), reported lost, lifted,
replaced; each change with its receipt PDF, the ID number masked (rendered to PNG and read
back as text)."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from PIL import Image

from cardstation.benchmarks import photo_set
from cardstation.personalization.cms import CmsClient
from cardstation.protos.cardstation.v1 import intake_pb2 as pb
from cardstation.protos.cardstation.v1 import intake_pb2_grpc, issuance_pb2_grpc
from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
from cardstation.server.errors import error_info
from cardstation.simulators.card import make_card
from cardstation.simulators.cms.applicants import generate_applicants
from tests.support.window import put_on_desk, window_station

pytestmark = pytest.mark.pcscd
TEMP = "CD" * 16


@pytest.fixture(scope="module")
def station(tmp_path_factory) -> Iterator[object]:
    with window_station(tmp_path_factory.mktemp("intake")) as running:
        yield running


def failure(call) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    info = error_info(caught.value)
    assert info is not None and " — " in caught.value.details()
    return caught.value.code(), info.reason, dict(info.metadata)


def picture(colour=(246, 246, 246)) -> bytes:
    canvas = photo_set.backdrop((640, 480), colour, random.Random(7))
    frame, _, _ = photo_set.place(canvas, 1.4, 2, (320, 200))
    out = io.BytesIO()
    Image.fromarray(frame).save(out, "JPEG", quality=90)
    return out.getvalue()


def receipt_text(pdf: bytes, tmp: Path) -> str:
    """The receipt rendered to PNG (it must draw) and its text."""
    assert pdf.startswith(b"%PDF-")
    if not (shutil.which("pdftoppm") and shutil.which("pdftotext")):
        pytest.skip("poppler-utils (pdftoppm, pdftotext) is not installed")
    path = tmp / "receipt.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(path), str(tmp / "page")], check=True)
    page = Image.open(next(tmp.glob("page*.png"))).convert("L")
    assert page.getextrema()[0] < 100  # something dark was drawn
    return subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_intake_and_the_cards_life_over_the_api(station, tmp_path: Path) -> None:
    stub = intake_pb2_grpc.IntakeServiceStub(station.channel)
    person = generate_applicants(1, 515)[0]
    masked = person.id_number[:6] + "********" + person.id_number[-4:]

    # the photo: refused with its reason, then accepted (whitening is the operator's choice)
    code, reason, _ = failure(lambda: stub.NormalisePhoto(pb.NormalisePhotoRequest(
        picture=picture((110, 150, 215))), timeout=30))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PHOTO_BACKGROUND_NOT_WHITE")
    photo = stub.NormalisePhoto(pb.NormalisePhotoRequest(picture=picture()), timeout=30)
    assert Image.open(io.BytesIO(photo.photo_jpeg)).size == (358, 441)
    assert 14 * 1024 <= len(photo.photo_jpeg) <= 70 * 1024 and not photo.whitened

    application = pb.NewApplication(
        id_number=person.id_number, name=person.name, sex=person.sex, nation=person.nation,
        birth_date=person.birth_date, id_address="河南省新乡市红旗区人民路1号",
        person_status="在职", hukou_type="城镇", hukou_address="河南省新乡市红旗区人民路1号",
        phone="13800138000", postal_address="河南省新乡市红旗区人民路1号",
        employer_name="新乡市示例有限公司", employer_code="41070000001",
        bank_name="待定", photo_jpeg=photo.photo_jpeg)
    code, reason, meta = failure(lambda: stub.SubmitApplication(
        pb.SubmitApplicationRequest(application=application), timeout=30))
    assert (code, reason, meta["fields"]) == (grpc.StatusCode.INVALID_ARGUMENT,
                                              "APPLICATION_INVALID", "bank_name")
    application.bank_name = "中国银行"
    submitted = stub.SubmitApplication(pb.SubmitApplicationRequest(application=application),
                                       timeout=30).change
    assert submitted.card.state == "applied" and submitted.application_number
    assert submitted.card.id_number_masked == masked
    text = receipt_text(submitted.receipt_pdf, tmp_path)
    assert "新增申请" in text and masked in text and person.id_number not in text
    assert person.id_number.encode() not in submitted.receipt_pdf
    # one outstanding card per holder
    code, reason, _ = failure(lambda: stub.SubmitApplication(pb.SubmitApplicationRequest(
        application=application, client_request_id="another"), timeout=30))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "HOLDER_HAS_CARD")

    holder = pb.GetCardLifeRequest(id_number=person.id_number)
    _, reason, _ = failure(lambda: stub.MarkInstantIssuance(
        pb.MarkInstantIssuanceRequest(id_number=person.id_number), timeout=30))
    assert reason == "CARD_STATE_INVALID"
    stub.RegisterFee(pb.RegisterFeeRequest(id_number=person.id_number), timeout=30)
    marked = stub.MarkInstantIssuance(pb.MarkInstantIssuanceRequest(
        id_number=person.id_number), timeout=30).change
    assert marked.card.state == "ready" and marked.card.fee_registered

    # the card is made here, then taken from the output hopper to the desk reader
    issuances = issuance_pb2_grpc.IssuanceServiceStub(station.channel)
    job = issuances.CreateIssuance(ipb.CreateIssuanceRequest(id_number=person.id_number),
                                   timeout=60).issuance
    for response in issuances.WatchIssuance(ipb.WatchIssuanceRequest(id=job.id), timeout=120):
        if response.event.final:
            assert response.event.state == ipb.ISSUANCE_STATE_DONE, response.event
            break
    assert stub.GetCardLife(holder, timeout=30).card.state == "made"
    model = station.simulated.model
    with model._locked():
        made = model.output_hopper.pop()

    hand_over = pb.HandOverCardRequest(id_number=person.id_number)
    put_on_desk(station, make_card("personalised"))  # another holder's card
    assert failure(lambda: stub.HandOverCard(hand_over, timeout=30))[1] == "WRONG_CARD"
    put_on_desk(station, made.chip)
    cms = CmsClient(station.simulated.cms.base_url, "sim-temporary")
    cms.record_temporary_card(TEMP, person.id_number, person.name, "20260101", "20260401")
    assert stub.GetCardLife(holder, timeout=30).card.temporary_card_out
    code, reason, meta = failure(lambda: stub.HandOverCard(hand_over, timeout=30))
    assert reason == "TEMPORARY_CARD_OUTSTANDING" and "recall" in meta["remedy"]
    cms.recall_temporary_card(TEMP)
    handed = stub.HandOverCard(hand_over, timeout=30)
    assert handed.change.card.state == "active" and handed.card_number
    (tmp_path / "h").mkdir()
    assert "领卡启用" in receipt_text(handed.change.receipt_pdf, tmp_path / "h")

    # loss, lift, replacement (only after the formal report), cancel refused on no card
    temporary = stub.ReportLoss(pb.ReportLossRequest(
        id_number=person.id_number, loss_kind=pb.LOSS_KIND_TEMPORARY), timeout=30).change
    assert temporary.card.state == "lost_temporary"
    lifted = stub.LiftLoss(pb.LiftLossRequest(id_number=person.id_number), timeout=30).change
    assert lifted.card.state == "active"
    (tmp_path / "l").mkdir()
    assert masked in receipt_text(lifted.receipt_pdf, tmp_path / "l")
    replace = pb.ApplyReplacementRequest(id_number=person.id_number,
                                         replacement_kind=pb.REPLACEMENT_KIND_LOST)
    assert failure(lambda: stub.ApplyReplacement(replace, timeout=30))[1] == \
        "FORMAL_LOSS_REQUIRED"
    stub.ReportLoss(pb.ReportLossRequest(id_number=person.id_number,
                                         loss_kind=pb.LOSS_KIND_FORMAL), timeout=30)
    replaced = stub.ApplyReplacement(replace, timeout=30).change
    assert replaced.card.state == "applied" and replaced.card.replaces == handed.card_number
    (tmp_path / "r").mkdir()
    text = receipt_text(replaced.receipt_pdf, tmp_path / "r")
    assert "补换卡" in text and "金融账户" in text and masked in text
    assert failure(lambda: stub.CancelCard(pb.CancelCardRequest(
        id_number=person.id_number, reason="测试"), timeout=30))[1] == "CARD_STATE_INVALID"
    assert failure(lambda: stub.ReportLoss(pb.ReportLossRequest(
        id_number=person.id_number), timeout=30))[1] == "LOSS_KIND_REQUIRED"


def test_the_intake_commands(station, tmp_path: Path, capsys) -> None:
    import json

    from cardstation.cli import main
    from cardstation.simulators.cms.conformance import intake_of

    person = intake_of(generate_applicants(1, 616)[0])
    fields = {k: v for k, v in person.to_dict().items() if k != "photo"}
    (tmp_path / "app.json").write_text(json.dumps(fields, ensure_ascii=False), "utf-8")
    (tmp_path / "photo.jpg").write_bytes(person.photo)
    server = ["--server", f"127.0.0.1:{station.port}"]
    receipt = tmp_path / "receipt.pdf"
    assert main(["intake", "submit", str(tmp_path / "app.json"), "--photo",
                 str(tmp_path / "photo.jpg"), "--receipt", str(receipt), *server]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["change"]["card"]["state"] == "applied" and out["receipt"] == str(receipt)
    assert receipt.read_bytes().startswith(b"%PDF-") and receipt.stat().st_mode & 0o077 == 0
    assert person.id_number not in json.dumps(out)
    assert main(["intake", "fee", person.id_number, *server]) == 0
    assert main(["intake", "mark", person.id_number, *server]) == 0
    capsys.readouterr()
    assert main(["intake", "status", person.id_number, *server]) == 0
    assert json.loads(capsys.readouterr().out)["card"]["state"] == "ready"
    assert main(["intake", "replace", person.id_number, "--lost", *server]) == 1
    error = json.loads(capsys.readouterr().err)
    assert error["reason"] == "FORMAL_LOSS_REQUIRED" and " — " in error["message"]
