"""Authentication and authorization of the gRPC server, over real ports.

The servicers here are small fakes with canned answers (not the station's servicers), so these
tests pin the interceptor: who may call what, and what a refused caller is told.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from cardstation.protos.cardstation.v1 import (
    intake_pb2,
    intake_pb2_grpc,
    issuance_pb2,
    issuance_pb2_grpc,
    returns_pb2,
    returns_pb2_grpc,
    station_pb2,
    station_pb2_grpc,
    window_pb2,
    window_pb2_grpc,
)
from cardstation.server.auth import (
    METHOD_ROLES,
    STATE_CHANGING,
    AuthError,
    AuthInterceptor,
    Role,
    TokenStore,
    _peer_is_loopback,
    current_identity,
)
from cardstation.server.errors import abort_with, error_info

ID_NUMBER = "11010519491231002X"
SERVICES = [
    issuance_pb2.DESCRIPTOR.services_by_name["IssuanceService"],
    station_pb2.DESCRIPTOR.services_by_name["StationService"],
    returns_pb2.DESCRIPTOR.services_by_name["ReturnService"],
    window_pb2.DESCRIPTOR.services_by_name["WindowService"],
    intake_pb2.DESCRIPTOR.services_by_name["IntakeService"],
]


def _who() -> str:
    ident = current_identity()
    return "" if ident is None else f"{ident.name}/{ident.role.value}/{ident.via}"


class FakeIssuance(issuance_pb2_grpc.IssuanceServiceServicer):
    """Canned answers; the issuance's `reason` carries who the servicer saw calling."""

    def _issuance(self, issuance_id: str = "iss-1") -> issuance_pb2.Issuance:
        return issuance_pb2.Issuance(id=issuance_id, reason=_who(),
                                     state=issuance_pb2.ISSUANCE_STATE_QUEUED)

    def GetApplication(self, request: Any, context: Any) -> Any:
        return issuance_pb2.GetApplicationResponse(
            application=issuance_pb2.Application(name="张三"))

    def PreviewCard(self, request: Any, context: Any) -> Any:
        return issuance_pb2.PreviewCardResponse(front_png=b"png")

    def CreateIssuance(self, request: Any, context: Any) -> Any:
        return issuance_pb2.CreateIssuanceResponse(issuance=self._issuance(), created=True)

    def GetIssuance(self, request: Any, context: Any) -> Any:
        return issuance_pb2.GetIssuanceResponse(issuance=self._issuance(request.id))

    def ListIssuances(self, request: Any, context: Any) -> Any:
        return issuance_pb2.ListIssuancesResponse(issuances=[self._issuance()])

    def WatchIssuance(self, request: Any, context: Any) -> Iterator[Any]:
        for i in range(3):
            yield issuance_pb2.WatchIssuanceResponse(
                event=issuance_pb2.IssuanceEvent(issuance_id=request.id, message=_who(),
                                                 final=i == 2))

    def CancelIssuance(self, request: Any, context: Any) -> Any:
        if request.id == "missing":
            abort_with(context, grpc.StatusCode.NOT_FOUND, "ISSUANCE_NOT_FOUND",
                       "no such issuance", {"id": request.id})
        return issuance_pb2.CancelIssuanceResponse(issuance=self._issuance(request.id))

    def ResumeIssuance(self, request: Any, context: Any) -> Any:
        return issuance_pb2.ResumeIssuanceResponse(issuance=self._issuance(request.id))

    def ReprintFace(self, request: Any, context: Any) -> Any:
        return issuance_pb2.ReprintFaceResponse(issuance=self._issuance(request.id))

    def RejectCard(self, request: Any, context: Any) -> Any:
        return issuance_pb2.RejectCardResponse(issuance=self._issuance(request.id))

    def MarkSpoiled(self, request: Any, context: Any) -> Any:
        return issuance_pb2.MarkSpoiledResponse(issuance=self._issuance(request.id))

    def RestoreAndResend(self, request: Any, context: Any) -> Any:
        return issuance_pb2.RestoreAndResendResponse(issuance=self._issuance(request.id))


