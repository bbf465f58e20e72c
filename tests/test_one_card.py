"""Issue 11 over the real server and simulators: one card per person, DONE means the CMS has the
return, no fault is a dead end, admission before anything irreversible, a station that starts
without its devices."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cardstation.personalization.rules.card_number import card_number_check_char
from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
from cardstation.protos.cardstation.v1 import station_pb2 as spb
from cardstation.protos.cardstation.v1 import station_pb2_grpc
from cardstation.server.errors import error_info
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from cardstation.simulators.printer.cards import SimPosition
from tests.support.pcsc import ENCODER_READER, PSAM_READER
from tests.support.served import (
    chips_written,
    final_event,
    issuances,
    ledger_returns,
    rpc_error,
    served_station,
)

pytestmark = pytest.mark.pcscd

CLI = [sys.executable, "-m", "cardstation.cli"]


@pytest.fixture
def api(tmp_path) -> Iterator[object]:
    with served_station(str(tmp_path), blank_cards=6) as running:
        yield running


def wait_state(api, issuance_id: str, state: int, timeout: float = 30) -> ipb.Issuance:
    deadline = time.monotonic() + timeout
    while True:
        job = issuances(api).GetIssuance(ipb.GetIssuanceRequest(id=issuance_id)).issuance
        if job.state == state or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def refresh(api) -> None:
    api.runtime.refresh()  # what the monitor does every second


def jam_after_the_chip_write(api) -> ipb.Issuance:
    """A job whose card jams at printing (FAILED, card written); the operator then pulls the
    jammed card and resets the printer (the jam's remedy). Returns the job."""
    model = api.simulated.model
    model.inject("jam", at="print")
    job = issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER)).issuance
    assert final_event(api, job.id).state == ipb.ISSUANCE_STATE_FAILED
    model.clear_jam()
    station_pb2_grpc.StationServiceStub(api.channel).ResetPrinter(spb.ResetPrinterRequest(),
                                                                  timeout=30)
    return job


def pushed_with_another_card_number(api) -> tuple[ipb.Application, dict, str]:
    """The CMS's example application pushed with a different (valid) card number: its return
    will be refused as a different record. Returns (pushed, the CMS's record, the number)."""
    import base64

    record = api.simulated.cms.ledger(photos=True)["applications"][EXAMPLE_ID_NUMBER]
    body = ("C" if record["card_number"][0] != "C" else "B") + record["card_number"][1:8]
    other_card = body + card_number_check_char(body)
    pushed = ipb.Application(**{k: record[k] for k in (
        "id_number", "name", "sex", "nation", "birth_date", "birthplace", "bank_name",
        "batch", "issue_date", "expiry_date")}, card_number=other_card,
        photo_jpeg=base64.b64decode(record["photo"]))
    return pushed, record, other_card


def cms_takes_the_card_number(api, record: dict, card_number: str) -> None:
    """The CMS administrator corrects the record to the card's number."""
    from cardstation.personalization.model import Application

    api.simulated.cms.add_application(Application.from_dict({
        **{k: v for k, v in record.items() if k in Application.__dataclass_fields__},
        "card_number": card_number}))


# -- one card per applicant -------------------------------------------------------------------

def test_two_api_calls_without_an_id_and_a_second_client_make_one_card(api) -> None:
    results: list[object] = []

    def create(request: ipb.CreateIssuanceRequest) -> None:
        try:
            results.append(issuances(api).CreateIssuance(request, timeout=20))
        except grpc.RpcError as exc:
            results.append(exc)

    requests = [ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER),
                ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER),
                ipb.CreateIssuanceRequest(client_request_id="hub-77", id_number=EXAMPLE_ID_NUMBER)]
    threads = [threading.Thread(target=create, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [r for r in results if isinstance(r, ipb.CreateIssuanceResponse) and r.created]
    assert len(created) == 1  # created=true exactly once
    job_id = created[0].issuance.id
    for r in results:
        if isinstance(r, ipb.CreateIssuanceResponse):
            assert r.issuance.id == job_id  # the others were given the same job ...
        else:  # ... or told it exists, naming it
            info = error_info(r)
            assert r.code() is grpc.StatusCode.ALREADY_EXISTS
            assert info.reason == "APPLICANT_HAS_LIVE_JOB"
            assert info.metadata["issuance_id"] == job_id
            assert job_id[:8] in r.details()
    assert final_event(api, job_id).state == ipb.ISSUANCE_STATE_DONE
    # once made, asking again is not a second card
    again = rpc_error(lambda: issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER), timeout=20))
    assert again[:2] == (grpc.StatusCode.ALREADY_EXISTS, "CARD_ALREADY_MADE_HERE")
    assert sorted(chips_written(api), reverse=True)[1:] == [0] * (len(api.simulated.chips) - 1)
    assert len(api.simulated.model.print_log) == 1
    assert len(ledger_returns(api, EXAMPLE_ID_NUMBER)) == 1


