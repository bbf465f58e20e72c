"""Transport security: when TLS is required, and building server/channel credentials.

Rule: the server listens without TLS only on a loopback address (127.0.0.0/8, ::1, localhost).
`--simulate` does not lift that rule; it is itself allowed only on loopback, because it lets
credential-less loopback callers act as admin (see `server.auth.AuthInterceptor`).
The server's private key file must not be readable by group or others: such a key is refused at
start, naming the file and `chmod 600`, since it may already have been copied.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import grpc

from cardstation.personalization.private_files import PrivateFileError, check_private_file


class InsecureListenError(ValueError):
    """The listen address and the security settings do not go together."""


class CredentialsFileError(ValueError):
    """A certificate or key file is missing, unreadable, or (a private key) open to others."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (with or without brackets) and "localhost"."""
    host = host.strip().strip("[]")
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def split_host_port(listen: str) -> tuple[str, str]:
    """("host", "port") of "host:port", "[v6]:port" or a bare host/port-less address.

    A listen address with no host part (":50051") means every interface and returns "".
    """
    listen = listen.strip()
    if listen.startswith("["):
        host, _, rest = listen[1:].partition("]")
        return host, rest.lstrip(":")
    if listen.count(":") > 1:  # bare IPv6 without a port
        return listen, ""
    host, sep, port = listen.rpartition(":")
    if not sep:
        return listen, ""
    return host, port


def check_listen_security(listen: str, tls_enabled: bool, simulate: bool) -> None:
    """Refuse plaintext off loopback, and simulate mode anywhere but loopback.

    Raises InsecureListenError with what to change.
    """
    host, _port = split_host_port(listen)
    loopback = bool(host) and is_loopback(host)
    if simulate and not loopback:
        raise InsecureListenError(
            f"--simulate is only allowed on a loopback address (127.0.0.1, ::1, localhost), "
            f"not {listen!r}: simulate mode admits credential-less local callers as admin"
        )
    if not tls_enabled and not loopback:
        raise InsecureListenError(
            f"listening on {listen!r} without TLS is refused: outside loopback the server needs "
            "TLS (set a server certificate and key, and a client CA for mTLS), or listen on "
            "127.0.0.1"
        )


def check_private_key(key_file: str | Path) -> None:
    """Refuse a server private key file that group or others may read (CredentialsFileError
    naming the file and `chmod 600`)."""
    try:
        check_private_file(key_file, "server private key file")
    except PrivateFileError as exc:
        raise CredentialsFileError(str(exc)) from None


def _read(path: str | Path, what: str) -> bytes:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CredentialsFileError(f"{what} file {p} does not exist") from None
    except OSError as exc:
        raise CredentialsFileError(f"{what} file {p} cannot be read: {exc.strerror}") from None
    if not data.strip():
        raise CredentialsFileError(f"{what} file {p} is empty")
    if b"-----BEGIN " not in data:
        raise CredentialsFileError(f"{what} file {p} is not PEM")
    return data


def server_credentials(
    cert_file: str | Path,
    key_file: str | Path,
    client_ca_file: str | Path | None = None,
) -> grpc.ServerCredentials:
    """TLS credentials for the server; with a client CA, clients must present a certificate
    signed by it (mTLS)."""
    cert = _read(cert_file, "server certificate")
    check_private_key(key_file)
    key = _read(key_file, "server private key")
    if client_ca_file is None:
        return grpc.ssl_server_credentials([(key, cert)])
    ca = _read(client_ca_file, "client CA")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def channel_credentials(
    ca_file: str | Path,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """TLS credentials for a client: trust `ca_file`; present a client certificate if given."""
    if (cert_file is None) != (key_file is None):
        raise CredentialsFileError("a client certificate needs its key, and the other way round")
    ca = _read(ca_file, "CA")
    cert = _read(cert_file, "client certificate") if cert_file is not None else None
    key = _read(key_file, "client private key") if key_file is not None else None
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                        certificate_chain=cert)
