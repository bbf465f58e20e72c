"""Personal values, jobs that carry them and a scan of a journal's files for them in clear:
shared by the tests of personal data at rest and of its retention."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cardstation.personalization.journal import Journal, State
from cardstation.personalization.model import Application, ReturnRecord
from cardstation.personalization.outbox import Outbox

ID_NUMBER = "41070219800101987X"
NAME = "欧阳秘密"
BANK = "6222029876543210987"
PHOTO = b"\xff\xd8" + b"PHOTO-OF-THE-HOLDER-" * 40


def application(id_number: str = ID_NUMBER, name: str = NAME) -> dict[str, Any]:
    return Application(
        id_number=id_number, name=name, sex="1", nation="01", birth_date="19800101",
        birthplace="410702", card_number="A98765432", bank_name="中国工商银行",
        batch="PCH777", issue_date="20240101", expiry_date="20340101", photo=PHOTO,
    ).to_dict()


def record(id_number: str = ID_NUMBER, name: str = NAME) -> dict[str, str]:
    return ReturnRecord(
        card_number="A98765432", id_number=id_number, name=name, issue_date="20240101",
        expiry_date="20340101", card_id_code="1" * 32, atr="3B6D000080318065B0",
        bank_account=BANK, batch="PCH777",
    ).to_dict()


def make_done(journal: Journal, id_number: str = ID_NUMBER, name: str = NAME) -> str:
    """A job walked to DONE with chip facts (bank account) and its return queued."""
    iss = journal.open_issuance(application(id_number, name), id_number)[0]
    chip = {"chip": {"bank_account": BANK, "card_number": "A98765432", "name": name}}
    for state in (State.PREVIEWED, State.FED, State.CHIP_WRITTEN, State.VERIFIED):
        iss = journal.transition(iss.id, state, data=chip if state is State.CHIP_WRITTEN
                                 else {"timings_ms": {state.value: 1.0}})
    journal.transition(iss.id, State.RETURN_QUEUED, return_record=record(id_number, name))
    outbox = Outbox(journal)
    outbox.mark_delivered(outbox.get(iss.id).id, "ACK-1")  # DONE: the CMS has it
    for state in (State.PRINTED, State.EJECTED, State.DONE):
        journal.transition(iss.id, state, data={"print_count_before": 5}
                           if state is State.PRINTED else None)
    return iss.id


def needles(id_number: str = ID_NUMBER, name: str = NAME) -> dict[str, bytes]:
    """Every personal value, in each form it could be stored in."""
    out = {
        "id number": id_number.encode(),
        "name utf-8": name.encode("utf-8"),
        "name escaped": json.dumps(name).strip('"').encode(),
        "bank account": BANK.encode(),
        "photo": PHOTO[2:40],
        "photo base64": base64.b64encode(PHOTO)[4:60],
    }
    return out


def file_bytes(path: Path) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        f = path.with_name(path.name + suffix)
        if f.exists():
            data += f.read_bytes()
    return data


def assert_sealed_at_rest(path: Path, id_number: str = ID_NUMBER, name: str = NAME) -> None:
    raw = file_bytes(path)
    assert raw, "nothing on disk"
    found = [what for what, needle in needles(id_number, name).items() if needle in raw]
    assert found == [], f"in clear in {path.name}: {found}"