def test_cli_issue_twice_at_once_makes_one_card(api) -> None:
    server = ["--server", f"127.0.0.1:{api.port}"]
    procs = [subprocess.Popen([*CLI, "issue", EXAMPLE_ID_NUMBER, "--watch", *server],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for out, err in outputs:
        assert "Traceback" not in out + err
        assert out.strip().splitlines()[-1].startswith("DONE")
    assert len(api.simulated.model.print_log) == 1
    assert len(ledger_returns(api, EXAMPLE_ID_NUMBER)) == 1
    assert sum(1 for n in chips_written(api) if n) == 1


# -- DONE means the CMS has it -------------------------------------------------------------------

def test_a_refused_return_ends_failed_with_its_way_out_and_never_done(api) -> None:
    cms = api.simulated.cms
    pushed, record, other_card = pushed_with_another_card_number(api)
    job = issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(application=pushed)).issuance
    assert cms.ledger(photos=False)["claims"][EXAMPLE_ID_NUMBER]["station"]  # pushed = claimed
    end = final_event(api, job.id)
    assert end.state == ipb.ISSUANCE_STATE_FAILED
    assert end.reason_code == "RETURN_REFUSED" and not end.hand_over_allowed
    assert "card number" in end.message and end.remedy
    job = issuances(api).GetIssuance(ipb.GetIssuanceRequest(id=job.id)).issuance
    assert set(job.actions) == {ipb.ISSUANCE_ACTION_RESTORE_AND_RESEND,
                                ipb.ISSUANCE_ACTION_MARK_SPOILED}
    assert job.return_progress.last_error_code == "CMS_RETURN_CONFLICT"  # the port's code
    assert not ledger_returns(api, EXAMPLE_ID_NUMBER)
    # the CMS administrator corrects the record; the operator restores and resends
    cms_takes_the_card_number(api, record, other_card)
    issuances(api).RestoreAndResend(ipb.RestoreAndResendRequest(id=job.id))
    done = wait_state(api, job.id, ipb.ISSUANCE_STATE_DONE)
    assert done.state == ipb.ISSUANCE_STATE_DONE and done.hand_over_allowed
    assert len(ledger_returns(api, EXAMPLE_ID_NUMBER)) == 1


def test_cms_refusing_returns_for_a_while_keeps_the_card_from_being_handed_over(api) -> None:
    api.simulated.cms.inject("fail_returns", count=1000)
    job = issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER)).issuance
    ejected = wait_state(api, job.id, ipb.ISSUANCE_STATE_EJECTED)
    assert ejected.state == ipb.ISSUANCE_STATE_EJECTED and not ejected.hand_over_allowed
    time.sleep(0.5)  # a few attempts fail (back-off 0.05..0.2 s)
    job = issuances(api).GetIssuance(ipb.GetIssuanceRequest(id=job.id)).issuance
    assert job.state == ipb.ISSUANCE_STATE_EJECTED and job.reason_code == "RETURN_PENDING"
    assert "do not hand the card over" in job.remedy
    assert job.return_progress.attempts >= 1
    station = station_pb2_grpc.StationServiceStub(api.channel).GetStation(
        spb.GetStationRequest()).station
    assert station.queue.returns_pending == 1
    api.simulated.cms.clear_faults()
    assert wait_state(api, job.id, ipb.ISSUANCE_STATE_DONE).hand_over_allowed


# -- no dead ends -------------------------------------------------------------------------------