class FakeStation(station_pb2_grpc.StationServiceServicer):
    def GetStation(self, request: Any, context: Any) -> Any:
        return station_pb2.GetStationResponse(station=station_pb2.Station(id=_who()))

    def WatchStation(self, request: Any, context: Any) -> Iterator[Any]:
        for _ in range(2):
            yield station_pb2.WatchStationResponse(station=station_pb2.Station(id=_who()))

    def CalibrateRibbonSensor(self, request: Any, context: Any) -> Any:
        return station_pb2.CalibrateRibbonSensorResponse(
            calibration=station_pb2.SensorCalibration(ok=True))

    def CleanCardPath(self, request: Any, context: Any) -> Any:
        return station_pb2.CleanCardPathResponse(printer=station_pb2.PrinterCondition())

    def ResetPrinter(self, request: Any, context: Any) -> Any:
        return station_pb2.ResetPrinterResponse(printer=station_pb2.PrinterCondition())


class FakeReturns(returns_pb2_grpc.ReturnServiceServicer):
    def ListReturns(self, request: Any, context: Any) -> Any:
        return returns_pb2.ListReturnsResponse(returns=[returns_pb2.Return(id=7)])

    def RetryReturns(self, request: Any, context: Any) -> Any:
        return returns_pb2.RetryReturnsResponse(scheduled=1)


class _Empty:
    """Every RPC of the service answers its empty response (the real ones are tested
    elsewhere)."""

    module: Any
    service_name = ""

    def __getattribute__(self, name: str) -> Any:
        module = type(self).module
        service = module.DESCRIPTOR.services_by_name[type(self).service_name]
        if name in service.methods_by_name:
            method = service.methods_by_name[name]
            response = getattr(module, method.output_type.name)
            if method.server_streaming:
                return lambda request, context: iter([response()])
            return lambda request, context: response()
        return super().__getattribute__(name)


class FakeWindow(_Empty, window_pb2_grpc.WindowServiceServicer):
    module, service_name = window_pb2, "WindowService"


class FakeIntake(_Empty, intake_pb2_grpc.IntakeServiceServicer):
    module, service_name = intake_pb2, "IntakeService"


def full_name(service: Any, method: Any) -> str:
    return f"/{service.full_name}/{method.name}"


def all_methods() -> list[str]:
    return [full_name(s, m) for s in SERVICES for m in s.methods]


def _method(name: str) -> Any:
    for service in SERVICES:
        for method in service.methods:
            if full_name(service, method) == name:
                return method
    raise KeyError(name)


class Harness:
    """A grpc.server on 127.0.0.1:0 with the fakes, health, reflection and an interceptor."""

    def __init__(
        self,
        interceptor: AuthInterceptor,
        server_credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.interceptor = interceptor
        self.server = grpc.server(ThreadPoolExecutor(max_workers=8), interceptors=[interceptor])
        issuance_pb2_grpc.add_IssuanceServiceServicer_to_server(FakeIssuance(), self.server)
        station_pb2_grpc.add_StationServiceServicer_to_server(FakeStation(), self.server)
        returns_pb2_grpc.add_ReturnServiceServicer_to_server(FakeReturns(), self.server)
        window_pb2_grpc.add_WindowServiceServicer_to_server(FakeWindow(), self.server)
        intake_pb2_grpc.add_IntakeServiceServicer_to_server(FakeIntake(), self.server)
        health_servicer = health.HealthServicer()
        health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, self.server)
        reflection.enable_server_reflection(
            [s.full_name for s in SERVICES] + [reflection.SERVICE_NAME], self.server)
        if server_credentials is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            self.port = self.server.add_secure_port("127.0.0.1:0", server_credentials)
        self.server.start()
        self.channels: list[grpc.Channel] = []

    def channel(self, credentials: grpc.ChannelCredentials | None = None,
                host: str = "127.0.0.1") -> grpc.Channel:
        target = f"{host}:{self.port}"
        ch = (grpc.insecure_channel(target) if credentials is None
              else grpc.secure_channel(target, credentials))
        self.channels.append(ch)
        return ch

    def stop(self) -> None:
        for ch in self.channels:
            ch.close()
        self.server.stop(None)


