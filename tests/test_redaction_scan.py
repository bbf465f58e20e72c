"""A DEBUG run of every operation, scanned for every personal value it used, in every encoding.

One simulated station behind the production gRPC server (pcscd + vpcd, the printer over TCP,
the CMS over HTTP, the GA 467 reader and the PIN pad on ptys) makes a card end to end (CMS
fetch, claim, certificates, chip write, verify, return), rejects one at its preview, and then
serves the window: ID card, read card, verify a returned card, PIN verify/change/lock/unblock/
reset, temporary card issue/rewrite/recall. Every logger is at DEBUG (the APDU trace, the PIN
pad and ID reader traces, the CMS client and simulator) with logging set up the way the
command line sets it up. Then every value of a person or a secret that the run handled is
looked for in the captured text as ASCII, hex of its bytes (ASCII/GBK/UTF-8/UTF-16), BCD,
JSON escapes and base64.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator

import grpc
import pytest

from cardstation.personalization import cert_assumptions as ca
from cardstation.personalization.keys.scheme import TEST_MASTER_KEYS
from cardstation.personalization.model import Application
from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
from cardstation.protos.cardstation.v1 import issuance_pb2_grpc, window_pb2_grpc
from cardstation.protos.cardstation.v1 import window_pb2 as wpb
from cardstation.simulators.card import make_card
from tests.support.window import holder_types, put_on_desk, window_station

pytestmark = pytest.mark.pcscd
WINDOW_HOLDER = ("11010519491231002X", "李秀英")  # the personalised card's and the ID card's
TEMPORARY_HOLDER = ("110105198001010016", "王二")
PINS = ("802514", "470125", "246810", "135790")


class Capture(logging.Handler):
    """Keeps every record both as the handler's formatted line (what a log file gets) and as
    the record's own message without the record factory's masking (what the call site and
    the APDU trace produced): the structure must hide personal data by itself; the pattern
    masking is the second net."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []
        self.raw: list[str] = []
        self.names: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.names.add(record.name)
        self.lines.append(self.format(record))
        self.raw.append(logging.LogRecord.getMessage(record))


@pytest.fixture(scope="module")
def debug_logs() -> Iterator[Capture]:
    """Logging as `cardstation --log-level DEBUG` sets it up, captured."""
    from cardstation import logs

    previous_factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    previous_level = root.level
    logs.install_redaction()
    capture = Capture(logs.RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture)
    root.setLevel(previous_level)
    logging.setLogRecordFactory(previous_factory)


@pytest.fixture(scope="module")
def station(tmp_path_factory, debug_logs) -> Iterator[object]:
    with window_station(tmp_path_factory.mktemp("scan")) as running:
        yield running


def rpc_fails(call) -> None:
    with pytest.raises(grpc.RpcError):
        call()


def issue(station, id_number: str) -> str:
    """Fetch the application and make its card through the API; the final state."""
    stub = issuance_pb2_grpc.IssuanceServiceStub(station.channel)
    stub.GetApplication(ipb.GetApplicationRequest(id_number=id_number), timeout=30)
    created = stub.CreateIssuance(ipb.CreateIssuanceRequest(id_number=id_number), timeout=30)
    last = None
    for response in stub.WatchIssuance(ipb.WatchIssuanceRequest(id=created.issuance.id),
                                       timeout=120):
        last = response.event
        if last.final:
            break
    assert last is not None
    return ipb.IssuanceState.Name(last.state).removeprefix("ISSUANCE_STATE_")


def rejected_at_preview(station) -> Application:
    """An application whose birth date and birthplace disagree with its ID number: the
    preview's findings (logged with the job's events) must not carry them."""
    sim = station.simulated
    app = Application.from_dict(sim.cms.ledger(photos=True)["applications"][
        sim.cms.samples["ready"][2]] | {"birth_date": "19700101", "birthplace": "510104"})
    sim.cms.add_application(app)
    assert issue(station, app.id_number) == "REJECTED"
    return app