def test_a_jam_after_the_chip_write_ends_done_once_the_card_is_put_back(api) -> None:
    model = api.simulated.model
    model.inject("jam", at="print")
    job = issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER)).issuance
    end = final_event(api, job.id)
    assert end.state == ipb.ISSUANCE_STATE_FAILED and end.reason_code == "PRINTER_CARD_JAM"
    assert ipb.ISSUANCE_ACTION_RESUME in end.actions and "jam" in end.message
    # a new job may not feed while this card may still be inside
    refresh(api)
    other = next(i for i in api.simulated.cms.samples["ready"] if i != EXAMPLE_ID_NUMBER)
    held = rpc_error(lambda: issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(
        id_number=other), timeout=20))
    assert held[1] in ("PRINTER_CARD_JAM", "PRINTER_HELD_BY_FAILED_JOB")
    # the operator pulls the jammed card out, resets the printer (the jam's remedy) and puts
    # the card into the feed slot again
    model.clear_jam()
    station_pb2_grpc.StationServiceStub(api.channel).ResetPrinter(spb.ResetPrinterRequest(),
                                                                  timeout=30)
    with model._locked():
        card = model.reject_box.pop()
        card.position = SimPosition.INPUT
        model.input_cards.appendleft(card)
    resumed = issuances(api).ResumeIssuance(ipb.ResumeIssuanceRequest(id=job.id)).issuance
    assert resumed.state != ipb.ISSUANCE_STATE_FAILED  # QUEUED, or already on its way
    assert final_event(api, job.id).state == ipb.ISSUANCE_STATE_DONE
    written = [chip for chip in api.simulated.chips if chip.writes]
    assert len(written) == 1 and max(written[0].writes.values()) == 1  # not rewritten
    assert len(ledger_returns(api, EXAMPLE_ID_NUMBER)) == 1


def test_a_failed_job_can_be_ended_and_the_card_remade(api) -> None:
    job = jam_after_the_chip_write(api)
    ended = issuances(api).RejectCard(ipb.RejectCardRequest(id=job.id)).issuance
    assert ended.state == ipb.ISSUANCE_STATE_REJECTED and ended.actions == [
        ipb.ISSUANCE_ACTION_REMAKE]
    refresh(api)
    again = rpc_error(lambda: issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER), timeout=20))
    assert again[:2] == (grpc.StatusCode.ALREADY_EXISTS, "REMAKE_REQUIRED")
    remade = issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(
        id_number=EXAMPLE_ID_NUMBER, remake_of=job.id, remake_reason="jammed card spoiled"),
        timeout=30)
    assert remade.created and remade.issuance.remake_of == job.id
    assert final_event(api, remade.issuance.id).state == ipb.ISSUANCE_STATE_DONE
    # the spoiled card's return was restored away at the CMS (恢复申请); it holds the new card
    entry = api.simulated.cms.ledger(photos=False)["applications"][EXAMPLE_ID_NUMBER]
    assert entry["return_key"] == f"{remade.issuance.id}:return"
    first, second = ledger_returns(api, EXAMPLE_ID_NUMBER)
    assert first["record"]["bank_account"] != second["record"]["bank_account"]


def test_calibration_and_reset_are_allowed_in_the_fault_they_remedy(api) -> None:
    model = api.simulated.model
    model.inject("sensor", offset_mm=5.0)  # beyond the ribbon search: code 0300
    job = issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER)).issuance
    end = final_event(api, job.id)
    assert end.state == ipb.ISSUANCE_STATE_FAILED
    assert end.reason_code == "PRINTER_RIBBON_SEARCH_FAIL"
    assert "calibrate or clean the ribbon sensor" in end.message
    assert ipb.ISSUANCE_ACTION_CALIBRATE_RIBBON_SENSOR in end.actions
    station = station_pb2_grpc.StationServiceStub(api.channel)
    calibrated = station.CalibrateRibbonSensor(spb.CalibrateRibbonSensorRequest(), timeout=30)
    assert calibrated.calibration.ok and not calibrated.printer.alerts
    reset = station.ResetPrinter(spb.ResetPrinterRequest(), timeout=30)
    assert not reset.printer.alerts
    issuances(api).ResumeIssuance(ipb.ResumeIssuanceRequest(id=job.id))
    assert final_event(api, job.id).state == ipb.ISSUANCE_STATE_DONE


