"""Authentication and authorization of the gRPC server, over real ports.

The servicers here are small fakes with canned answers (not the station's servicers), so these
tests pin the interceptor: who may call what, and what a refused caller is told.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cardstation.protos.cardstation.v1 import (
    issuance_pb2,
    station_pb2,
)
from cardstation.server.auth.identity import AuthError, Role
from cardstation.server.auth.interceptor import (
    AuthInterceptor,
    _peer_is_loopback,
)
from cardstation.server.auth.policy import METHOD_ROLES, STATE_CHANGING
from cardstation.server.auth.tokens import TokenStore
from cardstation.server.errors import error_info
from tests.support.applicants import ID_NUMBER
from tests.support.auth_harness import Harness, all_methods, call, expect_error
from tests.support.clock import FakeClock

M_CREATE = "/cardstation.v1.IssuanceService/CreateIssuance"
M_REPRINT = "/cardstation.v1.IssuanceService/ReprintFace"
M_WATCH = "/cardstation.v1.IssuanceService/WatchIssuance"
M_RESET = "/cardstation.v1.StationService/ResetPrinter"
M_LIST_RETURNS = "/cardstation.v1.ReturnService/ListReturns"
M_GET_STATION = "/cardstation.v1.StationService/GetStation"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tokens(clock: FakeClock) -> tuple[TokenStore, dict[str, str]]:
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
                       clock: FakeClock) -> None:
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
                                       clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
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
