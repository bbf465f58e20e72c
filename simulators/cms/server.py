"""The CMS simulator over HTTP/JSON on loopback, plus `cardstation sim cms`.

`cardstation sim cms --listen HOST:PORT --seed N [--state FILE]` (the CLI calls
`add_arguments` and `run`; `python -m cardstation.simulators.cms` does the same) prints its base
URL `http://HOST:PORT` on the first stdout line and serves until SIGINT/SIGTERM.

Endpoints (JSON in, JSON out; errors are `{"error": code, "message": text}`):

    GET  /applications/{id}            application + "status"    404 unknown, 409 not_marked
    POST /applications/{id}/claim      {"station"}               409 claimed_elsewhere, ...
    POST /applications/{id}/restore    {}                        失败数据处理 → 恢复申请
    POST /returns     {"idempotency_key", "station", "record"}   -> {"ack", "duplicate"}
    POST /failures    {"idempotency_key", "station", "id_number", "reason"}
    POST /temporary-cards {"station", "card_id_code", "holder_id", ...}   409 outstanding
    GET  /temporary-cards/{code}       POST .../{code}/recall {"station"}
    POST /temporary-cards/{code}/void  {"station", "holder_id"}  withdraw an unfinished issue
    POST /temporary-cards/check {"card_id_code", "holder_id"}    409 outstanding; no change
    POST /intake/applications {"idempotency_key", "station", "application"}  新增申请
                                       409 holder_has_card, 422 invalid_application
    POST /applications/{id}/fee  {"station"}   交费登记
    POST /applications/{id}/mark {"station"}   即制卡标注    409 card_state_invalid (no fee)
    GET  /cards/{id}                   the card's life (state, temporary_card_out, ...)
    POST /cards/{id}/enable {"station", "card_id_code"}   领卡启用   409 card_mismatch,
                                       temporary_card_outstanding, card_state_invalid
    POST /cards/{id}/loss {"station", "kind"}   临时 / 正式挂失 (temporary | formal)
    POST /cards/{id}/lift {"station"}   解挂          POST /cards/{id}/cancel {"station", "reason"}
    POST /cards/{id}/replacement {"station", "kind", "bank_name"?}   补换卡 (lost | damaged)
                                       409 formal_loss_required
    GET  /health
    POST /applications {"application", "status"?, "fee_registered"?}   admin: add or replace
    GET  /ledger[?photos=0]                                      admin: everything
    GET|POST|DELETE /_faults                                     fault injection (see FAULTS)

Faults never apply to the admin endpoints (/ledger, /_faults, POST /applications), so a test
can always look at the ledger and clear the faults. A `slow` or `malformed` request is still
carried out, as a real CMS that commits and then answers late or garbled would: the station's
retry with the same idempotency key must then be acknowledged as a duplicate.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import re
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization import cert_assumptions as ca
from cardstation.personalization.model import Application, IntakeApplication, ReturnRecord
from cardstation.simulators import options
from cardstation.simulators.cms.applicants import (
    EXAMPLE_ID_NUMBER,
    bad_photo,
    example_applicant,
    generate_applicants,
)
from cardstation.simulators.cms.certificates import CertificateAuthority
from cardstation.simulators.cms.ledger import STATUSES, Ledger, LedgerError
from cardstation.simulators.foreground import catch_stop_signals, wait_for_stop_signal

log = logging.getLogger(__name__)
T = TypeVar("T")
_APPLICATION_PATH = re.compile(r"(/(?:applications|cards)/)([^/?\s]+)")

# Fault names and their parameters (defaults). See CmsSimulator.inject.
FAULTS: dict[str, dict[str, float | int]] = {
    "down": {},  # close the connection without a response (a dead or unreachable CMS)
    "error_5xx": {"status": 500},  # answer every request with this 5xx status
    "slow": {"seconds": 1.0},  # wait this long before carrying out the request
    "malformed": {},  # carry out the request, then answer 200 with a body that is not JSON
    "fail_returns": {"count": 1},  # the next `count` POST /returns answer 503, change nothing
    # certificate requests are answered with this status (GetCA: only 0 and 1 go on)
    "certificate_status": {"status": 2},
}

_MAX_BODY = 4 * 1024 * 1024  # an application with its photo is ~100 KB; anything near this is wrong


class CmsSimulator:
    """In-memory (optionally persisted) CMS with an HTTP front and injectable faults.

    The default ledger (when no state file exists yet) holds the GB 11643 example holder
    (`11010519491231002X`, ready) and, generated from `seed`: four ready applicants, one not
    marked for instant issuance and one whose photo fails validation, plus `extra_applicants`
    more ready ones. `samples` names them. An existing state file is loaded instead (and
    `samples` stays empty): the ledger then is what it was when the simulator stopped.
    """

    def __init__(
        self, seed: int = 0, state_path: str | Path | None = None, *, extra_applicants: int = 0
    ) -> None:
        self.seed = seed
        self.ledger_store = Ledger(state_path)
        self.samples: dict[str, Any] = {}
        if not self.ledger_store.load():
            self._seed_defaults(extra_applicants)
        self._faults: dict[str, dict[str, Any]] = {}
        self._tls: ssl.SSLContext | None = None
        self._token = ""
        self.authority = CertificateAuthority()
        self.certificates_issued: list[dict[str, Any]] = []
        self._faults_lock = threading.Lock()
        # Set to cut short the sleeps of `slow` requests when faults are cleared or we stop.
        self._wake = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _seed_defaults(self, extra_applicants: int) -> None:
        example = example_applicant()
        # One call, so the extras are unique among themselves and with the fixed samples.
        people = generate_applicants(6 + extra_applicants, self.seed)
        ready, not_marked, poor = [*people[:4], *people[6:]], people[4], people[5]
        poor = Application(**{**_fields(poor), "photo": bad_photo(self.seed)})
        self.ledger_store.put_applications(
            [(app, "ready", True) for app in (example, *ready)]
            + [(not_marked, "not_marked", True), (poor, "ready", True)]
        )
        self.samples = {
            "example": EXAMPLE_ID_NUMBER,
            "ready": [example.id_number, *(a.id_number for a in ready)],
            "not_marked": not_marked.id_number,
            "bad_photo": poor.id_number,
        }

    # ---- Python API --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the CMS simulator is not started")
        host, port = self._server.server_address[:2]
        return f"{'https' if self._tls else 'http'}://{host}:{port}"

    def start(self, host: str = "127.0.0.1", port: int = 0, *,
              tls: ssl.SSLContext | None = None, token: str = "") -> str:
        """Listen on host:port (0 = any free port) in a background thread; return the base URL.
        `tls`: serve HTTPS with this server context (one that requires client certificates
        makes it mutual TLS); `token`: every station request must carry this bearer token (401
        otherwise; the admin endpoints are exempt, like the faults)."""
        if self._server is not None:
            raise RuntimeError("the CMS simulator is already started")
        self._wake.clear()
        server = _Server((host, port), _Handler)
        self._tls, self._token = tls, token
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        server.sim = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="cms-sim",
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop listening (later connections are refused); in-flight slow requests end early."""
        server, self._server = self._server, None
        if server is None:
            return
        self._wake.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> CmsSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_application(
        self, app: Application, status: str = "ready", *, fee_registered: bool = True
    ) -> None:
        """Add or replace an application with a status from STATUSES (else ValueError)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        self.ledger_store.put_application(app, status, fee_registered=fee_registered)

    def ledger(self, *, photos: bool = True) -> dict[str, Any]:
        """A copy of everything: applications with status, claims, returns, failures, conflicts."""
        return self.ledger_store.snapshot(photos=photos)

    def inject(self, fault: str, **params: Any) -> None:
        """Turn on a fault from FAULTS (replacing its earlier parameters). ValueError if unknown.

        down: close connections without answering; error_5xx(status=500): answer with a 5xx;
        slow(seconds=1.0): delay, then carry out the request; malformed: carry out, answer
        non-JSON; fail_returns(count=1): the next `count` returns answer 503 and change nothing.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        unknown = set(params) - set(FAULTS[fault])
        if unknown:
            raise ValueError(f"fault {fault!r} takes no parameter {', '.join(sorted(unknown))}")
        values = {**FAULTS[fault], **params}
        if fault == "error_5xx" and not (
            isinstance(values["status"], int) and 500 <= values["status"] <= 599
        ):
            raise ValueError("error_5xx status must be an integer 500-599")
        if fault == "slow" and not (
            isinstance(values["seconds"], int | float) and 0 <= values["seconds"] <= 600
        ):
            raise ValueError("slow seconds must be a number 0-600")
        if fault == "fail_returns" and not (
            isinstance(values["count"], int) and values["count"] >= 0
        ):
            raise ValueError("fail_returns count must be a non-negative integer")
        with self._faults_lock:
            self._faults[fault] = values

    def clear_faults(self) -> None:
        """Remove every fault; requests sleeping in `slow` continue at once."""
        with self._faults_lock:
            self._faults.clear()
            self._wake.set()
            self._wake = threading.Event()

    def faults(self) -> dict[str, dict[str, Any]]:
        """The active faults and their parameters (a copy)."""
        with self._faults_lock:
            return {k: dict(v) for k, v in self._faults.items()}

    # ---- used by the handler -----------------------------------------------------------

    def issue_certificates(self, id_number: str, body: dict[str, Any]) -> dict[str, Any]:
        """GetCA for a 3rd-generation card of a claimed application
        (personalization/cert_assumptions.py formats)."""
        station, code = _text(body, "station"), _text(body, "card_id_code")
        key_hex, algorithm = _text(body, "public_key"), _text(body, "algorithm")
        if algorithm != ca.ALGORITHM_CODE:
            raise _BadRequest("invalid_field", f"algorithm must be {ca.ALGORITHM_CODE}")
        app = self.ledger_store.claimed_application(id_number, station)
        try:
            certs = self.authority.issue(app, code, bytes.fromhex(key_hex))
        except ValueError as exc:
            raise LedgerError(422, "invalid_public_key", str(exc)) from None
        self.certificates_issued.append({"id_number": id_number, "card_id_code": code,
                                         "status": certs.status})
        answer = ca.response_body(certs)
        forced = self._take_fault("certificate_status")
        if forced is not None:
            answer["status"] = forced["status"]
        return answer

    def _take_fault(self, name: str) -> dict[str, Any] | None:
        with self._faults_lock:
            return self._faults.get(name)

    def _consume_return_failure(self) -> bool:
        # Decrement under the lock so N concurrent returns fail exactly N times in total.
        with self._faults_lock:
            fault = self._faults.get("fail_returns")
            if fault is None:
                return False
            if fault["count"] <= 0:
                del self._faults["fail_returns"]
                return False
            fault["count"] -= 1
            if fault["count"] == 0:
                del self._faults["fail_returns"]
            return True

    def _sleep(self, seconds: float) -> None:
        with self._faults_lock:
            wake = self._wake
        wake.wait(seconds)


