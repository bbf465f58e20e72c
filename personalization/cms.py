"""The reference CMS adapter: a client of the card-management system (省卡管, "CMS") over the
HTTP/JSON protocol of the project's CMS simulator (a province's CMS speaks its own protocol: its
adapter implements the same port, personalization/ports/cms.py).

The station fetches an application by ID number, claims it (so two stations cannot make the
same card), sends the return record (数据回盘) with an idempotency key, reports failures and
restores applications (失败数据处理 → 恢复申请). Every failure is one of the port's `CmsError`s:
its class gives the domain code, `reason` keeps the CMS's own error code, and the message tells
the operator the cause and the remedy; `retryable` says whether sending the same request again
can succeed (the outbox worker relies on it).

Each call opens its own connection, so one client is safe to share between threads. The
connect and read timeouts are separate: a dead host should fail fast, while a CMS that is
merely busy gets longer to answer. ID numbers are masked in every message and log line.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
from typing import Any
from urllib.parse import quote, urlsplit

from cardstation.drivers.redaction import mask_id_number, redact
from cardstation.drivers.tally import Tally
from cardstation.personalization import cert_assumptions as ca
from cardstation.personalization.cert_assumptions import CardCertificates
from cardstation.personalization.cms_card_life import CardLifeClientMixin
from cardstation.personalization.model import Application, ReturnRecord
from cardstation.personalization.ports.cms import (
    AlreadyMade,
    ApplicationNotFound,
    CardMismatch,
    CardStateInvalid,
    CertificateRefused,
    ClaimedElsewhere,
    CmsEndpointNotFound,
    CmsError,
    CmsNotAuthorized,
    CmsProtocolError,
    CmsRequestRejected,
    CmsSettings,
    CmsUnavailable,
    FormalLossRequired,
    HolderHasCard,
    NotMarkedForInstantIssuance,
    RestoreRequired,
    ReturnConflict,
    TemporaryCardOutstanding,
    TemporaryCardUnknown,
)

log = logging.getLogger(__name__)

_MAX_RESPONSE = 8 * 1024 * 1024  # an application with a photo is ~100 KB
#: CMS requests by (operation, result): "ok" or the port's error code (server/metrics.py)
REQUESTS = Tally()


class CmsClient(CardLifeClientMixin):
    """HTTP/JSON client of the CMS for one station (see module docstring); the card-life calls
    (the port's CmsCardLife) are in personalization/cms_card_life.py."""

    def __init__(
        self,
        base_url: str,
        station_id: str,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        *,
        tls: ssl.SSLContext | None = None,
        token: str = "",
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"CMS URL must be http(s)://host[:port][/path], got {base_url!r}")
        if not station_id:
            raise ValueError("station_id is required")
        self.base_url = base_url.rstrip("/")
        self.station_id = station_id
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._scheme = url.scheme
        self._host = url.hostname
        self._port = url.port
        self._prefix = url.path.rstrip("/")
        self._tls = tls  # None: the system's CAs (https), or plain http
        self._token = token

    @classmethod
    def from_settings(cls, settings: CmsSettings) -> CmsClient:
        """The registry's factory (`[cms] kind = "reference-http"`); it takes no options."""
        if settings.options:
            raise ValueError("the reference-http CMS takes no [cms.options]; got "
                             + ", ".join(sorted(settings.options)))
        tls = None
        if settings.tls_ca or settings.tls_cert:
            tls = ssl.create_default_context(cafile=settings.tls_ca or None)
            if settings.tls_cert:
                tls.load_cert_chain(settings.tls_cert, settings.tls_key or None)
        return cls(settings.url, settings.station_id, connect_timeout=settings.connect_timeout,
                   read_timeout=settings.read_timeout, tls=tls, token=settings.token)

    def __repr__(self) -> str:
        return f"CmsClient({self.base_url!r}, station_id={self.station_id!r})"

    # ---- operations --------------------------------------------------------------------

    def fetch(self, id_number: str) -> Application:
        """获取数据: the application for `id_number` (must be marked for instant issuance).

        An application that is claimed, made or failed is still returned; `claim` is where a
        station learns that it may not make the card.
        """
        data = self._call("GET", f"/applications/{_seg(id_number)}", None, "fetch", id_number)
        try:
            app = Application.from_dict(data)
        except (ValueError, TypeError) as exc:
            raise self._protocol(f"the application it sent is unusable ({exc})", "fetch") from None
        if app.id_number != id_number:
            raise self._protocol("it sent the application of a different ID number", "fetch")
        log.info("CMS: fetched application %s", mask_id_number(id_number))
        return app

    def claim(self, id_number: str) -> None:
        """Claim the application for this station; claiming it again is harmless."""
        body = {"station": self.station_id}
        self._call("POST", f"/applications/{_seg(id_number)}/claim", body, "claim", id_number)
        log.info("CMS: claimed application %s", mask_id_number(id_number))

    def submit_return(self, record: ReturnRecord, idempotency_key: str) -> str:
        """数据回盘: deliver the return record; returns the CMS acknowledgement.

        Sending the same record with the same key again is acknowledged again (the CMS keeps
        one); a different record under the same key raises ReturnConflict.
        """
        body = {
            "idempotency_key": idempotency_key,
            "station": self.station_id,
            "record": record.to_dict(),
        }
        data = self._call("POST", "/returns", body, "return", record.id_number)
        ack = data.get("ack")
        if not isinstance(ack, str) or not ack:
            raise self._protocol("its answer to the return has no acknowledgement", "return")
        log.info(
            "CMS: return for %s acknowledged %s%s",
            mask_id_number(record.id_number),
            ack,
            " (duplicate)" if data.get("duplicate") else "",
        )
        return ack

    def report_failure(self, id_number: str, reason: str, idempotency_key: str) -> None:
        """Report that making the card failed (failure return), keyed for safe retries."""
        body = {
            "idempotency_key": idempotency_key,
            "station": self.station_id,
            "id_number": id_number,
            "reason": reason,
        }
        self._call("POST", "/failures", body, "failure", id_number)
        log.info("CMS: failure reported for %s", mask_id_number(id_number))

    def restore(self, id_number: str) -> None:
        """恢复申请: put the application back to ready and release its claim."""
        self._call("POST", f"/applications/{_seg(id_number)}/restore", {}, "restore", id_number)
        log.info("CMS: application %s restored", mask_id_number(id_number))

    def issue_certificates(self, id_number: str, card_id_code: str,
                           public_key: bytes) -> CardCertificates:
        """GetCA: the certificates (and the CMS-issued secrets) of a 3rd-generation card, for
        its signing public key. Asking again for the same card returns the same certificates
        (status 1). Formats: personalization/cert_assumptions.py (proposals)."""
        body = ca.request_body(self.station_id, card_id_code, public_key)
        try:
            data = self._call("POST", f"/applications/{_seg(id_number)}/certificates", body,
                              "certificate request", id_number)
        except (CmsUnavailable, CmsProtocolError):
            raise
        except CmsError as exc:
            raise CertificateRefused(exc.reason, str(exc), status=exc.status) from None
        try:
            certs = ca.parse_response(data)
        except ValueError as exc:
            raise self._protocol(f"its certificate answer is unusable ({exc})",
                                 "certificate request") from None
        if certs.status not in ca.ACCEPTED_STATUSES:
            raise CertificateRefused(
                f"status_{certs.status}",
                f"The CMS answered the certificate request for card {card_id_code[:6]}… with "
                f"status {certs.status} — check the card's certificate record in the CMS",
                status=200)
        log.info("CMS: certificates for card %s… (status %d)", card_id_code[:6], certs.status)
        return certs

    def probe(self) -> dict[str, Any]:
        """Is the CMS there (its health endpoint)? For `cardstation doctor`; raises CmsError.
        Returns what the TLS handshake and the answer tell about it: the server certificate's
        expiry (`cert_not_after`, seconds since the epoch, https only) and its clock (`date`,
        from the HTTP Date header) when given."""
        facts: dict[str, Any] = {}
        conn = self._connection()
        try:
            try:
                conn.connect()
            except OSError as exc:
                raise self._unavailable("unreachable", _os_cause(exc), "health check") from None
            if isinstance(conn.sock, ssl.SSLSocket):
                cert = conn.sock.getpeercert()
                if cert and cert.get("notAfter"):
                    facts["cert_not_after"] = ssl.cert_time_to_seconds(str(cert["notAfter"]))
            headers = {"Accept": "application/json", "Connection": "close"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            try:
                conn.request("GET", self._prefix + "/health", headers=headers)
                response = conn.getresponse()
                raw = response.read(_MAX_RESPONSE + 1)
            except (OSError, http.client.HTTPException) as exc:
                raise self._unavailable("unreachable", _os_cause(exc), "health check") from None
            facts["date"] = response.getheader("Date") or ""
        finally:
            conn.close()
        self._decode(response.status, raw, "health check", "")
        return facts

    # ---- temporary cards (临时卡) -------------------------------------------------------

    def check_temporary_card(self, card_id_code: str, holder_id: str) -> bool:
        """Would the CMS record this card for this holder? True if it already has it issued to
        them. Raises TemporaryCardOutstanding if the holder has another one out. Changes
        nothing: the station asks before the holder types a PIN."""
        data = self._call("POST", "/temporary-cards/check",
                          {"card_id_code": card_id_code, "holder_id": holder_id},
                          "temporary card", holder_id)
        return bool(data.get("issued"))

    def record_temporary_card(self, card_id_code: str, holder_id: str, holder_name: str,
                              valid_from: str, valid_to: str, agent_id: str = "",
                              agent_name: str = "") -> bool:
        """Record an issued temporary card; True if the CMS already had this very card
        (a rewrite). Raises TemporaryCardOutstanding if the holder has another one out."""
        body = {"station": self.station_id, "card_id_code": card_id_code,
                "holder_id": holder_id, "holder_name": holder_name, "valid_from": valid_from,
                "valid_to": valid_to, "agent_id": agent_id, "agent_name": agent_name}
        data = self._call("POST", "/temporary-cards", body, "temporary card", holder_id)
        log.info("CMS: temporary card recorded for %s", mask_id_number(holder_id))
        return bool(data.get("duplicate"))

    def get_temporary_card(self, card_id_code: str) -> dict[str, Any]:
        return self._call("GET", f"/temporary-cards/{_seg(card_id_code)}", None,
                          "temporary card", "")

    def recall_temporary_card(self, card_id_code: str) -> None:
        self._call("POST", f"/temporary-cards/{_seg(card_id_code)}/recall",
                   {"station": self.station_id}, "temporary card recall", "")
        log.info("CMS: temporary card %s recalled", card_id_code)

    def void_temporary_card(self, card_id_code: str, holder_id: str) -> None:
        """Withdraw a temporary card this station recorded but could not finish writing (the
        chip write or PIN reload failed): the CMS no longer lists it as issued."""
        self._call("POST", f"/temporary-cards/{_seg(card_id_code)}/void",
                   {"station": self.station_id, "holder_id": holder_id},
                   "temporary card withdrawal", holder_id)
        log.info("CMS: temporary card %s withdrawn", card_id_code)

    # ---- transport ---------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port,
                                               timeout=self.connect_timeout, context=self._tls)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.connect_timeout)

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, op: str, id_number: str
    ) -> dict[str, Any]:
        label = op.replace(" ", "_")  # a metrics label: certificate_request, temporary_card
        try:
            answer = self._request(method, path, body, op, id_number)
        except CmsError as exc:
            REQUESTS.add((label, exc.code))
            raise
        REQUESTS.add((label, "ok"))
        return answer

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, op: str, id_number: str
    ) -> dict[str, Any]:
        payload = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Accept": "application/json", "Connection": "close"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if payload is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        conn = self._connection()
        try:
            try:
                conn.connect()
            except TimeoutError:
                raise self._unavailable("timeout", "the connection timed out", op) from None
            except OSError as exc:
                raise self._unavailable("unreachable", _os_cause(exc), op) from None
            # Connected: from here the (longer) read timeout bounds each wait for the CMS.
            if conn.sock is not None:
                conn.sock.settimeout(self.read_timeout)
            try:
                conn.request(method, self._prefix + path, body=payload, headers=headers)
                response = conn.getresponse()
                raw = response.read(_MAX_RESPONSE + 1)
            except TimeoutError:
                raise self._unavailable(
                    "timeout", f"no answer within {self.read_timeout:g} s", op
                ) from None
            except (OSError, http.client.RemoteDisconnected, http.client.IncompleteRead) as exc:
                raise self._unavailable("unreachable", _os_cause(exc), op) from None
            except http.client.HTTPException as exc:
                cause = f"it broke the HTTP protocol ({type(exc).__name__})"
                raise self._protocol(cause, op) from None
        finally:
            conn.close()
        return self._decode(response.status, raw, op, id_number)

    def _decode(self, status: int, raw: bytes, op: str, id_number: str) -> dict[str, Any]:
        if len(raw) > _MAX_RESPONSE:
            raise self._protocol("its answer is far too large", op, status)
        try:
            data = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            data = None
        if status >= 500:
            code = data.get("error") if isinstance(data, dict) else None
            cause = f"the CMS answered HTTP {status}" + (f" ({code})" if code else "")
            raise self._unavailable("server_error", cause, op, status)
        if not isinstance(data, dict):
            raise self._protocol(f"its answer (HTTP {status}) is not a JSON object", op, status)
        if 200 <= status < 300:
            return data
        raise self._error(status, data, op, id_number)

    # ---- errors ------------------------------------------------------------------------

    def _unavailable(
        self, reason: str, cause: str, op: str, status: int | None = None
    ) -> CmsUnavailable:
        if op in ("return", "failure"):
            remedy = "check the network; the return is kept and retried"
        else:
            remedy = "check the network, then try again"
        return CmsUnavailable(reason, f"CMS unreachable ({cause}) — {remedy}", status=status)

    def _protocol(self, cause: str, op: str, status: int | None = None) -> CmsProtocolError:
        remedy = (
            "the return is kept and retried; if this persists, check the CMS URL and version"
            if op in ("return", "failure")
            else "check the CMS URL in the station configuration and the CMS version"
        )
        return CmsProtocolError(
            "malformed_response", f"CMS answer not understood: {cause} — {remedy}", status=status
        )

    def _error(self, status: int, data: dict[str, Any], op: str, id_number: str) -> CmsError:
        code = str(data.get("error") or "")
        # The server's text is shown to operators: mask any ID or account number it carries.
        detail = redact(str(data.get("message") or ""))
        masked = mask_id_number(id_number)
        if status == 404 and code == "unknown_application":
            return ApplicationNotFound(
                code,
                f"The CMS has no application for ID number {masked} — check the number, or "
                "have the application entered in the CMS first",
                status=status,
            )
        if code == "not_marked":
            return NotMarkedForInstantIssuance(
                code,
                f"Application {masked} is not ready for instant issuance ({detail}) — in the "
                "CMS, complete the fee registration (交费登记) and the instant-issuance mark "
                "(即制卡标注), then fetch again",
                status=status,
            )
        if code == "claimed_elsewhere":
            holder = data.get("station")
            where = f"station {holder}" if isinstance(holder, str) and holder else "another station"
            return ClaimedElsewhere(
                code,
                f"Application {masked} is being made at {where} — do not make it here; finish "
                "or cancel it there (CMS: 失败数据处理 → 恢复申请 releases it)",
                status=status,
                station=holder if isinstance(holder, str) else None,
            )
        if code == "return_conflict":
            return ReturnConflict(
                code,
                f"The CMS holds a different record for application {masked} ({detail}) — do "
                "not resend; compare the card with the CMS record and call the CMS "
                "administrator",
                status=status,
            )
        if code == "temporary_card_outstanding":
            after = "enabling the card" if op == "enablement" else "issuing another"
            return TemporaryCardOutstanding(
                code,
                f"Holder {masked} already has a temporary card that was not returned — recall "
                f"it (收回) before {after}",
                status=status,
            )
        if code == "holder_has_card":
            return HolderHasCard(
                code,
                f"Holder {masked} already has a card or an application in the CMS — one card "
                "per holder: look the card up; a new card is a replacement (补换卡) after a "
                "formal loss report",
                status=status,
            )
        if code == "card_state_invalid":
            return CardStateInvalid(
                code,
                f"The CMS cannot do the {op} for {masked} now ({detail}) — look the card up "
                "and follow its state",
                status=status,
            )
        if code == "formal_loss_required":
            return FormalLossRequired(
                code,
                f"The card of {masked} has no formal loss report — report it lost formally "
                "(正式挂失) first, then apply for the replacement",
                status=status,
            )
        if code == "card_mismatch":
            return CardMismatch(
                code,
                f"The card on the desk reader is not the card made for {masked} — give the "
                "holder their own card (check the card number) and read it again",
                status=status,
            )
        if code == "temporary_card_unknown":
            return TemporaryCardUnknown(
                code,
                "The CMS has no temporary card with this card identification code — it was "
                "not issued as a temporary card here; check the card in the CMS",
                status=status,
            )
        if code == "already_made":
            return AlreadyMade(
                code,
                f"A card for application {masked} was already made — check the card status in "
                "the CMS; restore the application there only if a new card is really needed",
                status=status,
            )
        if code == "restore_required":
            return RestoreRequired(
                code,
                f"Application {masked} has a failure report — in the CMS use 失败数据处理 → "
                "恢复申请 (restore the application), then fetch again",
                status=status,
            )
        if status in (401, 403):
            return CmsNotAuthorized(
                code or f"http_{status}",
                f"The CMS does not accept this station's credentials (HTTP {status}) — check "
                "[cms] token_file and tls_cert in cardstation.toml, and that the CMS has this "
                "station registered",
                status=status,
            )
        if status in (404, 405):
            # Not "no such application": the URL does not reach the CMS API at all.
            return CmsEndpointNotFound(
                code or "not_found",
                f"The CMS URL {self.base_url} does not offer this request (HTTP {status}) — "
                "check the CMS URL in the station configuration",
                status=status,
            )
        if status == 400:
            return CmsRequestRejected(
                code or "bad_request",
                f"The CMS rejected the station's request as malformed ({detail}) — report this "
                "to the station supplier",
                status=status,
            )
        return CmsError(
            code or f"http_{status}",
            f"The CMS refused the {op} for application {masked} (HTTP {status}: "
            f"{detail or code or 'no reason given'}) — check the application in the CMS",
            status=status,
        )


