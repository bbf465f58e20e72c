"""Issue 17, hostile input: every request field bounded and named, every enum checked, every
interval clamped, bad protobuf the caller's error, and a photo judged from its header before
anything decodes it. Over a served simulated station (the guard sits in the real server)."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator

import grpc
import pytest
from PIL import Image, ImageFile

from cardstation.benchmarks import bombs
from cardstation.protos.cardstation.v1 import intake_pb2 as inpb
from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
from cardstation.protos.cardstation.v1 import (
    issuance_pb2_grpc,
    returns_pb2_grpc,
    station_pb2_grpc,
    window_pb2_grpc,
)
from cardstation.protos.cardstation.v1 import returns_pb2 as rpb
from cardstation.protos.cardstation.v1 import station_pb2 as spb
from cardstation.protos.cardstation.v1 import window_pb2 as wpb
from cardstation.server import limits
from cardstation.server.errors import error_info
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER, example_applicant
from tests.support.served import served_station

pytestmark = pytest.mark.pcscd


def header_bomb(width: int = 12_000, height: int = 12_000) -> bytes:
    """The sample photo with its frame header claiming `width` x `height`: a few KB that
    would decode to width x height x 3 bytes."""
    return bombs.header_bomb(example_applicant().photo, width, height)


def request_messages() -> Iterator[type]:
    """Every request message of every cardstation.v1 service, and the messages they nest."""
    seen: set[str] = set()
    pending = [method.input_type for module in (ipb, spb, rpb, wpb, inpb)
               for service in module.DESCRIPTOR.services_by_name.values()
               for method in service.methods]
    while pending:
        descriptor = pending.pop()
        if descriptor.full_name in seen:
            continue
        seen.add(descriptor.full_name)
        yield descriptor
        pending += [f.message_type for f in descriptor.fields if f.message_type is not None]


# -- the limits themselves (no server) --------------------------------------------------------

def test_every_string_bytes_and_repeated_request_field_has_its_own_limit() -> None:
    from google.protobuf.descriptor import FieldDescriptor

    bounded = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
    unnamed = sorted(f"{d.name}.{f.name}" for d in request_messages() for f in d.fields
                     if (f.type in bounded or f.is_repeated)
                     and f.name not in limits.FIELD_LIMITS)
    assert not unnamed, unnamed


def test_a_header_bomb_is_judged_from_its_header_and_pillow_refuses_it_too(monkeypatch) -> None:
    decoded: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load

    def spy(self):  # records every decode
        decoded.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    problem = limits.photo_problem(header_bomb())
    assert problem is not None and "12000x12000" in problem
    assert limits.photo_problem(header_bomb(1_200, 1_200)) is None  # a finding, not a refusal
    assert limits.photo_problem(example_applicant().photo) is None
    assert limits.photo_problem(b"not a jpeg") is None  # the photo rule reports it
    assert limits.photo_problem(b"\xff\xd8\xff\xe0\x00") is None  # a damaged header too
    progressive = io.BytesIO()
    Image.new("RGB", (4_100, 8), "white").save(progressive, "JPEG", progressive=True)
    assert limits.jpeg_frame(progressive.getvalue()) == (4_100, 8, 3)
    assert "4100x8" in limits.photo_problem(progressive.getvalue())  # a side too long
    assert decoded == []
    limits.apply_pillow_limits()
    assert Image.MAX_IMAGE_PIXELS == limits.PILLOW_MAX_PIXELS
    with pytest.raises((Image.DecompressionBombError, Image.DecompressionBombWarning)):
        Image.open(io.BytesIO(header_bomb(2_100, 2_100)))  # 4.4 MP: above the limit


def test_the_watch_interval_is_clamped_into_its_documented_range() -> None:
    assert limits.watch_interval(0) == limits.WATCH_INTERVAL_DEFAULT
    assert limits.watch_interval(math.inf) == limits.WATCH_INTERVAL_MAX
    assert limits.watch_interval(1e9) == limits.WATCH_INTERVAL_MAX
    assert limits.watch_interval(-5) == limits.WATCH_INTERVAL_MIN
    assert limits.watch_interval(math.nan) == limits.WATCH_INTERVAL_DEFAULT
    assert limits.watch_interval(3) == 3


# -- over the served station ------------------------------------------------------------------

@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[object]:
    with served_station(str(tmp_path_factory.mktemp("limits")), blank_cards=2) as running:
        yield running


def issuances(api) -> issuance_pb2_grpc.IssuanceServiceStub:
    return issuance_pb2_grpc.IssuanceServiceStub(api.channel)


def refusal(call) -> tuple[grpc.StatusCode, str, str]:
    """(code, reason, field named) of a refused call."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    info = error_info(caught.value)
    assert "Traceback" not in (caught.value.details() or "")
    return (caught.value.code(), info.reason if info else "",
            info.metadata.get("field", "") if info else "")


