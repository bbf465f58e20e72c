"""The CMS port: what the station asks of a province's card-management system (省卡管), and
the errors an adapter raises, each with the domain `code` that becomes the public reason.

An adapter (the reference HTTP/JSON client in personalization/cms.py, or a province's own)
implements `Cms` and raises only these errors. `code` is fixed by the class: the API never
shows an adapter's wire codes. `reason` is the adapter's own detail (its wire code, kept for
logs and the outbox), and the message is "cause — remedy" for an operator, ID numbers masked.
`retryable` says whether sending the same request again can succeed (the outbox relies on it).
How to write an adapter, and the conformance kit it must pass: docs/cms-adapter.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from cardstation.personalization.cert_assumptions import CardCertificates
from cardstation.personalization.model import Application, ReturnRecord


class CmsError(Exception):
    """A CMS request failed: the CMS refused it for a reason the domain has no name for."""

    code: ClassVar[str] = "CMS_REFUSED"
    retryable = False

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        if retryable is not None:
            self.retryable = retryable  # per instance, e.g. a 400 is not worth retrying


class CmsUnavailable(CmsError):
    """The CMS could not be reached or did not answer properly (refused, reset, timeout, 5xx)."""

    code = "CMS_UNAVAILABLE"
    retryable = True


class ApplicationNotFound(CmsError):
    """The CMS has no application for this ID number."""

    code = "APPLICATION_NOT_FOUND"


class NotMarkedForInstantIssuance(CmsError):
    """The application lacks the fee registration or the instant-issuance mark."""

    code = "NOT_MARKED_FOR_INSTANT_ISSUANCE"


class ClaimedElsewhere(CmsError):
    """Another station holds the claim on this application. `station` names it if known."""

    code = "CLAIMED_BY_ANOTHER_STATION"

    def __init__(
        self, reason: str, message: str, *, status: int | None = None, station: str | None = None
    ) -> None:
        super().__init__(reason, message, status=status)
        self.station = station


class ReturnConflict(CmsError):
    """The CMS holds a different record under this idempotency key or for this card."""

    code = "CMS_RETURN_CONFLICT"


class AlreadyMade(CmsError):
    """A card for this application was already made (its return was received)."""

    code = "CARD_ALREADY_MADE"


class RestoreRequired(CmsError):
    """The application has a failure report and must be restored in the CMS first."""

    code = "CMS_RESTORE_REQUIRED"


class TemporaryCardOutstanding(CmsError):
    """The holder already has a temporary card that was not returned."""

    code = "TEMPORARY_CARD_OUTSTANDING"


class TemporaryCardUnknown(CmsError):
    """The CMS has no temporary card with this card identification code."""

    code = "TEMPORARY_CARD_UNKNOWN"


class CertificateRefused(CmsError):
    """The CMS would not issue a 3rd-generation card's certificates (GetCA)."""

    code = "CERTIFICATE_REFUSED"


class CmsProtocolError(CmsError):
    """The CMS answered something the adapter cannot use (not JSON, wrong shape).

    A garbled answer to a request the CMS may have carried out is retryable: the idempotency
    key makes the retry safe.
    """

    code = "CMS_ANSWER_NOT_UNDERSTOOD"
    retryable = True


class CmsRequestRejected(CmsProtocolError):
    """The CMS rejected what the station sent as malformed: sending it again cannot help."""

    code = "CMS_REQUEST_REJECTED"
    retryable = False


class CmsEndpointNotFound(CmsProtocolError):
    """The configured address does not offer this request: not the CMS, or another version."""

    code = "CMS_ENDPOINT_NOT_FOUND"
    retryable = False


#: Every code a CMS error can carry: the public reasons the CMS port can produce.
CMS_CODES: frozenset[str] = frozenset(
    cls.code for cls in (
        CmsError, CmsUnavailable, ApplicationNotFound, NotMarkedForInstantIssuance,
        ClaimedElsewhere, ReturnConflict, AlreadyMade, RestoreRequired,
        TemporaryCardOutstanding, TemporaryCardUnknown, CertificateRefused, CmsProtocolError,
        CmsRequestRejected, CmsEndpointNotFound))


@dataclass(frozen=True)
class CmsSettings:
    """What the composition root gives an adapter's factory (from `[cms]`): the URL, this
    station's id (claims are made in its name), timeouts, and `options`, the adapter's own
    keys from `[cms.options]`."""

    url: str
    station_id: str
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    options: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Cms(Protocol):
    """A province's CMS as the station uses it. Every method raises only `CmsError`s."""

    def fetch(self, id_number: str) -> Application:
        """获取数据: the application (also when claimed, made or failed; `claim` decides)."""
        ...

    def claim(self, id_number: str) -> None:
        """Claim the application for this station; claiming it again is harmless."""
        ...

    def submit_return(self, record: ReturnRecord, idempotency_key: str) -> str:
        """数据回盘: the CMS's acknowledgement. The same record under the same key is
        acknowledged again; a different record under it raises ReturnConflict."""
        ...

    def report_failure(self, id_number: str, reason: str, idempotency_key: str) -> None:
        """Report that making the card failed, keyed for safe retries."""
        ...

    def restore(self, id_number: str) -> None:
        """恢复申请: the application back to ready, its claim released."""
        ...

    def issue_certificates(self, id_number: str, card_id_code: str,
                           public_key: bytes) -> CardCertificates:
        """GetCA for a 3rd-generation card (the same certificates when asked again)."""
        ...

    def check_temporary_card(self, card_id_code: str, holder_id: str) -> bool:
        """True if the CMS has this temporary card issued to this holder already; raises
        TemporaryCardOutstanding if the holder has another out. Changes nothing."""
        ...

    def record_temporary_card(self, card_id_code: str, holder_id: str, holder_name: str,
                              valid_from: str, valid_to: str, agent_id: str = "",
                              agent_name: str = "") -> bool:
        """Record an issued temporary card; True if the CMS already had this very card."""
        ...

    def get_temporary_card(self, card_id_code: str) -> dict[str, Any]:
        """The CMS's record of a temporary card: at least "holder_id", "status" ("issued"
        while it is out) and "valid_from"."""
        ...

    def recall_temporary_card(self, card_id_code: str) -> None:
        ...

    def void_temporary_card(self, card_id_code: str, holder_id: str) -> None:
        """Withdraw a temporary card this station recorded but could not finish writing."""
        ...
