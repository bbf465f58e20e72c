"""TLS rules and credentials; mTLS client certificates mapped to roles, over real ports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cardstation.server.auth.identity import Role
from cardstation.server.auth.interceptor import AuthInterceptor
from cardstation.server.auth.tokens import TokenStore
from cardstation.server.tls import (
    CredentialsFileError,
    InsecureListenError,
    channel_credentials,
    check_listen_security,
    is_loopback,
    server_credentials,
    split_host_port,
)
from tests.support.auth_harness import Harness, call, expect_error
from tests.support.certs import TestCA

M_CREATE = "/cardstation.v1.IssuanceService/CreateIssuance"
M_RESET = "/cardstation.v1.StationService/ResetPrinter"
M_WATCH_STATION = "/cardstation.v1.StationService/WatchStation"


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("192.168.1.20", False),
    ("example.com", False), ("", False), ("localhost.example.com", False),
])
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


@pytest.mark.parametrize(("listen", "host"), [
    ("127.0.0.1:50051", "127.0.0.1"), ("[::1]:50051", "::1"), ("[::]:1", "::"),
    ("localhost:1", "localhost"), (":50051", ""), ("0.0.0.0:50051", "0.0.0.0"),
])
def test_split_host_port(listen: str, host: str) -> None:
    assert split_host_port(listen)[0] == host


def test_tls_required_off_loopback() -> None:
    for simulate in (False, True):
        with pytest.raises(InsecureListenError, match=re.escape("0.0.0.0:50051")):
            check_listen_security("0.0.0.0:50051", False, simulate)
    with pytest.raises(InsecureListenError, match="without TLS"):
        check_listen_security("[::]:50051", False, False)
    with pytest.raises(InsecureListenError):
        check_listen_security(":50051", False, False)
    check_listen_security("0.0.0.0:50051", True, False)  # TLS on: fine anywhere
    check_listen_security("127.0.0.1:1", False, False)
    check_listen_security("127.0.0.1:1", False, True)
    check_listen_security("[::1]:50051", False, True)
    check_listen_security("localhost:50051", True, True)


def test_simulate_only_on_loopback_even_with_tls() -> None:
    with pytest.raises(InsecureListenError, match="simulate"):
        check_listen_security("0.0.0.0:50051", True, True)
    with pytest.raises(InsecureListenError, match="simulate"):
        check_listen_security("192.168.1.20:50051", True, True)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("pki"))


def test_credentials_name_the_missing_file(ca: TestCA, tmp_path: Path) -> None:
    server = ca.server()
    missing = tmp_path / "nope.key"
    with pytest.raises(CredentialsFileError, match=r"server private key file .*nope\.key"):
        server_credentials(server.cert, missing)
    with pytest.raises(CredentialsFileError, match=r"client CA file .*nope\.key does not exist"):
        server_credentials(server.cert, server.key, missing)
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    with pytest.raises(CredentialsFileError, match="empty"):
        server_credentials(empty, server.key)
    folder = tmp_path / "dir"
    folder.mkdir()
    with pytest.raises(CredentialsFileError, match="cannot be read"):
        channel_credentials(folder)
    with pytest.raises(CredentialsFileError, match="needs its key"):
        channel_credentials(ca.cert_file, server.cert)
    assert isinstance(server_credentials(server.cert, server.key), grpc.ServerCredentials)


@pytest.fixture
def mtls(ca: TestCA) -> Iterator[tuple[Harness, TokenStore]]:
    server = ca.server()
    store = TokenStore()
    interceptor = AuthInterceptor(tokens=store,
                                  client_roles={"window-1": Role.OPERATOR, "ops": "admin"})
    h = Harness(interceptor, server_credentials(server.cert, server.key, ca.cert_file))
    yield h, store
    h.stop()


def test_mtls_common_name_maps_to_role(ca: TestCA, mtls: tuple[Harness, TokenStore]) -> None:
    h, _ = mtls
    client = ca.client("window-1")
    ch = h.channel(channel_credentials(ca.cert_file, client.cert, client.key), host="localhost")
    resp = call(ch, M_CREATE)
    assert resp.issuance.reason == "window-1/operator/mtls"
    stations = call(ch, M_WATCH_STATION)
    assert [s.station.id for s in stations] == ["window-1/operator/mtls"] * 2
    call(ch, M_RESET)  # operators reset the printer (the remedy of a jam)

    admin = ca.client("ops")
    ch = h.channel(channel_credentials(ca.cert_file, admin.cert, admin.key), host="127.0.0.1")
    call(ch, M_RESET)


def test_mtls_unknown_common_name_is_denied(ca: TestCA,
                                            mtls: tuple[Harness, TokenStore]) -> None:
    h, _ = mtls
    client = ca.client("intruder")
    ch = h.channel(channel_credentials(ca.cert_file, client.cert, client.key), host="localhost")
    _, info = expect_error(grpc.StatusCode.UNAUTHENTICATED, "CLIENT_CERT_UNKNOWN",
                           call, ch, M_CREATE)
    assert info.metadata["method"] == M_CREATE


def test_mtls_token_wins_over_certificate(ca: TestCA,
                                          mtls: tuple[Harness, TokenStore]) -> None:
    h, store = mtls
    token, _ = store.issue("ops-token", Role.ADMIN, None)
    client = ca.client("window-1")
    ch = h.channel(channel_credentials(ca.cert_file, client.cert, client.key), host="localhost")
    assert call(ch, M_CREATE, token).issuance.reason == "ops-token/admin/token"


def test_mtls_without_client_certificate_fails_handshake(
        ca: TestCA, mtls: tuple[Harness, TokenStore]) -> None:
    h, store = mtls
    token, _ = store.issue("op", Role.OPERATOR, None)
    ch = h.channel(channel_credentials(ca.cert_file), host="localhost")
    with pytest.raises(grpc.RpcError) as caught:
        call(ch, M_CREATE, token)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_certificate_from_another_ca_is_rejected(
        ca: TestCA, mtls: tuple[Harness, TokenStore], tmp_path: Path) -> None:
    h, _ = mtls
    rogue = TestCA(tmp_path / "rogue").client("window-1")
    ch = h.channel(channel_credentials(ca.cert_file, rogue.cert, rogue.key), host="localhost")
    with pytest.raises(grpc.RpcError) as caught:
        call(ch, M_CREATE)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_server_tls_with_token_only(ca: TestCA) -> None:
    server = ca.server()
    store = TokenStore()
    token, _ = store.issue("up", Role.UPSTREAM, None)
    h = Harness(AuthInterceptor(tokens=store), server_credentials(server.cert, server.key))
    try:
        ch = h.channel(channel_credentials(ca.cert_file), host="localhost")
        assert call(ch, M_CREATE, token).issuance.reason == "up/upstream/token"
        expect_error(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED", call, ch, M_CREATE)
    finally:
        h.stop()


def test_private_key_readable_by_others_is_refused(ca: TestCA, tmp_path: Path) -> None:
    # issue 17: a TLS key readable by everyone was accepted silently.
    server = ca.server()
    server.key.chmod(0o644)
    try:
        with pytest.raises(CredentialsFileError,
                           match=rf"{server.key.name} is readable by other users.*chmod 600"):
            server_credentials(server.cert, server.key)
        server.key.chmod(0o640)  # group read is refused too
        with pytest.raises(CredentialsFileError, match="chmod 600"):
            server_credentials(server.cert, server.key)
    finally:
        server.key.chmod(0o600)
    assert isinstance(server_credentials(server.cert, server.key), grpc.ServerCredentials)


def test_serve_refuses_a_readable_key_without_a_traceback(ca: TestCA, tmp_path: Path) -> None:
    import subprocess
    import sys

    server = ca.server()
    key = tmp_path / "server.key"
    key.write_bytes(server.key.read_bytes())
    key.chmod(0o644)
    config = tmp_path / "cardstation.toml"
    config.write_text(f'[station]\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[server]\ntls_cert = "{server.cert}"\ntls_key = "{key}"\n')
    result = subprocess.run([sys.executable, "-m", "cardstation", "serve", "--config",
                             str(config), "--listen", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"chmod 600 {key}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was started