# -- admission before anything irreversible ----------------------------------------------------

@pytest.mark.parametrize(("fault", "reason", "remedy"), [
    ("ribbon_out", "PRINTER_RIBBON_OUT", "replace the ribbon"),
    ("ribbon_chip_missing", "PRINTER_RIBBON_CHIP_MISSING", "reseat its chip"),
    ("printer_unplugged", "PRINTER_NOT_CONNECTED", "both USB cables"),
])
def test_a_station_that_cannot_make_the_card_refuses_before_the_claim(api, fault, reason,
                                                                      remedy) -> None:
    api.simulated.model.inject(fault)
    refresh(api)
    code, got, message = rpc_error(lambda: issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER), timeout=20))
    assert (code, got) == (grpc.StatusCode.FAILED_PRECONDITION, reason)
    assert remedy in message
    ledger = api.simulated.cms.ledger(photos=False)
    assert EXAMPLE_ID_NUMBER not in ledger["claims"]  # nothing irreversible happened
    assert api.simulated.model.print_log == [] and not any(chips_written(api))
    station = station_pb2_grpc.StationServiceStub(api.channel).GetStation(
        spb.GetStationRequest()).station
    assert not station.ready and station.problems[0].reason_code == reason
    api.simulated.model.clear(fault)
    refresh(api)
    job = issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER), timeout=20).issuance
    assert final_event(api, job.id).state == ipb.ISSUANCE_STATE_DONE


# -- a station that starts without its printer ---------------------------------------------------

def test_serve_without_a_printer_serves_not_serving_and_recovers(tmp_path: Path) -> None:
    from cardstation.commands.serve import start_server
    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.pcscd import ensure_running
    from cardstation.simulators.printer.server import PrinterSimServer
    from tests.support.world import World

    ensure_running()
    with PcscContext() as pcsc:
        for reader in (ENCODER_READER, PSAM_READER):
            pcsc.wait_for_removal(reader, timeout=10)
    sim = World(tmp_path).start()
    try:
        pcsc_ready = PcscContext()
        pcsc_ready.wait_for_card(PSAM_READER, timeout=10)
        pcsc_ready.close()
        port = int(sim.server.address.rsplit(":", 1)[1])
        sim.server.close()  # the printer is "unplugged" when the station starts
        from cardstation.server.auth.identity import Role
        from cardstation.server.auth.tokens import TokenStore

        store = TokenStore()
        token, _ = store.issue("window-1", Role.OPERATOR, ttl_seconds=3600)
        store.save(tmp_path / "tokens.json")
        auth = [("authorization", f"Bearer {token}")]
        config = sim.config()
        config = replace(config, printer=replace(config.printer,
                                                 device=f"socket://127.0.0.1:{port}"),
                         server=replace(config.server, tokens_file=str(tmp_path / "tokens.json")))
        running = start_server(config, "127.0.0.1:0")
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
            health = health_pb2_grpc.HealthStub(channel)

            def status(service: str) -> int:
                return health.Check(health_pb2.HealthCheckRequest(service=service),
                                    metadata=auth).status

            assert status("cardstation.printer") == health_pb2.HealthCheckResponse.NOT_SERVING
            assert status("") == health_pb2.HealthCheckResponse.NOT_SERVING
            station = station_pb2_grpc.StationServiceStub(channel).GetStation(
                spb.GetStationRequest(), metadata=auth).station
            problem = station.problems[0]
            assert problem.reason_code == "PRINTER_NOT_CONNECTED"
            assert "both USB cables" in problem.remedy
            plugged = PrinterSimServer(sim.model, f"127.0.0.1:{port}").start()  # plugged in
            deadline = time.monotonic() + 10
            while (status("cardstation.printer") != health_pb2.HealthCheckResponse.SERVING
                   and time.monotonic() < deadline):
                time.sleep(0.2)
            assert status("cardstation.printer") == health_pb2.HealthCheckResponse.SERVING
            channel.close()
            plugged.close()
        finally:
            running.stop()
    finally:
        sim.stop()


