"""GA 467 reader: what public SDKs send and what permits look like (issue 14, item 4)."""

from __future__ import annotations

import dataclasses

import pytest
import serial

from cardstation.drivers.idreader import frames as fr
from cardstation.drivers.idreader.card import (
    CARD_TYPE_OFFSET,
    Foreign2017Block,
    Foreign2023Block,
    HmtPermitBlock,
    IdCard,
)
from cardstation.drivers.idreader.errors import ReplyStatusError, UnknownCardType
from cardstation.drivers.idreader.reader import Ga467Reader
from cardstation.personalization.rules.id_documents import (
    check_cms_accepts,
    check_document_number,
    check_id_document,
)
from cardstation.simulators.idreader.model import IdReaderModel, make_card, make_permit


def _reader(model: IdReaderModel, monkeypatch: pytest.MonkeyPatch) -> Ga467Reader:
    """A Ga467Reader whose serial line answers from `model` in this process."""
    replies = bytearray()

    class Line:
        baudrate = 115200

        def reset_input_buffer(self) -> None:
            replies.clear()

        def write(self, data: bytes) -> int:
            out = model.handle(bytes(data))
            if out:
                replies.extend(out)
            return len(data)

        def flush(self) -> None:
            pass

        def read(self, n: int) -> bytes:
            chunk = bytes(replies[:n])
            del replies[:n]
            return chunk

        def close(self) -> None:
            pass

    monkeypatch.setattr(serial, "serial_for_url", lambda *a, **k: Line())
    return Ga467Reader("loop://")


def test_layout_offsets_match_the_public_sdk_header() -> None:
    """Johann356/readinfo PCSCGetData.h (b527fda2): J pass number at 220 (18 bytes), issue
    count at 238 (4), flag at 248 for every layout; I and Y field sizes."""
    assert HmtPermitBlock.sizeof() == Foreign2017Block.sizeof() == Foreign2023Block.sizeof() == 256
    offsets: dict[str, int] = {}
    at = 0
    for sub in HmtPermitBlock.subcons:
        offsets[sub.name] = at
        at += sub.sizeof()
    assert offsets["pass_number"] == 220 and offsets["issue_count"] == 238
    for layout in (HmtPermitBlock, Foreign2017Block, Foreign2023Block):
        at = 0
        for sub in layout.subcons:
            if sub.name == "card_type":
                assert at == CARD_TYPE_OFFSET
            at += sub.sizeof()


@pytest.mark.parametrize("kind", ["J", "I", "Y"])
def test_each_permit_decodes_into_its_own_fields(kind: str) -> None:
    """Johann356/readinfo PCSCGetData.h: t_idcardinfor (J), t_idforeigner (I),
    t_idforeigner2023 (Y); the flag at byte 248 selects the layout."""
    card = make_permit(kind)
    text = card.to_text_block()
    assert text[248:250].decode("utf-16-le") == kind
    back = IdCard.from_blocks(text, card.photo_wlt)
    assert back == dataclasses.replace(card, fingerprint=None)
    if kind == "J":
        assert back.pass_number == "H01234567" and back.issue_count == "01"
    elif kind == "I":
        assert back.english_name == "SMITH, JOHN" and back.nationality == "USA"
        assert back.card_version == "01" and back.authority_code == "1100"
        assert len(back.id_number) == 15
    else:
        assert len(back.english_name) > 35  # split over two fields on the card
        assert back.nationality == "USA" and back.id_number.startswith("9")


def test_resident_card_keeps_its_layout_and_an_unknown_flag_is_refused() -> None:
    """ssc-chip.md §12 resident layout (flag blank); a flag with no known layout is an
    unknown card type (SW3 40 class), not a misread resident card."""
    card = make_card()
    back = IdCard.from_blocks(card.to_text_block(), card.photo_wlt)
    assert back.card_type == "" and back.address == card.address
    text = bytearray(card.to_text_block())
    text[248:250] = "Q".encode("utf-16-le")
    with pytest.raises(ValueError, match="no known layout"):
        IdCard.from_blocks(bytes(text), card.photo_wlt)


