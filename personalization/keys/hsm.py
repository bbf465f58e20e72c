"""`HsmKeyService`: the remote encryption machine (加密机) behind the key-service port.

Henan authenticates 3rd-generation cards with an encryption machine on the network instead of
a PSAM. The machine's wire format is not public: every byte of it is in `hsm_wire` (labelled
proposals); this class holds the connection, the serialization and the error handling.

One machine serves the whole station (all lanes, the window): a lock makes each call — connect
if needed, send, wait for the answer and check it belongs to the request — one indivisible
sequence, so two callers never interleave; `transaction()` holds the lock across several calls
when a caller needs them back to back. Neither inputs nor outputs are logged.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import hsm_wire as wire
from .service import KeyService, KeyServiceError, KeyServiceUnavailable


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"the encryption machine address {address!r} is not host:port")
    return host.strip("[]"), int(port)


def client_context(ca_file: str, cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """TLS towards the machine: its certificate checked against `ca_file`; a client
    certificate presented when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


class HsmKeyService(KeyService):
    def __init__(self, address: str, tls: ssl.SSLContext, *, system_id: str,
                 terminal_code: str = "", key_address: str = wire.DEFAULT_KEY_ADDRESS,
                 timeout: float = 5.0, test_pinpad_kek: bool = False) -> None:
        self.host, self.port = split_address(address)
        self._tls = tls
        self.system_id = system_id
        self.terminal_code = terminal_code
        self.key_address = key_address
        self.timeout = timeout
        self._test_pinpad_kek = test_pinpad_kek
        self._lock = threading.RLock()
        self._sock: ssl.SSLSocket | None = None
        self._reader: Any = None
        self._seq = 0

    # -- the port ------------------------------------------------------------------------
    def external_auth(self, key_id: int, atr: bytes, city6: str, challenge: bytes,
                      algorithm: int, *, context: Mapping[str, str] | None = None) -> bytes:
        business = wire.BUSINESS_TYPE.get(key_id)
        if business is None:
            raise KeyServiceError(f"the encryption machine has no business type for key id "
                                  f"{key_id:02X}")
        with self._lock:
            seq = self._next()
            request = wire.external_auth_request(
                seq, system_id=self.system_id, terminal_code=self.terminal_code,
                key_address=self.key_address, business_type=business, atr=atr, city6=city6,
                challenge=bytes(challenge[:8]), algorithm=algorithm, context=context)
            return self._exchange(request, seq, "exAuthData", 16)

    def internal_auth_expected(self, atr: bytes, city6: str, data: bytes, algorithm: int, *,
                               context: Mapping[str, str] | None = None) -> bytes:
        """InnerAuth: what a genuine card answers to INTERNAL AUTHENTICATE with `data`."""
        with self._lock:
            seq = self._next()
            request = wire.inner_auth_request(
                seq, system_id=self.system_id, terminal_code=self.terminal_code,
                key_address=self.key_address, atr=atr, city6=city6, data=data,
                algorithm=algorithm, context=context)
            return self._exchange(request, seq, "result", 16 if algorithm == 0x03 else 8)

    def unblock_mac(self, atr: bytes, city6: str, challenge: bytes, algorithm: int) -> bytes:
        raise KeyServiceError("the encryption machine's known interface has no PIN-unblock "
                              "MAC: unblock PINs at a window with a PSAM")

    def pinpad_kek(self) -> bytes:
        if not self._test_pinpad_kek:
            raise KeyServiceError("no PIN pad key-encryption key: the encryption machine's "
                                  "known interface has none and `test_keys` is off")
        from cardstation.drivers.pinpad.pinblock import TEST_PINPAD_KEK

        return TEST_PINPAD_KEK

    def probe(self, timeout: float = 1.0) -> None:
        """Can the machine be reached and does TLS with it succeed? Raises
        KeyServiceUnavailable if not. A connection of its own: never waits for the lock."""
        try:
            raw = socket.create_connection((self.host, self.port),
                                           timeout=min(timeout, self.timeout))
        except OSError as exc:
            raise KeyServiceUnavailable(f"the encryption machine at {self.host}:{self.port} "
                                        f"cannot be reached ({exc.strerror or exc})") from None
        try:
            with self._tls.wrap_socket(raw, server_hostname=self.host):
                pass
        except (ssl.SSLError, OSError) as exc:
            raise KeyServiceUnavailable(f"TLS with the encryption machine failed ({exc}): "
                                        "check [keys] hsm_ca, hsm_cert and hsm_key") from None
        finally:
            raw.close()

    @contextmanager
    def transaction(self) -> Iterator[HsmKeyService]:
        """Hold the machine for several calls in a row (no other caller in between)."""
        with self._lock:
            yield self

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- plumbing ------------------------------------------------------------------------
    def _next(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    def _connect(self) -> None:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise KeyServiceUnavailable(f"the encryption machine at {self.host}:{self.port} "
                                        f"cannot be reached ({exc.strerror or exc})") from None
        try:
            self._sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise KeyServiceUnavailable(f"TLS with the encryption machine failed ({exc}): "
                                        "check [keys] hsm_ca, hsm_cert and hsm_key") from None
        self._sock.settimeout(self.timeout)
        self._reader = self._sock.makefile("rb")

    def _drop(self) -> None:
        for thing in (self._reader, self._sock):
            try:
                if thing is not None:
                    thing.close()
            except OSError:
                pass
        self._reader = self._sock = None

    def _exchange(self, request: dict[str, Any], seq: int, name: str, length: int) -> bytes:
        """One request and its answer, on the held lock; a broken connection is dropped (the
        next call reconnects) and reported as unavailable."""
        for attempt in (1, 2):
            fresh = self._sock is None
            if fresh:
                self._connect()
            assert self._sock is not None
            try:
                self._sock.sendall(wire.encode(request))
                line = self._reader.readline(wire.MAX_LINE)
            except (OSError, ssl.SSLError) as exc:
                self._drop()
                if attempt == 1 and not fresh:
                    continue  # an idle connection the machine closed: once more, afresh
                raise KeyServiceUnavailable(f"the encryption machine did not answer "
                                            f"({exc})") from None
            if not line:
                self._drop()
                if attempt == 1 and not fresh:
                    continue
                raise KeyServiceUnavailable("the encryption machine closed the connection "
                                            "without an answer")
            break
        try:
            value = wire.answer_value(wire.decode(line), seq, name, length)
        except wire.WireError as exc:
            self._drop()  # out of step: start again on a new connection
            raise KeyServiceUnavailable(f"the encryption machine's answer was not "
                                        f"understood ({exc})") from None
        if isinstance(value, str):
            raise KeyServiceError(f"the encryption machine refused ({value})")
        return value