def call(channel: grpc.Channel, method: str, token: str | None = None,
         request: Any = None) -> Any:
    """Call any of our RPCs by full name; a streaming call returns the list of responses."""
    desc = _method(method)
    req_cls = message_factory.GetMessageClass(desc.input_type)
    resp_cls = message_factory.GetMessageClass(desc.output_type)
    metadata = [("authorization", f"Bearer {token}")] if token else None
    kwargs = {"request_serializer": req_cls.SerializeToString,
              "response_deserializer": resp_cls.FromString}
    request = req_cls() if request is None else request
    if desc.server_streaming:
        stub = channel.unary_stream(method, **kwargs)
        return list(stub(request, metadata=metadata, timeout=10))
    stub = channel.unary_unary(method, **kwargs)
    return stub(request, metadata=metadata, timeout=10)


def expect_error(code: grpc.StatusCode, reason: str, fn: Any, *args: Any, **kw: Any) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        fn(*args, **kw)
    err = caught.value
    assert err.code() == code, (err.code(), err.details())
    info = error_info(err)
    assert info is not None
    assert info.reason == reason
    assert info.domain == "cardstation.v1"
    return err, info


M_CREATE = "/cardstation.v1.IssuanceService/CreateIssuance"
M_REPRINT = "/cardstation.v1.IssuanceService/ReprintFace"
M_WATCH = "/cardstation.v1.IssuanceService/WatchIssuance"
M_RESET = "/cardstation.v1.StationService/ResetPrinter"
M_LIST_RETURNS = "/cardstation.v1.ReturnService/ListReturns"
M_GET_STATION = "/cardstation.v1.StationService/GetStation"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock: Clock) -> tuple[TokenStore, dict[str, str]]:
    store = TokenStore(clock=clock)
    plain = {}
    for role in Role:
        plain[role.value], _ = store.issue(f"{role.value}-1", role, ttl_seconds=3600)
    return store, plain


@pytest.fixture
def harness(tokens: tuple[TokenStore, dict[str, str]]) -> Iterator[Harness]:
    h = Harness(AuthInterceptor(tokens=tokens[0]))
    yield h
    h.stop()


# --- tables -----------------------------------------------------------------------------------


def test_method_roles_cover_every_rpc_exactly() -> None:
    assert set(METHOD_ROLES) == set(all_methods())
    assert set(STATE_CHANGING) <= set(METHOD_ROLES)
    for method, roles in METHOD_ROLES.items():
        assert Role.ADMIN in roles, method


def test_role_table_matches_the_brief() -> None:
    operator = {m for m, r in METHOD_ROLES.items() if Role.OPERATOR in r}
    upstream = {m for m, r in METHOD_ROLES.items() if Role.UPSTREAM in r}
    i = "/cardstation.v1.IssuanceService/"
    s = "/cardstation.v1.StationService/"
    w = "/cardstation.v1.WindowService/"
    window = {w + n for n in ("ReadIdCard", "ReadCard", "RevealCardNumbers", "WatchPinEntry",
                              "VerifyReturnedCard", "VerifyPin",
                              "ChangePin", "UnblockPin", "ResetPin", "IssueTemporaryCard",
                              "RewriteTemporaryCard", "RecallTemporaryCard")}
    intake = {"/cardstation.v1.IntakeService/" + n for n in (
        "NormalisePhoto", "SubmitApplication", "RegisterFee", "MarkInstantIssuance",
        "GetCardLife", "HandOverCard", "ReportLoss", "LiftLoss", "CancelCard",
        "ApplyReplacement")}
    assert operator == {i + n for n in ("GetApplication", "PreviewCard", "CreateIssuance",
                                        "GetIssuance", "ListIssuances", "WatchIssuance",
                                        "CancelIssuance", "ResumeIssuance", "ReprintFace",
                                        "RejectCard", "MarkSpoiled", "RestoreAndResend")} | {
        s + n for n in ("GetStation", "WatchStation", "CalibrateRibbonSensor", "CleanCardPath",
                        "ResetPrinter")} | window | intake | {
        M_LIST_RETURNS, "/cardstation.v1.ReturnService/RetryReturns"}
    assert upstream == {i + n for n in ("GetApplication", "CreateIssuance", "GetIssuance",
                                        "ListIssuances", "WatchIssuance")} | {
        s + "GetStation", s + "WatchStation", M_LIST_RETURNS}


# --- no / bad credentials ---------------------------------------------------------------------


def test_no_credentials_is_unauthenticated(harness: Harness) -> None:
    _, info = expect_error(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED",
                           call, harness.channel(), M_CREATE)
    assert info.metadata["method"] == M_CREATE