def _fields(app: Application) -> dict[str, Any]:
    return {name: getattr(app, name) for name in Application.__dataclass_fields__}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a request sleeping in `slow`
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of stations (the client
    # then sees a connect timeout), which a real CMS behind a load balancer would not do.
    request_queue_size = 128
    sim: CmsSimulator


class _BadRequest(LedgerError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(400, code, message)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "CardstationCmsSim/1"
    protocol_version = "HTTP/1.1"  # with Content-Length on every answer; closes after each

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes raw request lines to stderr; an application's path carries the
        # ID number, masked here where the route is known (the CLI's pattern net is second).
        masked = tuple(_masked_path(a) if isinstance(a, str) else a for a in args)
        log.debug("%s " + format, self.address_string(), *masked)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # ---- plumbing ----------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        sim = self.server.sim
        self.close_connection = True
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        try:
            body = self._read_body()
        except LedgerError as exc:
            self._send(exc.status, exc.to_dict())
            return
        admin = parts[:1] in (["_faults"], ["ledger"]) or (parts == ["applications"])
        if not admin and sim._token and not hmac.compare_digest(
                self.headers.get("Authorization", ""), f"Bearer {sim._token}"):
            self._send(401, {"error": "unauthorized", "message": "no valid bearer token"})
            return
        if not admin:
            if sim._take_fault("down") is not None:
                return  # no answer at all: the client sees the connection closed
            error = sim._take_fault("error_5xx")
            if error is not None:
                self._send(
                    error["status"],
                    {"error": "injected_5xx", "message": "simulated CMS server error"},
                )
                return
            if method == "POST" and parts == ["returns"] and sim._consume_return_failure():
                self._send(
                    503,
                    {"error": "unavailable", "message": "simulated CMS outage (fail_returns)"},
                )
                return
            slow = sim._take_fault("slow")
            if slow is not None:
                sim._sleep(slow["seconds"])
        try:
            status, payload = self._route(method, parts, parse_qs(url.query), body)
        except LedgerError as exc:
            status, payload = exc.status, exc.to_dict()
        except Exception:  # a simulator bug must still answer in the documented shape
            log.exception("CMS simulator failed on %s %s", method, url.path)
            status, payload = 500, {"error": "internal", "message": "CMS simulator error"}
        if not admin and sim._take_fault("malformed") is not None:
            self._send_raw(200, b'{"ack": "ACK0000', "application/json")
            return
        self._send(status, payload)

    def _read_body(self) -> Any:
        length_text = self.headers.get("Content-Length")
        if self.command not in ("POST", "PUT"):
            return None
        if length_text is None:
            raise _BadRequest("missing_body", "a JSON body with Content-Length is required")
        try:
            length = int(length_text)
        except ValueError:
            raise _BadRequest("bad_length", "Content-Length is not a number") from None
        if length < 0 or length > _MAX_BODY:
            raise LedgerError(413, "too_large", f"the body must be at most {_MAX_BODY} bytes")
        raw = self.rfile.read(length)
        if not raw:
            return {}
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            message = f"the body is not valid UTF-8 JSON: {exc}"
            raise _BadRequest("malformed_json", message) from None

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send_raw(status, data, "application/json; charset=utf-8")

    def _send_raw(self, status: int, data: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (e.g. its read timeout during `slow`): nothing to tell

    # ---- routes ------------------------------------------------------------------------

    def _route(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, dict[str, Any]]:
        sim = self.server.sim
        store = sim.ledger_store
        match method, parts:
            case "GET", ["health"]:
                return 200, {"ok": True}
            case "GET", ["applications", id_number]:
                return 200, store.get_application(id_number)
            case "POST", ["applications", id_number, "claim"]:
                station = _text(_object(body), "station")
                return 200, store.claim(id_number, station)
            case "POST", ["applications", id_number, "restore"]:
                _object(body if body is not None else {})
                return 200, store.restore(id_number)
            case "POST", ["applications", id_number, "certificates"]:
                return 200, sim.issue_certificates(id_number, _object(body))
            case "POST", ["returns"]:
                data = _object(body)
                key, station = _text(data, "idempotency_key"), _text(data, "station")
                record = _return_record(data.get("record"))
                return 200, store.submit_return(key, station, record)
            case "POST", ["failures"]:
                data = _object(body)
                key, station = _text(data, "idempotency_key"), _text(data, "station")
                id_number, reason = _text(data, "id_number"), _text(data, "reason")
                return 200, store.report_failure(key, station, id_number, reason)
            case "POST", ["applications"]:
                data = _object(body)
                app = _application(data.get("application"))
                status = data.get("status", "ready")
                fee = data.get("fee_registered", True)
                if status not in STATUSES:
                    raise _BadRequest(
                        "invalid_field", f"status must be one of {', '.join(STATUSES)}"
                    )
                if not isinstance(fee, bool):
                    raise _BadRequest("invalid_field", "fee_registered must be true or false")
                store.put_application(app, status, fee_registered=fee)
                return 200, {"status": status}
            case "POST", ["temporary-cards"]:
                data = _object(body)
                record = {k: _text(data, k) for k in (
                    "station", "card_id_code", "holder_id", "holder_name", "valid_from",
                    "valid_to")}
                for optional in ("agent_id", "agent_name"):
                    record[optional] = str(data.get(optional) or "")
                return 200, store.record_temporary(record)
            case "POST", ["temporary-cards", "check"]:
                data = _object(body)
                return 200, store.check_temporary(_text(data, "card_id_code"),
                                                  _text(data, "holder_id"))
            case "GET", ["temporary-cards", card_id_code]:
                return 200, store.get_temporary(card_id_code)
            case "POST", ["temporary-cards", card_id_code, "recall"]:
                return 200, store.recall_temporary(card_id_code,
                                                   _text(_object(body), "station"))
            case "POST", ["temporary-cards", card_id_code, "void"]:
                data = _object(body)
                return 200, store.void_temporary(card_id_code, _text(data, "station"),
                                                 _text(data, "holder_id"))
            case "POST", ["intake", "applications"]:
                data = _object(body)
                key, station = _text(data, "idempotency_key"), _text(data, "station")
                return 200, store.submit_application(key, station,
                                                     _intake(data.get("application")))
            case "POST", ["applications", id_number, "fee"]:
                _text(_object(body), "station")
                return 200, store.register_fee(id_number)
            case "POST", ["applications", id_number, "mark"]:
                _text(_object(body), "station")
                return 200, store.mark_instant_issuance(id_number)
            case "GET", ["cards", id_number]:
                return 200, store.card_life(id_number)
            case "POST", ["cards", id_number, "enable"]:
                return 200, store.enable_card(id_number, _text(_object(body), "card_id_code"))
            case "POST", ["cards", id_number, "loss"]:
                return 200, store.report_loss(id_number, _text(_object(body), "kind"))
            case "POST", ["cards", id_number, "lift"]:
                _text(_object(body), "station")
                return 200, store.lift_loss(id_number)
            case "POST", ["cards", id_number, "cancel"]:
                return 200, store.cancel_card(id_number, _text(_object(body), "reason"))
            case "POST", ["cards", id_number, "replacement"]:
                data = _object(body)
                bank = data.get("bank_name") or ""
                if not isinstance(bank, str):
                    raise _BadRequest("invalid_field", "bank_name must be text")
                return 200, store.apply_replacement(id_number, _text(data, "kind"), bank)
            case "GET", ["ledger"]:
                photos = query.get("photos", ["1"])[-1] not in ("0", "false", "no")
                return 200, sim.ledger(photos=photos)
            case "GET", ["_faults"]:
                return 200, {"faults": sim.faults()}
            case "DELETE", ["_faults"]:
                sim.clear_faults()
                return 200, {"faults": {}}
            case "POST", ["_faults"]:
                data = _object(body)
                if data.get("clear"):
                    sim.clear_faults()
                else:
                    fault = _text(data, "fault")
                    params = {k: v for k, v in data.items() if k != "fault"}
                    try:
                        sim.inject(fault, **params)
                    except ValueError as exc:
                        raise _BadRequest("invalid_fault", str(exc)) from None
                return 200, {"faults": sim.faults()}
        known = parts[:1] in (
            ["applications"],
            ["returns"],
            ["failures"],
            ["ledger"],
            ["_faults"],
            ["health"],
            ["temporary-cards"],
            ["intake"],
            ["cards"],
        )
        if known:
            raise LedgerError(405, "method_not_allowed", f"{method} is not allowed here")
        raise LedgerError(404, "not_found", "no such endpoint")


def _masked_path(text: str) -> str:
    """`text` with the ID number after /applications/ masked (request lines, error texts)."""
    return _APPLICATION_PATH.sub(lambda m: m.group(1) + mask_id_number(unquote(m.group(2))),
                                 text)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _BadRequest("bad_request", "the body must be a JSON object")
    return body


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        raise _BadRequest("missing_field", f"field {name!r} is required")
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise _BadRequest("invalid_field", f"field {name!r} must be non-empty text")
    return value


def _return_record(value: Any) -> ReturnRecord:
    if value is None:
        raise _BadRequest("missing_field", "field 'record' is required")
    if not isinstance(value, dict):
        raise _BadRequest("invalid_field", "field 'record' must be an object")
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    if bad:
        raise _BadRequest("invalid_field", f"record fields must be text: {', '.join(bad)}")
    try:
        return ReturnRecord.from_dict(value)
    except ValueError as exc:
        raise _BadRequest("missing_field", str(exc)) from None


def _intake(value: Any) -> IntakeApplication:
    return _parsed(value, IntakeApplication.from_dict)


def _application(value: Any) -> Application:
    return _parsed(value, Application.from_dict)


def _parsed(value: Any, parse: Callable[[dict[str, Any]], T]) -> T:
    """`parse` of the body's 'application' object; a bad one is a 400 with the reason."""
    if not isinstance(value, dict):
        raise _BadRequest("missing_field", "field 'application' (an object) is required")
    try:
        return parse(value)
    except ValueError as exc:
        raise _BadRequest("invalid_field", str(exc)) from None


# ---- command line --------------------------------------------------------------------------


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


# The options live where `cardstation --help` reads them without loading the simulator.
add_arguments = options.cms_arguments


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM. Prints the base URL on the first stdout line."""
    try:
        host, port = _split(args.listen)
    except ValueError:
        print(f"sim cms: --listen must be HOST:PORT, got {args.listen!r}", file=sys.stderr)
        return 2
    try:
        sim = CmsSimulator(
            seed=args.seed,
            state_path=args.state,
            extra_applicants=getattr(args, "extra_applicants", 0),
        )
        url = sim.start(host, port)
    except (OSError, ValueError) as exc:
        print(f"sim cms: {exc}", file=sys.stderr)
        return 1
    stop = catch_stop_signals()  # before the URL: a caller may signal as soon as it reads it
    print(url, flush=True)
    wait_for_stop_signal(stop)
    sim.stop()
    return 0


__all__ = ["FAULTS", "CmsSimulator", "add_arguments", "run"]