def example(api, **changes: object) -> ipb.Application:
    """The CMS's sample application as an upstream caller pushes it (no fetch)."""
    from cardstation.server.servicers import application_to_proto

    app = application_to_proto(example_applicant())
    for name, value in changes.items():
        setattr(app, name, value)
    return app


@pytest.fixture
def cms_calls(api, monkeypatch) -> list[str]:
    """Every fetch and claim the station makes at the CMS during the test."""
    calls: list[str] = []
    cms = api.runtime.station.cms
    for name in ("fetch", "claim"):
        original = getattr(cms, name)

        def spy(id_number, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(id_number, *args, **kwargs)

        monkeypatch.setattr(cms, name, spy)
    return calls


def test_the_bomb_is_refused_naming_the_photo_and_nothing_decodes_it(api, cms_calls,
                                                                     monkeypatch) -> None:
    app = example(api, photo_jpeg=header_bomb())
    decoded: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load

    def spy(self):
        decoded.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    expected = (grpc.StatusCode.INVALID_ARGUMENT, "PHOTO_TOO_LARGE", "application.photo_jpeg")
    assert refusal(lambda: issuances(api).PreviewCard(
        ipb.PreviewCardRequest(application=app), timeout=10)) == expected
    assert refusal(lambda: issuances(api).CreateIssuance(
        ipb.CreateIssuanceRequest(application=app), timeout=10)) == expected
    too_many_bytes = example(api, photo_jpeg=header_bomb(400, 500) + b"\0" * 600_000)
    assert refusal(lambda: issuances(api).PreviewCard(
        ipb.PreviewCardRequest(application=too_many_bytes), timeout=10)) == expected
    assert decoded == [] and cms_calls == []  # nothing decoded, nobody claimed


@pytest.mark.parametrize(("call", "expected"), [
    (lambda a: issuances(a).PreviewCard(ipb.PreviewCardRequest(
        application=example(a, name="x" * 1_000_000)), timeout=10),
     ("FIELD_TOO_LONG", "application.name")),
    (lambda a: issuances(a).PreviewCard(ipb.PreviewCardRequest(
        application=example(a, bank_name="银" * 10_000)), timeout=10),
     ("FIELD_TOO_LONG", "application.bank_name")),
    (lambda a: issuances(a).CreateIssuance(ipb.CreateIssuanceRequest(
        id_number=EXAMPLE_ID_NUMBER, client_request_id="r" * 100_000), timeout=10),
     ("FIELD_TOO_LONG", "client_request_id")),
    (lambda a: issuances(a).CreateIssuance(ipb.CreateIssuanceRequest(
        id_number=EXAMPLE_ID_NUMBER, remake_of="j" * 65, remake_reason="lost"), timeout=10),
     ("FIELD_TOO_LONG", "remake_of")),
    (lambda a: issuances(a).CreateIssuance(ipb.CreateIssuanceRequest(
        id_number=EXAMPLE_ID_NUMBER, remake_reason="why " * 1_000), timeout=10),
     ("FIELD_TOO_LONG", "remake_reason")),
    (lambda a: issuances(a).GetIssuance(ipb.GetIssuanceRequest(id="i" * 500_000), timeout=10),
     ("FIELD_TOO_LONG", "id")),
    (lambda a: issuances(a).ListIssuances(ipb.ListIssuancesRequest(state=999), timeout=10),
     ("STATE_INVALID", "state")),
    (lambda a: returns_pb2_grpc.ReturnServiceStub(a.channel).ListReturns(
        rpb.ListReturnsRequest(status=-3), timeout=10), ("STATUS_INVALID", "status")),
    (lambda a: returns_pb2_grpc.ReturnServiceStub(a.channel).RetryReturns(
        rpb.RetryReturnsRequest(ids=range(5_000)), timeout=10),
     ("FIELD_TOO_LONG", "ids")),
    (lambda a: window_pb2_grpc.WindowServiceStub(a.channel).IssueTemporaryCard(
        wpb.IssueTemporaryCardRequest(holder_id_number=EXAMPLE_ID_NUMBER,
                                             holder_name="名" * 100_000), timeout=10),
     ("FIELD_TOO_LONG", "holder_name")),
    (lambda a: window_pb2_grpc.WindowServiceStub(a.channel).VerifyReturnedCard(
        wpb.VerifyReturnedCardRequest(id_number="1" * 100), timeout=10),
     ("ID_NUMBER_INVALID", "id_number")),
    (lambda a: next(station_pb2_grpc.StationServiceStub(a.channel).WatchStation(
        spb.WatchStationRequest(interval_seconds=math.nan), timeout=10)),
     ("FIELD_INVALID", "interval_seconds")),
])
def test_every_field_is_bounded_and_a_violation_names_it(api, cms_calls, call,
                                                         expected) -> None:
    before = api.runtime.journal.issuances(limit=500)
    assert refusal(lambda: call(api)) == (grpc.StatusCode.INVALID_ARGUMENT, *expected)
    assert api.runtime.journal.issuances(limit=500) == before  # no job, nothing changed
    assert cms_calls == []


def test_an_id_number_that_is_not_one_never_reaches_the_cms(api, cms_calls) -> None:
    huge, long = "1" * 3_900_000, "1" * 200_000
    # beyond the message limit grpc itself refuses it, before it is read
    code, _, _ = refusal(lambda: issuances(api).GetApplication(
        ipb.GetApplicationRequest(id_number=huge), timeout=10))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    for request in (ipb.GetApplicationRequest(id_number=long),
                    ipb.GetApplicationRequest(id_number="")):
        reason = "ID_NUMBER_REQUIRED" if not request.id_number else "ID_NUMBER_INVALID"
        assert refusal(lambda r=request: issuances(api).GetApplication(r, timeout=10)) == (
            grpc.StatusCode.INVALID_ARGUMENT, reason, "id_number")
    assert refusal(lambda: issuances(api).PreviewCard(
        ipb.PreviewCardRequest(id_number=""), timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "ID_NUMBER_REQUIRED", "id_number")
    assert refusal(lambda: issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(
        application=example(api, id_number="")), timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "application.id_number")
    assert refusal(lambda: issuances(api).CreateIssuance(ipb.CreateIssuanceRequest(
        application=example(api, id_number=long[:60])), timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "ID_NUMBER_INVALID", "application.id_number")
    assert cms_calls == []


def test_bad_protobuf_is_the_callers_error(api) -> None:
    method = "/cardstation.v1.IssuanceService/GetIssuance"
    raw = api.channel.unary_unary(method)  # bytes in, bytes out
    for garbage in (b"\xff\xff\xff", b"\x0a\x02\xff\xfe"):  # no message; a string not UTF-8
        with pytest.raises(grpc.RpcError) as caught:
            raw(garbage, timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value).reason == "MALFORMED_REQUEST"
    with pytest.raises(grpc.RpcError) as caught:  # larger than a request can be
        raw(b"\x0a\x80\x80\x40" + b"x" * (limits.MAX_RECEIVE_BYTES + 10), timeout=10)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_any_interval_gets_an_answer(api) -> None:
    station = station_pb2_grpc.StationServiceStub(api.channel)
    for interval in (math.inf, -math.inf, 1e300, -5.0, 0.0):
        stream = station.WatchStation(spb.WatchStationRequest(interval_seconds=interval),
                                      timeout=10)
        assert next(stream).station.id
        stream.cancel()