def test_invalid_token(harness: Harness) -> None:
    err, _ = expect_error(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID",
                          call, harness.channel(), M_GET_STATION, token="not-a-real-token")
    assert "not-a-real-token" not in (err.details() or "")


def test_malformed_authorization_header(harness: Harness) -> None:
    stub = harness.channel().unary_unary(
        M_GET_STATION,
        request_serializer=station_pb2.GetStationRequest.SerializeToString,
        response_deserializer=station_pb2.GetStationResponse.FromString)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID", stub,
                 station_pb2.GetStationRequest(), metadata=[("authorization", "Basic abc")])


def test_expired_token(harness: Harness, tokens: tuple[TokenStore, dict[str, str]],
                       clock: Clock) -> None:
    token = tokens[1]["operator"]
    assert call(harness.channel(), M_GET_STATION, token).station.id == "operator-1/operator/token"
    clock.now += 3601
    err, _ = expect_error(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED",
                          call, harness.channel(), M_GET_STATION, token=token)
    assert token not in (err.details() or "")


# --- roles ------------------------------------------------------------------------------------


def test_operator_can_create_and_reset_upstream_cannot_reset(
        harness: Harness, tokens: tuple[TokenStore, dict[str, str]]) -> None:
    token = tokens[1]["operator"]
    resp = call(harness.channel(), M_CREATE, token)
    assert resp.issuance.id == "iss-1"
    assert resp.issuance.reason == "operator-1/operator/token"  # servicer saw the identity
    call(harness.channel(), M_RESET, token)  # the remedy of a jam is the operator's task
    _, info = expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED",
                           call, harness.channel(), M_RESET, token=tokens[1]["upstream"])
    assert dict(info.metadata) == {"method": M_RESET, "role": "upstream"}


def test_upstream_can_list_returns_cannot_reprint(
        harness: Harness, tokens: tuple[TokenStore, dict[str, str]]) -> None:
    token = tokens[1]["upstream"]
    assert call(harness.channel(), M_LIST_RETURNS, token).returns[0].id == 7
    _, info = expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED",
                           call, harness.channel(), M_REPRINT, token=token,
                           request=issuance_pb2.ReprintFaceRequest(id="iss-1"))
    assert info.metadata["role"] == "upstream"


@pytest.mark.parametrize("role", list(Role))
def test_every_method_for_every_role(harness: Harness,
                                     tokens: tuple[TokenStore, dict[str, str]],
                                     role: Role) -> None:
    channel = harness.channel()
    token = tokens[1][role.value]
    for method in all_methods():
        if role in METHOD_ROLES[method]:
            call(channel, method, token)  # no error
        else:
            expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED",
                         call, channel, method, token=token)
    if role is Role.ADMIN:
        assert all(role in METHOD_ROLES[m] for m in all_methods())


def test_streaming_method_authorized_the_same_way(
        harness: Harness, tokens: tuple[TokenStore, dict[str, str]]) -> None:
    channel = harness.channel()
    req = issuance_pb2.WatchIssuanceRequest(id="iss-1")
    expect_error(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED",
                 call, channel, M_WATCH, request=req)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID",
                 call, channel, M_WATCH, token="nope", request=req)
    events = call(channel, M_WATCH, tokens[1]["upstream"], request=req)
    assert [e.event.message for e in events] == ["upstream-1/upstream/token"] * 3
    assert events[-1].event.final


def test_stream_denied_for_role() -> None:
    store = TokenStore()
    token, _ = store.issue("op", Role.OPERATOR, None)
    roles = dict(METHOD_ROLES)
    roles[M_WATCH] = frozenset({Role.ADMIN})
    h = Harness(AuthInterceptor(tokens=store, method_roles=roles))
    try:
        expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED",
                     call, h.channel(), M_WATCH, token=token)
    finally:
        h.stop()


def test_unknown_method_of_our_package_is_denied(
        tokens: tuple[TokenStore, dict[str, str]]) -> None:
    roles = {m: r for m, r in METHOD_ROLES.items() if m != M_GET_STATION}
    h = Harness(AuthInterceptor(tokens=tokens[0], method_roles=roles))
    try:
        expect_error(grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED",
                     call, h.channel(), M_GET_STATION, token=tokens[1]["admin"])
    finally:
        h.stop()


