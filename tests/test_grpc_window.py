"""WindowService over a real port: ID reader (pty), desk reader (pcscd + vpcd), PIN pad (pty),
CMS. Ends with a scan of every log record and the audit log: no PIN, no full ID number."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from cardstation.drivers.pcsc.readers import PcscContext
from cardstation.drivers.pcsc.transport import PcscTransport
from cardstation.protos.cardstation.v1 import window_pb2 as wpb
from cardstation.protos.cardstation.v1 import window_pb2_grpc
from cardstation.server.errors import error_info
from cardstation.simulators.card import make_card
from cardstation.simulators.vpcd.nochip import NoChipUnderContacts
from tests.support.pcsc import DESK_READER
from tests.support.window import holder_types, put_on_desk, window_station

pytestmark = pytest.mark.pcscd
HOLDER = "11010519491231002X"
PINS = ("802514", "470125", "246810", "135790")


@pytest.fixture(scope="module")
def window(tmp_path_factory) -> Iterator[object]:
    with window_station(tmp_path_factory.mktemp("window")) as running:
        yield running


def failure(call) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call()
    details = error_info(info.value)
    return details.reason if details else info.value.code().name


def test_every_window_operation_and_no_secret_in_any_log(window, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    stub = window_pb2_grpc.WindowServiceStub(window.channel)
    # ID card on the GA 467 reader: the number goes to the operator console, not to logs
    id_card = stub.ReadIdCard(wpb.ReadIdCardRequest(), timeout=20).id_card
    assert id_card.id_number == HOLDER and id_card.name == "李秀英"
    window.simulated.idreader.inject("no_card")
    assert failure(lambda: stub.ReadIdCard(wpb.ReadIdCardRequest(), timeout=20)) == "NO_ID_CARD"
    window.simulated.idreader.clear_faults()
    window.simulated.idreader.inject("sam_failure")
    assert failure(lambda: stub.ReadIdCard(wpb.ReadIdCardRequest(), timeout=20)).startswith(
        "IDREADER_")
    window.simulated.idreader.clear_faults()

    # a formal card in the desk reader
    assert failure(lambda: stub.ReadCard(wpb.ReadCardRequest(), timeout=20)) == "NO_CARD"
    put_on_desk(window, make_card("personalised"))
    read = stub.ReadCard(wpb.ReadCardRequest(), timeout=20)
    assert read.kind == wpb.CARD_KIND_FORMAL and read.info.id_number_masked == "110105********002X"
    stub.VerifyReturnedCard(wpb.VerifyReturnedCardRequest(id_number=HOLDER), timeout=20)
    # 显示完整号码: the same read with both numbers in full, audited below
    revealed = stub.RevealCardNumbers(wpb.RevealCardNumbersRequest(), timeout=20)
    assert revealed.id_number == HOLDER and revealed.card.info == read.info
    account = revealed.bank_account
    assert 16 <= len(account) <= 19 and account.isdigit()
    assert read.info.bank_account_masked == account[:6] + "*" * (len(account) - 10) + account[-4:]
    assert failure(lambda: stub.VerifyReturnedCard(wpb.VerifyReturnedCardRequest(
        id_number="110105198001010016"), timeout=20)) == "WRONG_CARD"

    # PINs, typed on the pad
    holder_types(window, "123456")
    stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)
    holder_types(window, "123456", "123456")
    assert failure(lambda: stub.ChangePin(wpb.ChangePinRequest(), timeout=20)) == \
        "PIN_NOT_ALLOWED"
    holder_types(window, "123456", PINS[0], PINS[0])
    stub.ChangePin(wpb.ChangePinRequest(), timeout=20)
    reasons = []
    for _ in range(6):
        holder_types(window, "000000")
        reasons.append(failure(lambda: stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)))
    assert reasons == ["WRONG_PIN"] * 5 + ["PIN_LOCKED"]
    stub.UnblockPin(wpb.UnblockPinRequest(), timeout=20)
    holder_types(window, PINS[0])
    stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)
    holder_types(window, PINS[1], PINS[1])
    stub.ResetPin(wpb.ResetPinRequest(), timeout=20)
    holder_types(window, PINS[1])
    stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)
    # the holder cancels on the pad; nobody types (timeout)
    window.simulated.pinpad.script(["CANCEL"])
    assert failure(lambda: stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)) == \
        "PIN_ENTRY_CANCELLED"
    assert failure(lambda: stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)) == \
        "PIN_ENTRY_TIMEOUT"

    # temporary cards
    temporary = make_card("temporary")
    put_on_desk(window, temporary)
    holder_types(window, PINS[2], PINS[2])
    issued = stub.IssueTemporaryCard(wpb.IssueTemporaryCardRequest(
        holder_id_number=HOLDER, holder_name="李秀英"), timeout=20).card
    assert issued.holder_id_masked == "110105********002X"
    put_on_desk(window, make_card("temporary", serial=0x30000098))
    # refused by the CMS before the pad prompts: nobody types
    assert failure(lambda: stub.IssueTemporaryCard(wpb.IssueTemporaryCardRequest(
        holder_id_number=HOLDER, holder_name="李秀英"), timeout=20)) == \
        "TEMPORARY_CARD_OUTSTANDING"
    assert failure(lambda: stub.RecallTemporaryCard(wpb.RecallTemporaryCardRequest(),
                                                    timeout=20)) == "TEMPORARY_CARD_UNKNOWN"
    put_on_desk(window, temporary)
    holder_types(window, PINS[3], PINS[3])
    stub.RewriteTemporaryCard(wpb.RewriteTemporaryCardRequest(), timeout=20)
    holder_types(window, PINS[3])
    stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)  # the rewritten PIN is the card's now
    recalled = stub.RecallTemporaryCard(wpb.RecallTemporaryCardRequest(), timeout=20).card
    assert recalled.card_id_code == issued.card_id_code
    window.simulated.desk.remove()

    # the scan: every log record (DEBUG, APDU and device traces included) and the audit log
    audit = (window.folder / "station" / "audit.jsonl").read_text()
    assert audit.count("WindowService") >= 8
    assert audit.count("RevealCardNumbers") == 1
    text = caplog.text + audit
    assert "cardstation.apdu" in {r.name for r in caplog.records}  # the trace did run
    for pin in PINS:
        assert pin not in text, pin
        assert pin.encode().hex() not in text.lower()
    assert HOLDER not in text and "110105198001010016" not in text


def test_watch_pin_entry_shows_digits_typed_never_the_digits(window) -> None:
    stub = window_pb2_grpc.WindowServiceStub(window.channel)
    put_on_desk(window, make_card("personalised"))
    stream = stub.WatchPinEntry(wpb.WatchPinEntryRequest(), timeout=60)
    seen: list[wpb.PinEntryProgress] = []
    first = threading.Event()

    def read() -> None:
        with contextlib.suppress(grpc.RpcError):  # CANCELLED when the test ends the stream
            for reply in stream:
                seen.append(reply.progress)
                first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert first.wait(10)  # the watch is in place before the PIN operation starts
    verify = threading.Thread(target=lambda: stub.VerifyPin(wpb.VerifyPinRequest(), timeout=30))
    verify.start()
    pad = window.simulated.pinpad
    assert pad.wait_for_prompt(10)
    for digit in "123456":
        pad.type_digits(digit)
        time.sleep(0.05)
    pad.press_enter()
    verify.join(30)
    deadline = time.monotonic() + 10
    while not (seen and not seen[-1].active and len(seen) > 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    stream.cancel()
    assert not seen[0].active  # the state when the watch began: nothing under way
    during = [p for p in seen if p.active]
    assert {p.operation for p in during} == {"VERIFY"}
    assert {p.prompt for p in during if p.prompt} == {"ENTER_PIN"}
    digits = [p.digits for p in during]
    # a watcher that falls behind hears the latest count (never a count that went back)
    assert digits == sorted(digits) and digits[-1] == 6 and len(set(digits)) >= 2
    assert {p.max_digits for p in during} == {6}
    assert not seen[-1].active  # and the end is told


def test_window_commands(window, capsys) -> None:
    from cardstation.cli import main

    server = ["--server", f"127.0.0.1:{window.port}"]
    put_on_desk(window, make_card("personalised"))
    assert main(["read-card", *server]) == 0
    out = capsys.readouterr().out
    assert '"kind": "CARD_KIND_FORMAL"' in out and HOLDER not in out
    holder_types(window, "123456")
    assert main(["pin", "verify", *server]) == 0
    holder_types(window, "000000")
    assert main(["pin", "verify", *server]) == 1
    assert '"WRONG_PIN"' in capsys.readouterr().err
    temporary = make_card("temporary", serial=0x30000097)
    put_on_desk(window, temporary)
    holder_types(window, "975310", "975310")
    assert main(["temp", "issue", "110105198001010016", "王二", *server]) == 0
    assert '"holder_id_masked": "110105********0016"' in capsys.readouterr().out
    assert main(["temp", "recall", *server]) == 0
    window.simulated.desk.remove()


def failure_details(call) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    details = error_info(info.value)
    assert details is not None
    return info.value.code(), details.reason, dict(details.metadata)


def read_holder(window, stub) -> str:
    return stub.ReadCard(wpb.ReadCardRequest(), timeout=20).info.id_number_masked


def test_temporary_issue_abandoned_midway_over_the_api(window) -> None:
    """Cancelled on the pad: ABORTED, nothing on the chip or at the CMS. Card pulled while it
    is written: the CMS record is voided (ABORTED, TEMPORARY_ISSUE_ROLLED_BACK) and issuing the
    same card again finishes it."""
    stub = window_pb2_grpc.WindowServiceStub(window.channel)
    services = window.runtime.station.window.services
    ledger = window.simulated.cms.ledger
    card = make_card("temporary", serial=0x30000096)
    code = card.card_identification_code.hex().upper()
    request = wpb.IssueTemporaryCardRequest(holder_id_number="110105198001010016",
                                            holder_name="王二")
    put_on_desk(window, card)
    window.simulated.pinpad.script(["CANCEL"])
    status, reason, metadata = failure_details(
        lambda: stub.IssueTemporaryCard(request, timeout=20))
    assert (status, reason) == (grpc.StatusCode.ABORTED, "PIN_ENTRY_CANCELLED")
    assert "nothing was written" in metadata["cause"] and metadata["remedy"]
    assert read_holder(window, stub) == ""
    assert code not in ledger(photos=False)["temporary_cards"]

    original = services.open_desk

    def pulled_at_first_write():
        transport = original()

        def observe(command: bytes, response: bytes) -> None:
            if command[1:2] == b"\xdc" and response[-2:] == b"\x90\x00":
                transport.observers.clear()
                window.simulated.desk.remove()
                with PcscContext() as pcsc:
                    pcsc.wait_for_removal(DESK_READER, timeout=10)

        transport.observers.append(observe)
        return transport

    services.open_desk = pulled_at_first_write
    try:
        holder_types(window, "975310", "975310")
        status, reason, metadata = failure_details(
            lambda: stub.IssueTemporaryCard(request, timeout=20))
    finally:
        services.open_desk = original
    assert (status, reason) == (grpc.StatusCode.ABORTED, "TEMPORARY_ISSUE_ROLLED_BACK")
    assert "withdrawn" in metadata["cause"] and "issue it again" in metadata["remedy"]
    assert ledger(photos=False)["temporary_cards"][code]["status"] == "voided"
    put_on_desk(window, card)
    holder_types(window, "975310", "975310")
    stub.IssueTemporaryCard(request, timeout=20)
    assert ledger(photos=False)["temporary_cards"][code]["status"] == "issued"
    stub.RecallTemporaryCard(wpb.RecallTemporaryCardRequest(), timeout=20)
    window.simulated.desk.remove()


def test_desk_faults_over_the_api_name_cause_and_remedy(window) -> None:
    stub = window_pb2_grpc.WindowServiceStub(window.channel)
    put_on_desk(window, NoChipUnderContacts())
    status, reason, metadata = failure_details(
        lambda: stub.ReadCard(wpb.ReadCardRequest(), timeout=20))
    assert (status, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CARD_UNREADABLE")
    assert "dirty" in metadata["cause"] and "wipe the chip" in metadata["remedy"]
    window.simulated.desk.remove()
    services = window.runtime.station.window.services
    original = services.open_desk
    services.open_desk = lambda: PcscTransport("Virtual PCD Desk 09 09")  # unplugged
    try:
        status, reason, metadata = failure_details(
            lambda: stub.ReadCard(wpb.ReadCardRequest(), timeout=20))
    finally:
        services.open_desk = original
    assert (status, reason) == (grpc.StatusCode.UNAVAILABLE, "DESK_READER_UNAVAILABLE")
    assert "USB cable" in metadata["remedy"]


def test_pin_pad_fault_over_the_api_names_cause_and_remedy(window) -> None:
    stub = window_pb2_grpc.WindowServiceStub(window.channel)
    put_on_desk(window, make_card("personalised"))
    window.simulated.pinpad.inject("keypad_fault")
    status, reason, metadata = failure_details(
        lambda: stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20))
    assert status == grpc.StatusCode.UNAVAILABLE and reason.startswith("PINPAD_")
    assert "PIN pad failed" in metadata["cause"] and "cable" in metadata["remedy"]
    holder_types(window, "123456")  # the pad is opened again on the next use
    stub.VerifyPin(wpb.VerifyPinRequest(), timeout=20)
    window.simulated.desk.remove()