def make_card_end_to_end(station, id_number: str) -> dict:
    """CMS fetch, preview, chip, return, print: the card must be DONE and its return in the
    CMS ledger (which it answers)."""
    assert issue(station, id_number) == "DONE"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        returns = [r["record"] for r in station.simulated.cms.ledger(photos=False)["returns"]
                   if r["record"]["id_number"] == id_number]
        if returns:
            return returns[0]
        time.sleep(0.1)
    raise AssertionError("the CMS never got the return")


def window_operations(station) -> list[object]:
    """Every window service once (and the failures an operator meets); returns the desk cards."""
    stub = window_pb2_grpc.WindowServiceStub(station.channel)
    stub.ReadIdCard(wpb.ReadIdCardRequest(), timeout=20)
    formal = make_card("personalised")
    put_on_desk(station, formal)
    stub.ReadCard(wpb.ReadCardRequest(), timeout=20)
    stub.VerifyReturnedCard(wpb.VerifyReturnedCardRequest(id_number=WINDOW_HOLDER[0]),
                            timeout=20)
    rpc_fails(lambda: stub.VerifyReturnedCard(wpb.VerifyReturnedCardRequest(
        id_number=TEMPORARY_HOLDER[0]), timeout=20))
    holder_types(station, "123456")
    stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)
    holder_types(station, "123456", PINS[0], PINS[0])
    stub.ChangePin(wpb.ChangePinRequest(), timeout=20)
    for _ in range(6):  # five wrong tries, then locked
        holder_types(station, PINS[3])
        rpc_fails(lambda: stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20))
    stub.UnblockPin(wpb.UnblockPinRequest(), timeout=20)
    holder_types(station, PINS[0])
    stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)
    holder_types(station, PINS[1], PINS[1])
    stub.ResetPin(wpb.ResetPinRequest(), timeout=20)

    temporary = make_card("temporary")
    put_on_desk(station, temporary)
    holder_types(station, PINS[2], PINS[2])
    stub.IssueTemporaryCard(wpb.IssueTemporaryCardRequest(
        holder_id_number=TEMPORARY_HOLDER[0], holder_name=TEMPORARY_HOLDER[1]), timeout=20)
    holder_types(station, PINS[3], PINS[3])
    stub.RewriteTemporaryCard(wpb.RewriteTemporaryCardRequest(), timeout=20)
    holder_types(station, PINS[3])
    stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)
    stub.RecallTemporaryCard(wpb.RecallTemporaryCardRequest(), timeout=20)
    station.simulated.desk.remove()
    return [formal, temporary]


# -- what the run used, and how it could show -----------------------------------------------