def _seg(value: str) -> str:
    # A path segment: an ID number never contains '/', but a typo must not change the route.
    return quote(value, safe="")


def _os_cause(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"its TLS certificate is not trusted ({exc.verify_message}): check [cms] "
                "tls_ca and the CMS address")
    if isinstance(exc, ssl.SSLError):
        return (f"the TLS handshake failed ({exc.reason or exc}): check [cms] tls_cert / "
                "tls_key and that the CMS accepts this station's certificate")
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError):
        return "the connection was closed without an answer"
    if isinstance(exc, http.client.IncompleteRead):
        return "the answer was cut off"
    if isinstance(exc, socket.gaierror):
        return "the CMS host name does not resolve"
    strerror = getattr(exc, "strerror", None)
    return type(exc).__name__ + (f": {strerror}" if strerror else "")


# the port's errors, re-exported for the callers that import them from the adapter
__all__ = [
    "AlreadyMade",
    "ApplicationNotFound",
    "CardMismatch",
    "CardStateInvalid",
    "CertificateRefused",
    "ClaimedElsewhere",
    "CmsClient",
    "CmsEndpointNotFound",
    "CmsError",
    "CmsNotAuthorized",
    "CmsProtocolError",
    "CmsRequestRejected",
    "CmsUnavailable",
    "FormalLossRequired",
    "HolderHasCard",
    "NotMarkedForInstantIssuance",
    "RestoreRequired",
    "ReturnConflict",
    "TemporaryCardOutstanding",
    "TemporaryCardUnknown",
]
