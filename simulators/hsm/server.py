"""The encryption-machine simulator: a TLS server on loopback (mutual TLS: the station's
client certificate must chain to the simulator's CA) answering `cardExternalAuth` and
`InnerAuth` lines (personalization/keys/hsm_wire.py, proposals) with the TEST master keys.

It records every request (without the randoms) in `requests`, counts the requests it is
working on at once (`max_in_flight`: 1 when callers are serialized), and can refuse
(`refuse = "code"`), hang up once (`drop_next`) or on everything (`down`).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from cardstation.personalization.keys import hsm_wire as wire
from cardstation.personalization.keys.scheme import (
    TEST_MASTER_KEYS,
    KeyUsage,
    compute_external_auth,
    internal_auth_expected,
)

from .pki import HsmPki, make_pki

_USAGE = {"026": KeyUsage.UK, "028": KeyUsage.RK}


class HsmSimulator:
    def __init__(self, folder: str | Path, *, key_address: str = wire.DEFAULT_KEY_ADDRESS,
                 delay: float = 0.0) -> None:
        self.pki: HsmPki = make_pki(folder)
        self.key_address = key_address
        self.delay = delay  # seconds per request, to make overlaps visible
        self.requests: list[dict[str, Any]] = []
        self.refuse: str | None = None
        self.drop_next = False
        self.down = False  # hang up on every connection (an unreachable machine)
        self.in_flight = 0
        self.max_in_flight = 0
        self._count_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                                   cafile=str(self.pki.ca))
        self._context.load_cert_chain(str(self.pki.server_cert), str(self.pki.server_key))
        self._context.verify_mode = ssl.CERT_REQUIRED

    @property
    def address(self) -> str:
        assert self._listener is not None, "start() first"
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def keys_config(self) -> dict[str, Any]:
        """The `[keys]` values of a station using this simulator."""
        return {"service": "hsm", "hsm_address": self.address, "hsm_ca": str(self.pki.ca),
                "hsm_cert": str(self.pki.client_cert), "hsm_key": str(self.pki.client_key),
                "hsm_system_id": "410700006", "hsm_terminal": "410700-SIM"}

    def start(self, host: str = "127.0.0.1", port: int = 0) -> HsmSimulator:
        listener = socket.create_server((host, port))
        listener.settimeout(0.2)
        self._listener = listener
        thread = threading.Thread(target=self._accept, daemon=True, name="hsm-sim")
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> HsmSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving -------------------------------------------------------------------------
    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, raw: socket.socket) -> None:
        if self.down:
            raw.close()
            return
        try:
            raw.settimeout(5.0)
            conn = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        with conn, conn.makefile("rb") as reader:
            while not self._stop.is_set():
                try:
                    line = reader.readline(wire.MAX_LINE)
                except (OSError, ssl.SSLError):
                    return
                if not line or self.down:
                    return
                if self.drop_next:
                    self.drop_next = False
                    return
                with self._count_lock:
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if self.delay:
                        time.sleep(self.delay)
                    answer = self._answer(line)
                finally:
                    with self._count_lock:
                        self.in_flight -= 1
                try:
                    conn.sendall(wire.encode(answer))
                except (OSError, ssl.SSLError):
                    return

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = wire.decode(line)
        except wire.WireError as exc:
            return {"seq": None, "code": "-1", "message": str(exc)}
        seq = request.get("seq")
        self.requests.append({k: v for k, v in request.items()
                              if k not in ("random1", "random2", "data")})
        if self.refuse is not None:
            return {"seq": seq, "code": self.refuse, "message": "refused by the simulator"}
        if request.get("keyAddr") != self.key_address:
            return {"seq": seq, "code": "-3", "message": "unknown key address"}
        if not request.get("systemId"):
            return {"seq": seq, "code": "-4", "message": "no system id"}
        try:
            atr = bytes.fromhex(str(request["cardATR"]))
            city6 = str(request["regionCode"])
            algorithm = int(str(request["algoCode"]))
            if request.get("op") == wire.OP_EXTERNAL_AUTH:
                usage = _USAGE.get(str(request.get("businessType")))
                if usage is None:
                    return {"seq": seq, "code": "-5", "message": "unknown business type"}
                challenge = bytes.fromhex(str(request["random1"]))
                data = compute_external_auth(algorithm, TEST_MASTER_KEYS[usage], atr, city6,
                                             challenge)
                return {"seq": seq, "code": wire.SUCCESS, "message": "",
                        "exAuthData": data.hex().upper()}
            if request.get("op") == wire.OP_INNER_AUTH:
                data = bytes.fromhex(str(request["data"]))
                result = internal_auth_expected(algorithm, TEST_MASTER_KEYS[KeyUsage.INT],
                                                atr, city6, data)
                return {"seq": seq, "code": wire.SUCCESS, "message": "",
                        "result": result.hex().upper()}
        except (KeyError, ValueError) as exc:
            return {"seq": seq, "code": "-2", "message": f"bad request ({exc})"}
        return {"seq": seq, "code": "-6", "message": "unknown op"}
