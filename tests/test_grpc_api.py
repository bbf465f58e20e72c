"""The gRPC API over a real port, on a server with every device simulated (serve --simulate)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cardstation.config import Config
from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
from cardstation.protos.cardstation.v1 import issuance_pb2_grpc, returns_pb2_grpc, station_pb2_grpc
from cardstation.protos.cardstation.v1 import returns_pb2 as rpb
from cardstation.protos.cardstation.v1 import station_pb2 as spb
from cardstation.server.errors import error_info
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from tests.support.pcsc import ENCODER_READER, PSAM_READER

pytestmark = pytest.mark.pcscd


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[object]:
    from cardstation.commands.serve import start_server
    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.pcscd import ensure_running

    ensure_running()
    folder = tmp_path_factory.mktemp("api")
    running = start_server(Config(), "127.0.0.1:0", simulate=True, speed=0.0, blank_cards=12,
                           folder=str(folder))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    running.channel = channel  # type: ignore[attr-defined]
    yield running
    channel.close()
    running.stop()
    with PcscContext() as pcsc:
        for reader in (ENCODER_READER, PSAM_READER):
            pcsc.wait_for_removal(reader, timeout=10)


def stub(api):
    return issuance_pb2_grpc.IssuanceServiceStub(api.channel)


def state_name(value: int) -> str:
    return ipb.IssuanceState.Name(value).removeprefix("ISSUANCE_STATE_")


def watch_to_end(api, issuance_id: str) -> list[str]:
    states = []
    for response in stub(api).WatchIssuance(ipb.WatchIssuanceRequest(id=issuance_id),
                                            timeout=60):
        states.append(state_name(response.event.state))
        if response.event.final:
            break
    return states


def ready_id(api, index: int) -> str:
    return api.simulated.cms.samples["ready"][index]


def rpc_error(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    details = error_info(info.value)
    return info.value.code(), details.reason if details else ""


def test_create_is_idempotent_and_watch_reaches_done(api) -> None:
    request = ipb.CreateIssuanceRequest(client_request_id="req-1", id_number=EXAMPLE_ID_NUMBER)
    first = stub(api).CreateIssuance(request, timeout=10)
    second = stub(api).CreateIssuance(request, timeout=10)
    assert first.created and not second.created
    assert first.issuance.id == second.issuance.id
    assert first.issuance.id_number_masked == "110105********002X"
    states = watch_to_end(api, first.issuance.id)
    assert states[-1] == "DONE"
    assert {"FED", "CHIP_WRITTEN", "VERIFIED", "RETURN_QUEUED", "PRINTED"} <= set(states)
    done = stub(api).GetIssuance(ipb.GetIssuanceRequest(id=first.issuance.id), timeout=5)
    assert done.issuance.chip.card_id_code.startswith("410700D156000005")
    listed = stub(api).ListIssuances(ipb.ListIssuancesRequest(page_size=500), timeout=5)
    assert [i.id for i in listed.issuances].count(first.issuance.id) == 1


def test_a_watch_tells_each_step_once_when_its_replay_and_live_feed_overlap(
        api, monkeypatch) -> None:
    """A watcher subscribes, then reads the job's past from the journal: a step committed in
    between is both in what it read and in its live feed. It is told once (the demo printed
    PREVIEWED twice in CI when the two overlapped)."""
    from cardstation.server.servicers import IssuanceServicer

    replay = IssuanceServicer._replay

    def replay_then_the_last_commit_announced(self, issuance_id):
        past = replay(self, issuance_id)
        latest = self.rt.journal.get(issuance_id)
        self.rt._on_event(latest, latest.reason or latest.state.value, committed=True)
        return past

    from cardstation.simulators.cms.applicants import generate_applicants

    cms = api.simulated.cms
    known = set(cms.ledger(photos=False)["applications"])
    applicant = generate_applicants(1, seed=618, exclude=known)[0]
    cms.add_application(applicant)
    with api.runtime.printer_lock:  # the job stays at its first steps while the watch starts
        created = stub(api).CreateIssuance(ipb.CreateIssuanceRequest(
            client_request_id=str(uuid.uuid4()), id_number=applicant.id_number), timeout=10)
        monkeypatch.setattr(IssuanceServicer, "_replay", replay_then_the_last_commit_announced)
        watch = stub(api).WatchIssuance(ipb.WatchIssuanceRequest(id=created.issuance.id),
                                        timeout=60)
        first = state_name(next(watch).event.state)
    states = [first]
    for response in watch:
        states.append(state_name(response.event.state))
        if response.event.final:
            break
    transitions = [s for n, s in enumerate(states) if n == 0 or s != states[n - 1]]
    assert states == transitions, states  # no step told twice
    assert states[0] == "FETCHED" and states[-1] == "DONE"


def test_cancel_a_queued_job(api) -> None:
    with api.runtime.printer_lock:  # the device worker waits: the job stays queued
        created = stub(api).CreateIssuance(ipb.CreateIssuanceRequest(
            client_request_id=str(uuid.uuid4()), id_number=ready_id(api, 1)), timeout=10)
        assert state_name(created.issuance.state) == "QUEUED"
        cancelled = stub(api).CancelIssuance(
            ipb.CancelIssuanceRequest(id=created.issuance.id), timeout=5)
    assert state_name(cancelled.issuance.state) == "CANCELLED"
    code, reason = rpc_error(lambda: stub(api).CancelIssuance(
        ipb.CancelIssuanceRequest(id=created.issuance.id), timeout=5))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_CANCELLABLE")


def test_list_with_paging(api) -> None:
    with api.runtime.printer_lock:
        for index in (2, 3, 4):
            stub(api).CreateIssuance(ipb.CreateIssuanceRequest(
                client_request_id=str(uuid.uuid4()), id_number=ready_id(api, index)), timeout=10)
        seen, token, pages = [], "", 0
        while True:
            page = stub(api).ListIssuances(ipb.ListIssuancesRequest(page_size=2,
                                                                    page_token=token), timeout=5)
            seen += [i.id for i in page.issuances]
            pages += 1
            token = page.next_page_token
            if not token:
                break
    assert len(seen) == len(set(seen)) >= 4 and pages >= 2
    queued = stub(api).ListIssuances(ipb.ListIssuancesRequest(
        state=ipb.ISSUANCE_STATE_FAILED), timeout=5)
    assert all(state_name(i.state) == "FAILED" for i in queued.issuances)
    # newest first, paged the same way: the exact reverse
    newest, token = [], ""
    while True:
        page = stub(api).ListIssuances(ipb.ListIssuancesRequest(
            page_size=2, page_token=token, newest_first=True), timeout=5)
        newest += [i.id for i in page.issuances]
        token = page.next_page_token
        if not token:
            break
    assert newest == seen[::-1]
    # one applicant's jobs only, found by the full ID number
    holder = ready_id(api, 3)
    mine = stub(api).ListIssuances(ipb.ListIssuancesRequest(id_number=holder.lower()),
                                   timeout=5).issuances
    assert len(mine) == 1 and mine[0].id_number_masked == holder[:6] + "********" + holder[-4:]
    with pytest.raises(grpc.RpcError) as bad:
        stub(api).ListIssuances(ipb.ListIssuancesRequest(id_number="12345"), timeout=5)
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(("call", "expected"), [
    (lambda s: s.GetIssuance(ipb.GetIssuanceRequest(id="nope"), timeout=5),
     (grpc.StatusCode.NOT_FOUND, "ISSUANCE_NOT_FOUND")),
    (lambda s: s.GetIssuance(ipb.GetIssuanceRequest(), timeout=5),
     (grpc.StatusCode.INVALID_ARGUMENT, "ID_REQUIRED")),
    (lambda s: s.CreateIssuance(ipb.CreateIssuanceRequest(id_number="110105194912310038"),
                                timeout=5),
     (grpc.StatusCode.NOT_FOUND, "APPLICATION_NOT_FOUND")),
    (lambda s: s.CreateIssuance(ipb.CreateIssuanceRequest(), timeout=5),
     (grpc.StatusCode.INVALID_ARGUMENT, "ID_NUMBER_REQUIRED")),
    (lambda s: s.CreateIssuance(ipb.CreateIssuanceRequest(id_number="11010519491231003X"),
                                timeout=5),
     (grpc.StatusCode.INVALID_ARGUMENT, "ID_NUMBER_INVALID")),
    (lambda s: s.CreateIssuance(ipb.CreateIssuanceRequest(id_number="1" * 200_000),
                                timeout=5),
     (grpc.StatusCode.INVALID_ARGUMENT, "ID_NUMBER_INVALID")),
    (lambda s: s.CreateIssuance(ipb.CreateIssuanceRequest(
        application=ipb.Application(id_number="11010519491231002X")), timeout=5),
     (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
    (lambda s: s.ListIssuances(ipb.ListIssuancesRequest(page_size=100000), timeout=5),
     (grpc.StatusCode.INVALID_ARGUMENT, "PAGE_SIZE")),
    (lambda s: s.ListIssuances(ipb.ListIssuancesRequest(page_token="bogus"), timeout=5),
     (grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN")),
    (lambda s: s.ResumeIssuance(ipb.ResumeIssuanceRequest(id="nope"), timeout=5),
     (grpc.StatusCode.NOT_FOUND, "ISSUANCE_NOT_FOUND")),
])
def test_error_paths_have_codes_and_reasons(api, call, expected) -> None:
    assert rpc_error(lambda: call(stub(api))) == expected


def test_not_marked_and_cms_down_are_distinct_errors(api) -> None:
    not_marked = api.simulated.cms.samples["not_marked"]
    assert rpc_error(lambda: stub(api).CreateIssuance(
        ipb.CreateIssuanceRequest(id_number=not_marked), timeout=5)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "NOT_MARKED_FOR_INSTANT_ISSUANCE")
    api.simulated.cms.inject("down")
    try:
        assert rpc_error(lambda: stub(api).CreateIssuance(
            ipb.CreateIssuanceRequest(id_number=EXAMPLE_ID_NUMBER), timeout=10)) == (
            grpc.StatusCode.UNAVAILABLE, "CMS_UNAVAILABLE")
    finally:
        api.simulated.cms.clear_faults()


def test_station_returns_and_health(api) -> None:
    station = station_pb2_grpc.StationServiceStub(api.channel).GetStation(
        spb.GetStationRequest(), timeout=5).station
    printer = next(d for d in station.devices if d.name == "printer")
    assert printer.address.startswith("socket://")
    assert station.supplies.ribbon_type
    returns = returns_pb2_grpc.ReturnServiceStub(api.channel)
    assert returns.RetryReturns(rpb.RetryReturnsRequest(), timeout=5).scheduled >= 0
    health = health_pb2_grpc.HealthStub(api.channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == serving
    def status_of(service: str, want: int) -> int:
        """The health status once it is `want` (the monitor refreshes beside the test: a
        look it began before the change may land after ours)."""
        deadline = time.monotonic() + 10
        while True:
            api.runtime.refresh()
            got = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    api.simulated.model.unplug_printer()
    try:
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", "cardstation.printer"):
            assert status_of(service, not_serving) == not_serving
        station = station_pb2_grpc.StationServiceStub(api.channel).GetStation(
            spb.GetStationRequest(), timeout=5).station
        printer = next(d for d in station.devices if d.name == "printer")
        assert printer.status == spb.DEVICE_STATUS_DISCONNECTED and printer.remedy
    finally:
        api.simulated.model.plug_printer()
    assert status_of("", serving) == serving


def test_reflection_lists_the_services(api) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub_ = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    responses = stub_.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"cardstation.v1.IssuanceService", "cardstation.v1.StationService",
            "cardstation.v1.ReturnService", "grpc.health.v1.Health"} <= names