# -- API polish found by an independent client ----------------------------------------------------

def test_reprint_without_a_deadline_and_a_watch_that_ends_once(api) -> None:
    job = issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER)).issuance
    assert final_event(api, job.id).state == ipb.ISSUANCE_STATE_DONE
    events = [r.event for r in issuances(api).WatchIssuance(
        ipb.WatchIssuanceRequest(id=job.id), timeout=30)]
    assert [e.final for e in events].count(True) == 1 and events[-1].final
    assert [e.state for e in events].count(ipb.ISSUANCE_STATE_DONE) == 1  # not repeated
    assert events[-1].hand_over_allowed and events[-1].at.seconds > 1_700_000_000
    model = api.simulated.model
    with model._locked():  # the operator puts the finished card back for 补打卡面
        card = model.output_hopper.pop()
        card.position = SimPosition.INPUT
        model.input_cards.appendleft(card)
    reprinted = issuances(api).ReprintFace(ipb.ReprintFaceRequest(id=job.id))  # no deadline
    assert reprinted.issuance.reprints == 1
    assert len(model.print_log) == 2
    got = issuances(api).GetIssuance(ipb.GetIssuanceRequest(id=job.id)).issuance
    assert got.created_at.seconds > 1_700_000_000 and got.updated_at.ToDatetime()


# -- found in review: the worker never blocks on a waiting job, endings withdraw returns --------

def test_a_waiting_job_does_not_hold_up_the_operators_actions(api) -> None:
    first = jam_after_the_chip_write(api)
    other = next(i for i in api.simulated.cms.samples["ready"] if i != EXAMPLE_ID_NUMBER)
    # admitted before the monitor saw the hold? it then waits, QUEUED; either way no feed
    api.runtime.snapshot.problems.clear()
    try:
        second = issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(id_number=other),
                                               timeout=20).issuance
    except grpc.RpcError as exc:
        assert error_info(exc).reason == "PRINTER_HELD_BY_FAILED_JOB"
        second = None
    started = time.monotonic()
    ended = issuances(api).RejectCard(ipb.RejectCardRequest(id=first.id), timeout=20).issuance
    assert ended.state == ipb.ISSUANCE_STATE_REJECTED and time.monotonic() - started < 10
    if second is not None:  # the parked job goes on once the printer is free
        assert final_event(api, second.id).state == ipb.ISSUANCE_STATE_DONE
    # a resumed job is not a new one: it cannot be cancelled with its card inside
    _, reason, _ = rpc_error(lambda: issuances(api).CancelIssuance(
        ipb.CancelIssuanceRequest(id=first.id), timeout=10))
    assert reason == "NOT_CANCELLABLE"


def test_a_spoiled_cards_return_is_withdrawn_and_never_sent(api) -> None:
    api.simulated.cms.inject("fail_returns", count=100000)
    job = issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER)).issuance
    assert wait_state(api, job.id, ipb.ISSUANCE_STATE_EJECTED).state == \
        ipb.ISSUANCE_STATE_EJECTED
    spoiled = issuances(api).MarkSpoiled(ipb.MarkSpoiledRequest(id=job.id), timeout=20).issuance
    assert spoiled.state == ipb.ISSUANCE_STATE_REJECTED and spoiled.reason_code == "CARD_SPOILED"
    api.simulated.cms.clear_faults()
    from cardstation.protos.cardstation.v1 import returns_pb2 as rpb
    from cardstation.protos.cardstation.v1 import returns_pb2_grpc
    returns = returns_pb2_grpc.ReturnServiceStub(api.channel)
    assert returns.RetryReturns(rpb.RetryReturnsRequest(), timeout=10).scheduled == 0
    time.sleep(1.0)
    assert not ledger_returns(api, EXAMPLE_ID_NUMBER)  # the destroyed card never reached it
    remade = issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(
        id_number=EXAMPLE_ID_NUMBER, remake_of=job.id, remake_reason="spoiled"), timeout=30)
    done = final_event(api, remade.issuance.id)
    assert done.state == ipb.ISSUANCE_STATE_DONE
    (only,) = ledger_returns(api, EXAMPLE_ID_NUMBER)
    assert only["idempotency_key"] == f"{remade.issuance.id}:return"


