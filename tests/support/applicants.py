"""Sample applicants: two ID numbers, an application and a return record as the journal takes
them (dicts)."""

from __future__ import annotations

from typing import Any

from cardstation.personalization.model import Application, ReturnRecord

ID_NUMBER = "11010519491231002X"
OTHER_ID = "440524188001010014"


def application(id_number: str = ID_NUMBER) -> dict[str, Any]:
    return Application(
        id_number=id_number,
        name="张三",
        sex="1",
        nation="01",
        birth_date="19491231",
        birthplace="110105",
        card_number="A12345678",
        bank_name="中国银行",
        batch="PCH001",
        issue_date="20240101",
        expiry_date="20340101",
        photo=b"\xff\xd8photo",
    ).to_dict()


def return_record(id_number: str = ID_NUMBER) -> dict[str, str]:
    return ReturnRecord(
        card_number="A12345678",
        id_number=id_number,
        name="张三",
        issue_date="20240101",
        expiry_date="20340101",
        card_id_code="0" * 32,
        atr="3B6D000080318065B0",
        bank_account="6222021234567890123",
        batch="PCH001",
    ).to_dict()