def text_forms(value: str) -> set[str]:
    """A text value as it could appear in a log line: itself, JSON-escaped, and the hex and
    base64 of its bytes in every encoding the station or its devices use."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    for codec in ("ascii", "gbk", "utf-8", "utf-16-le", "utf-16-be"):
        try:
            raw = value.encode(codec)
        except UnicodeEncodeError:
            continue
        forms |= bytes_forms(raw)
    if value.isdigit():  # packed BCD is the digits themselves, F-padded when odd
        forms.add(value + "F" * (len(value) % 2))
    return forms


def bytes_forms(raw: bytes) -> set[str]:
    """Hex (either case, with or without spaces) and base64 of `raw`, and of its middle 24
    bytes for long values (a photo logged in part)."""
    chunks = [raw] if len(raw) <= 48 else [raw, raw[len(raw) // 2 : len(raw) // 2 + 24]]
    forms: set[str] = set()
    for chunk in chunks:
        forms |= {chunk.hex().upper(), chunk.hex(" ").upper()}
    b64 = base64.b64encode(raw).decode()
    middle = (len(b64) // 8) * 4
    forms.add(b64 if len(b64) <= 64 else b64[middle : middle + 32])
    return forms


def personal_values(station, record: dict, desk_cards: list[object],
                    rejected: Application) -> dict[str, set[str]]:
    """Every personal or secret value the run handled, by what it is."""
    sim = station.simulated
    applications = sim.cms.ledger(photos=True)["applications"]
    made = applications[record["id_number"]]
    values: dict[str, set[str]] = {}

    def add(label: str, forms: set[str]) -> None:
        values[label] = {f for f in forms if len(f) >= 6}

    add("rejected application: birthplace", text_forms(rejected.birthplace))
    for who, app in (("made card", made), ("window holder", applications[WINDOW_HOLDER[0]]),
                     ("rejected application", applications[rejected.id_number])):
        add(f"{who}: ID number", text_forms(app["id_number"]))
        add(f"{who}: name", text_forms(app["name"]))
        add(f"{who}: birth date", text_forms(app["birth_date"]))
        add(f"{who}: card number", text_forms(app["card_number"]))
        add(f"{who}: photo", bytes_forms(base64.b64decode(app["photo"])))
    add("made card: bank account", text_forms(record["bank_account"]))
    add("temporary holder: ID number", text_forms(TEMPORARY_HOLDER[0]))
    add("temporary holder: name", text_forms(TEMPORARY_HOLDER[1]))
    id_card = sim.idreader.model.card
    add("ID card: address", text_forms(id_card.address))
    add("ID card: photo", bytes_forms(id_card.photo_wlt))
    for i, pin in enumerate(PINS):
        add(f"PIN {i}", text_forms(pin))
    for chip in sim.chips:  # what the pipeline wrote: the CMS's secrets for the card
        secrets = chip.card.file(ca.SECRETS.fid).data
        i = 0
        while i + 2 <= len(secrets) and secrets[i] not in (0x00, 0xFF):  # SIMPLE-TLV items
            tag, length = secrets[i], secrets[i + 1]
            add(f"card secret {tag:02X}", bytes_forms(secrets[i + 2 : i + 2 + length]))
            i += 2 + length
    for card in desk_cards:
        if card.pan:  # a temporary card has no bank application
            add(f"desk card {card.pan[-4:]}: bank account", text_forms(card.pan))
        for usage, slot in card.keys.items():
            add(f"desk card key {usage}", bytes_forms(slot.key))
    for usage, key in TEST_MASTER_KEYS.items():
        add(f"master key {usage}", bytes_forms(key))
    return values


_HEX = frozenset("0123456789ABCDEF ")


def leaks(text: str, values: dict[str, set[str]]) -> list[str]:
    """Which values appear in `text`: hex forms in either case, the others exactly."""
    folded = text.upper()
    found = []
    for label, forms in values.items():
        for form in forms:
            at = (folded if set(form) <= _HEX else text).find(form)
            if at >= 0:
                found.append(f"{label} as {form!r} in ...{text[max(0, at - 60):at + 60]}...")
                break
    return found


def test_a_debug_run_of_every_operation_logs_no_personal_value(station, debug_logs) -> None:
    record = make_card_end_to_end(station, station.simulated.cms.samples["ready"][1])
    rejected = rejected_at_preview(station)
    desk_cards = window_operations(station)
    assert {"cardstation.apdu", "cardstation.pinpad", "cardstation.personalization.cms",
            "cardstation.personalization.pipeline"} <= debug_logs.names  # the traces ran
    values = personal_values(station, record, desk_cards, rejected)
    assert len(values) > 20
    formatted = "\n".join(debug_logs.lines)
    raw = "\n".join(debug_logs.raw)
    found = leaks(formatted, values)
    assert not found, "in the log lines:\n" + "\n".join(found)
    found = leaks(raw, values)  # the call sites' own text, before the pattern net
    assert not found, "in the messages before the record factory's masking:\n" + "\n".join(found)


def test_the_scan_finds_a_value_in_any_encoding() -> None:
    """The scan itself: each encoding of a value is found, a masked form is not."""
    values = {"id": text_forms("11010519491231002X"), "name": text_forms("李秀英"),
              "pan": text_forms("6219991008053104646"), "key": bytes_forms(bytes(range(16)))}
    name = "李秀英"
    for hit in ("id 11010519491231002X", name.encode("gbk").hex().upper(),
                name.encode("utf-16-le").hex(), name.encode("utf-16-be").hex(" "),
                "\\u674e\\u79c0\\u82f1", "702057136219991008053104646D30",
                b"11010519491231002X".hex(), "000102030405060708090A0B0C0D0E0F",
                "AAECAwQFBgcICQoLDA0ODw=="):
        assert leaks(hit, values), hit
    for miss in ("110105********002X", "621999*********4646", "<18 bytes personal #1a2b3c4d>"):
        assert leaks(miss, values) == [], miss