def test_a_refused_return_retried_after_the_cms_is_fixed_ends_done_without_stale_faults(
        api) -> None:
    pushed, record, other_card = pushed_with_another_card_number(api)
    job = issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(application=pushed)).issuance
    assert final_event(api, job.id).reason_code == "RETURN_REFUSED"
    cms_takes_the_card_number(api, record, other_card)
    from cardstation.protos.cardstation.v1 import returns_pb2 as rpb
    from cardstation.protos.cardstation.v1 import returns_pb2_grpc
    returns_pb2_grpc.ReturnServiceStub(api.channel).RetryReturns(rpb.RetryReturnsRequest(),
                                                                 timeout=10)
    done = wait_state(api, job.id, ipb.ISSUANCE_STATE_DONE)
    assert done.state == ipb.ISSUANCE_STATE_DONE and done.hand_over_allowed
    assert (done.reason_code, done.remedy, done.reason, list(done.actions)) == (
        "", "", "", [ipb.ISSUANCE_ACTION_REPRINT, ipb.ISSUANCE_ACTION_MARK_SPOILED])
    # out of FAILED by an automatic rule (the CMS acknowledged the resent return): audited
    rules = [(r["who"], r["method"]) for r in audit_records(api) if r["issuance_id"] == job.id
             and r["role"] == "system"]
    assert rules == [("station", "rule:return-acknowledged")]


# -- issue 17: request ids, and nothing resumes a job unasked ------------------------------------

def at_once(calls: list) -> list[object]:
    """Run the calls together (released by one barrier); their responses or errors."""
    results: list[object] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def one(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except grpc.RpcError as exc:
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def spy_runs(api, monkeypatch) -> list[str]:
    """Every time the device worker takes a job on (`run`) or resumes one (`resume`)."""
    runs: list[str] = []
    pipeline = api.runtime.pipeline
    for action in ("run", "resume"):
        original = getattr(pipeline, action, None)
        if original is None:
            continue

        def spy(issuance_id: str, _original=original, _action=action):
            runs.append(f"{_action} {issuance_id}")
            return _original(issuance_id)

        monkeypatch.setattr(pipeline, action, spy)
    return runs


def test_fifty_creates_with_one_request_id_make_one_job_created_and_queued_once(
        api, monkeypatch) -> None:
    runs = spy_runs(api, monkeypatch)
    request = ipb.CreateIssuanceRequest(client_request_id="hub-50", id_number=EXAMPLE_ID_NUMBER)
    results = at_once([lambda: issuances(api).CreateIssuance(request, timeout=30)] * 50)
    assert all(isinstance(r, ipb.CreateIssuanceResponse) for r in results), results
    assert sum(r.created for r in results) == 1  # created=true exactly once
    (job_id,) = {r.issuance.id for r in results}
    assert final_event(api, job_id).state == ipb.ISSUANCE_STATE_DONE
    assert runs == [f"run {job_id}"]  # queued once
    assert len(api.simulated.model.print_log) == 1
    assert len(ledger_returns(api, EXAMPLE_ID_NUMBER)) == 1


def test_a_request_id_reused_for_another_application_is_refused_naming_the_job(api) -> None:
    first, second = [i for i in api.simulated.cms.samples["ready"] if i != EXAMPLE_ID_NUMBER][:2]
    calls = [lambda n=n: issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(
        client_request_id="hub-shared", id_number=(first, second)[n % 2]), timeout=30)
        for n in range(20)]
    results = at_once(calls)
    (job,) = [i for i in api.runtime.journal.issuances(limit=500)
              if i.client_request_id == "hub-shared"]
    winner = job.id_number
    loser = second if winner == first else first
    for n, result in enumerate(results):
        if (first, second)[n % 2] == winner:  # the same request again: its job
            assert isinstance(result, ipb.CreateIssuanceResponse) and result.issuance.id == job.id
        else:  # another person: refused, naming the job that has the id
            assert isinstance(result, grpc.RpcError), result
            info = error_info(result)
            assert (result.code(), info.reason) == (grpc.StatusCode.ALREADY_EXISTS,
                                                    "REQUEST_ID_REUSED")
            assert info.metadata["issuance_id"] == job.id and job.id[:8] in result.details()
            assert "another applicant" in result.details() and loser not in result.details()
    assert sum(r.created for r in results if isinstance(r, ipb.CreateIssuanceResponse)) == 1
    claims = api.simulated.cms.ledger(photos=False)["claims"]
    assert winner in claims and loser not in claims  # the refused person was never claimed
    # the same person, pushed with another card number under a request id already used
    made = issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(
        client_request_id="hub-card", id_number=EXAMPLE_ID_NUMBER), timeout=30).issuance
    pushed, _, _ = pushed_with_another_card_number(api)
    code, reason, details = rpc_error(lambda: issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(client_request_id="hub-card", application=pushed),
        timeout=30))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert made.id[:8] in details and "another card number" in details