def test_reader_reads_a_permit_and_refuses_an_unknown_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Johann356/readinfo PCSCGetData.h layouts, end to end through the GA 467 frames."""
    model = IdReaderModel(make_permit("Y"))
    reader = _reader(model, monkeypatch)
    card = reader.read_id_card()
    assert card.card_type == "Y" and card.to_dict()["card_type_label"].endswith("(2023)")
    odd = dataclasses.replace(make_card(), card_type="J")
    model.place(odd)
    assert reader.read_id_card().card_type == "J"
    model.place(make_card())
    original = model.card
    assert original is not None

    class Odd(type(original)):  # type: ignore[misc]
        def to_text_block(self) -> bytes:
            text = bytearray(IdCard.to_text_block(self))
            text[248:250] = "Q".encode("utf-16-le")
            return bytes(text)

    model.place(Odd(**{f.name: getattr(original, f.name)
                       for f in dataclasses.fields(original)}))
    with pytest.raises(UnknownCardType):
        reader.read_id_card()


def test_init_command_and_management_information(monkeypatch: pytest.MonkeyPatch) -> None:
    """ssc-chip.md corrections (public GA 467 SDK reimplementations): `61 FF xx` sets the
    maximum RF frame bytes, answer SW3 90; `30 05` answers 28 bytes of management
    information."""
    model = IdReaderModel()
    reader = _reader(model, monkeypatch)
    reader.set_max_rf_frame(0x50)
    assert model.received[-1] == fr.build_command(fr.Command.SET_MAX_RF_FRAME, data=b"\x50")
    assert model.received[-1].hex().upper() == "AAAAAA96690004" + "61FF50" + "CA"
    assert model.max_rf_frame == 0x50
    reader.find_card()
    reader.select_card()
    assert len(reader.read_management_info()) == fr.MANAGEMENT_INFO_SIZE == 28


def test_appended_address_may_be_up_to_280_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """ssc-chip.md corrections: `30 03` answers up to four addresses of 70 bytes (280)."""
    addresses = ["北京市海淀区一号", "北京市海淀区二号", "北京市海淀区三号", "北京市海淀区四号"]
    model = IdReaderModel(make_card(), appended_address=addresses)
    reader = _reader(model, monkeypatch)
    reader.find_card()
    reader.select_card()
    assert reader.read_appended_addresses() == addresses
    assert reader.read_appended_address() == addresses[-1]
    assert len(model.sent[-1]) == 7 + 3 + 280 + 1


def test_sw1_sw2_other_than_0000_fail_the_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    """ssc-chip.md corrections: a reply whose SW1 SW2 are not 00 00 has failed, whatever
    SW3 says."""
    model = IdReaderModel()
    reader = _reader(model, monkeypatch)
    monkeypatch.setattr(model, "_answer", lambda frame: fr.build_reply(fr.Sw3.OK, sw1=0x01))
    with pytest.raises(ReplyStatusError) as info:
        reader.reset_sam()
    assert info.value.sw1 == 0x01 and "SW1 SW2 = 01 00" in str(info.value)


@pytest.mark.parametrize("kind", ["", "J", "I", "Y"])
def test_each_document_has_its_number_rule(kind: str) -> None:
    """GB 11643-1999 (resident, J with 81/82/83, Y's check character); the I number shape
    (three letters + 12 digits); the generated numbers pass, a broken one does not."""
    card = make_card() if kind == "" else make_permit(kind)
    assert check_document_number(kind, card.id_number) == []
    broken = card.id_number[:-1] + ("0" if card.id_number[-1] != "0" else "1")
    if kind != "I":  # the 2017 check digit's algorithm is not public
        codes = {f.code for f in check_document_number(kind, broken)}
        assert "check_char_mismatch" in codes


def test_permit_rules_catch_the_wrong_kind_of_number() -> None:
    """J needs an 81/82/83 address code; Y starts with 9; a resident number is neither."""
    resident = make_card().id_number
    assert {f.code for f in check_document_number("J", resident)} == {"permit_region"}
    assert "permit_prefix" in {f.code for f in check_document_number("Y", resident)}
    assert {f.code for f in check_document_number("I", resident)} == {"length"}
    assert {f.code for f in check_document_number("Q", resident)} == {"card_type"}


def test_cms_refuses_the_2017_foreigner_card_with_a_clear_finding() -> None:
    """社会保障卡文件结构和数据项 V2.0 表9: the 社会保障号码 is 18 characters; a 15-character
    2017 permit number cannot be one."""
    for kind in ("", "J", "Y"):
        assert check_cms_accepts(kind) == []
    findings = check_id_document("I", make_permit("I").id_number)
    assert [f.code for f in findings] == ["cms_rejects_card_type"]
    assert "2017" in findings[0].message and "USA110090010100" not in findings[0].message