def test_unregistered_method_is_unimplemented(harness: Harness) -> None:
    stub = harness.channel().unary_unary("/cardstation.v1.IssuanceService/Nope")
    with pytest.raises(grpc.RpcError) as caught:
        stub(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# --- open services ----------------------------------------------------------------------------


def test_health_needs_no_credentials(harness: Harness) -> None:
    stub = health_pb2_grpc.HealthStub(harness.channel())
    resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_needs_no_credentials(harness: Harness) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(harness.channel())
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert "cardstation.v1.IssuanceService" in names


# --- simulate on loopback ---------------------------------------------------------------------


def test_simulate_loopback_gives_admin_without_credentials() -> None:
    h = Harness(AuthInterceptor(simulate_loopback=True))
    try:
        resp = call(h.channel(), M_CREATE)
        assert resp.issuance.reason == "loopback/admin/loopback-simulate"
        call(h.channel(), M_RESET)
        # A presented but bad credential is still refused.
        expect_error(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID",
                     call, h.channel(), M_CREATE, token="bad")
    finally:
        h.stop()


@pytest.mark.parametrize(("peer", "expected"), [
    ("ipv4:127.0.0.1:5000", True),
    ("ipv4:127.8.9.1:5000", True),
    ("ipv6:[::1]:5000", True),
    ("ipv6:[::ffff:127.0.0.1]:5000", True),
    ("ipv4:10.0.0.5:5000", False),
    ("ipv6:[2001:db8::1]:5000", False),
    ("unix:/tmp/sock", False),
    ("", False),
])
def test_peer_is_loopback(peer: str, expected: bool) -> None:
    assert _peer_is_loopback(peer) is expected


# --- token store ------------------------------------------------------------------------------


def test_token_file_round_trip_holds_no_plaintext(tmp_path: Path) -> None:
    store = TokenStore()
    token, entry = store.issue("window-1", "operator", None)
    assert entry.sha256 == TokenStore.hash(token)
    path = tmp_path / "tokens.json"
    store.save(path)
    text = path.read_text()
    assert token not in text
    assert path.stat().st_mode & 0o077 == 0
    loaded = TokenStore.load(path)
    ident = loaded.authenticate(token)
    assert (ident.name, ident.role, ident.via) == ("window-1", Role.OPERATOR, "token")
    with pytest.raises(AuthError) as caught:
        loaded.authenticate(token + "x")
    assert caught.value.reason == "TOKEN_INVALID"


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "a", "role": "root", "sha256": "0" * 64}, "role must be one of"),
    ({"name": "a", "role": "admin", "sha256": "xyz"}, "sha256 must be 64 hex"),
    ({"name": "a", "role": "admin", "sha256": "0" * 64, "token": "s3cret"}, "plaintext"),
    ({"role": "admin", "sha256": "0" * 64}, "name is required"),
])
def test_token_file_errors(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": [entry]}))
    with pytest.raises(ValueError, match=message) as caught:
        TokenStore.load(path)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ValueError, match="does not exist"):
        TokenStore.load(tmp_path / "missing.json")


# --- no secrets in logs -----------------------------------------------------------------------


def test_no_token_or_id_number_in_logs(harness: Harness,
                                       tokens: tuple[TokenStore, dict[str, str]],
                                       clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    channel = harness.channel()
    req = issuance_pb2.CreateIssuanceRequest(client_request_id="r1", id_number=ID_NUMBER)
    call(channel, M_CREATE, tokens[1]["operator"], request=req)
    for bad in ("wrong-token-value", ""):
        with pytest.raises(grpc.RpcError):
            call(channel, M_CREATE, bad or None, request=req)
    with pytest.raises(grpc.RpcError):
        call(channel, M_RESET, tokens[1]["upstream"])
    clock.now += 10_000
    with pytest.raises(grpc.RpcError) as caught:
        call(channel, M_CREATE, tokens[1]["admin"], request=req)
    assert error_info(caught.value).reason == "TOKEN_EXPIRED"
    assert caplog.records  # the interceptor did log the refusals
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in [*tokens[1].values(), "wrong-token-value", ID_NUMBER]:
        assert secret not in text
