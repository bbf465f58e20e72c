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
from cardstation.personalization.model import Application, IntakeApplication, ReturnRecord


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


class CmsNotAuthorized(CmsError):
    """The CMS does not accept this station's credentials (token or client certificate)."""

    code = "CMS_NOT_AUTHORIZED"


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


class HolderHasCard(CmsError):
    """One outstanding card per holder: the holder already has an application or a card that
    is not cancelled (a new card for them is a replacement, 补换卡)."""

    code = "HOLDER_HAS_CARD"


class CardStateInvalid(CmsError):
    """The card's life does not allow this now (enable a card not yet made, lift a loss that
    was not reported, mark an application without its fee, ...)."""

    code = "CARD_STATE_INVALID"


class FormalLossRequired(CmsError):
    """A replacement (补换卡) needs a formal loss report (正式挂失) of the card first."""

    code = "FORMAL_LOSS_REQUIRED"


class CardMismatch(CmsError):
    """The card presented is not the card the CMS made for this holder."""

    code = "CARD_MISMATCH"


#: Every code a CMS error can carry: the public reasons the CMS port can produce.
CMS_CODES: frozenset[str] = frozenset(
    cls.code for cls in (
        CmsError, CmsUnavailable, ApplicationNotFound, NotMarkedForInstantIssuance,
        ClaimedElsewhere, ReturnConflict, AlreadyMade, RestoreRequired, CmsNotAuthorized,
        TemporaryCardOutstanding, TemporaryCardUnknown, CertificateRefused, CmsProtocolError,
        CmsRequestRejected, CmsEndpointNotFound, HolderHasCard, CardStateInvalid,
        FormalLossRequired, CardMismatch))


@dataclass(frozen=True)
class CmsSettings:
    """What the composition root gives an adapter's factory (from `[cms]`): the URL, this
    station's id (claims are made in its name), timeouts, the TLS files and bearer token for
    reaching it, and `options`, the adapter's own keys from `[cms.options]`."""

    url: str
    station_id: str
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    tls_ca: str = ""  # PEM file of the CA the CMS's certificate chains to ("": the system's)
    tls_cert: str = ""  # PEM client certificate and key the station presents (mutual TLS)
    tls_key: str = ""
    token: str = field(default="", repr=False)  # the bearer token the CMS issued; never logged
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


#: A holder's card, as the CMS sees it (CardLife.state)
CARD_STATES = (
    "applied",  # 新增申请 received; fee registration and instant-issuance mark to follow
    "ready",  # fee registered and marked: a station may make the card
    "in_making",  # a station claimed it
    "made",  # the return (数据回盘) arrived; waiting for the holder (领卡启用)
    "failed",  # a failure was reported; restore it (恢复申请)
    "active",  # handed over and enabled
    "lost_temporary",  # 临时挂失
    "lost_formal",  # 正式挂失 (a replacement may follow)
    "cancelled",  # 注销
)
LOSS_KINDS = ("temporary", "formal")
#: 补卡 (the card is lost) and 换卡 (damaged, or the holder's data changed)
REPLACEMENT_KINDS = ("lost", "damaged")


@dataclass(frozen=True)
class CardLife:
    """Where a holder's card is in its life. `temporary_card_out`: a temporary card of the
    holder is issued and not recalled (it blocks the enablement). Numbers in full: the caller
    masks them for display."""

    id_number: str
    name: str
    state: str
    card_number: str = ""
    card_id_code: str = ""  # of the card made (from the return), "" before
    bank_name: str = ""
    fee_registered: bool = False
    temporary_card_out: bool = False
    replaces: str = ""  # the card number this application replaces, if a replacement


@runtime_checkable
class CmsCardLife(Protocol):
    """The rest of a card's life at the window, for a CMS that offers it (an adapter may
    implement only `Cms`; the station then offers no intake). Raises only `CmsError`s; every
    call that changes something may be repeated (a repeat changes nothing more)."""

    def submit_application(self, application: IntakeApplication, idempotency_key: str) -> str:
        """新增申请: the CMS's application number. HolderHasCard if the holder has one."""
        ...

    def register_fee(self, id_number: str) -> None:
        """交费登记."""
        ...

    def mark_instant_issuance(self, id_number: str) -> None:
        """即制卡标注 (after the fee registration, else CardStateInvalid)."""
        ...

    def card_life(self, id_number: str) -> CardLife:
        """The holder's card now (ApplicationNotFound if the CMS has none)."""
        ...

    def enable_card(self, id_number: str, card_id_code: str) -> None:
        """领卡启用 of the card read at the desk: CardMismatch if it is not the card made,
        TemporaryCardOutstanding while a temporary card is out, CardStateInvalid before the
        return."""
        ...

    def report_loss(self, id_number: str, kind: str) -> None:
        """临时挂失 / 正式挂失 (`kind` in LOSS_KINDS) of an active card."""
        ...

    def lift_loss(self, id_number: str) -> None:
        """解挂: a lost card active again."""
        ...

    def cancel_card(self, id_number: str, reason: str) -> None:
        """注销."""
        ...

    def apply_replacement(self, id_number: str, kind: str, bank_name: str = "") -> str:
        """补换卡 (`kind` in REPLACEMENT_KINDS) after a formal loss report, else
        FormalLossRequired: a new application (new card number and bank account; the bank may
        change), its number returned; it then needs the fee and the mark like a new one."""
        ...