def audit_records(api) -> list[dict]:
    import json

    return [json.loads(line) for line in api.runtime.audit.path.read_text().splitlines()]


def test_a_failed_job_goes_on_only_by_an_audited_resume(api, monkeypatch) -> None:
    job = jam_after_the_chip_write(api)
    runs = spy_runs(api, monkeypatch)
    # what a repeated create or a stray queue entry amounts to: the worker is asked to run
    # the failed job again, three times, by nobody
    for _ in range(3):
        api.runtime.enqueue(job.id)
    deadline = time.monotonic() + 10
    while api.runtime.queue_counts() != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert issuances(api).GetIssuance(ipb.GetIssuanceRequest(id=job.id)).issuance.state == \
        ipb.ISSUANCE_STATE_FAILED
    resumed = [e for e in api.runtime.journal.events(job.id) if "resumed" in (e.reason or "")]
    assert resumed == [] and not [r for r in runs if r.startswith("resume")]
    with api.simulated.model._locked():  # the operator puts the card back into the slot
        card = api.simulated.model.reject_box.pop()
        card.position = SimPosition.INPUT
        api.simulated.model.input_cards.appendleft(card)
    issuances(api).ResumeIssuance(ipb.ResumeIssuanceRequest(id=job.id))
    code, reason, _ = rpc_error(lambda: issuances(api).ResumeIssuance(  # a double click
        ipb.ResumeIssuanceRequest(id=job.id)))
    assert final_event(api, job.id).state == ipb.ISSUANCE_STATE_DONE
    resumed = [e for e in api.runtime.journal.events(job.id) if "resumed" in (e.reason or "")]
    assert len(resumed) == 1 and runs.count(f"resume {job.id}") == 1
    calls = [r for r in audit_records(api)
             if r["method"].endswith("/ResumeIssuance") and r["issuance_id"] == job.id]
    assert [r["result"] for r in calls] == ["OK", "FAILED_PRECONDITION"]
    assert (code, reason) in ((grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_RESUMING"),
                              (grpc.StatusCode.FAILED_PRECONDITION, "NOT_FAILED"))


def test_serve_stops_promptly_under_a_watch_with_a_huge_interval(tmp_path: Path) -> None:
    import math
    import signal

    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.pcscd import ensure_running

    ensure_running()
    with PcscContext() as pcsc:
        for reader in (ENCODER_READER, PSAM_READER):
            pcsc.wait_for_removal(reader, timeout=10)
    server = subprocess.Popen(
        [*CLI[:2], "cardstation", "serve", "--simulate", "--listen", "127.0.0.1:0", "--speed",
         "0", "--blank-cards", "1", "--folder", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on"), line + server.stderr.read()
        channel = grpc.insecure_channel(line.split()[-1])
        station = station_pb2_grpc.StationServiceStub(channel)
        streams = [station.WatchStation(spb.WatchStationRequest(interval_seconds=i))
                   for i in (1e9, math.inf)]
        for stream in streams:
            assert next(stream).station.id
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=90)
        took = time.monotonic() - started
        for stream in streams:
            with pytest.raises(grpc.RpcError) as ended:
                next(stream)
            assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
        channel.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0
    assert took < 4.0, f"serve took {took:.1f} s to stop"  # not the 5 s grace, not a minute
